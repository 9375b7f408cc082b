"""What a process costs, read from /proc: CPU seconds and resident memory."""

import os
import time
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def _schedstat(pid: int, field: int) -> float:
    """One field of every thread's /proc schedstat (0: time on a CPU, 1: time waiting for one), in seconds."""
    total = 0
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            total += int((task / "schedstat").read_text().split()[field])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total / 1e9


def run_seconds(pid: int, children: bool = False) -> float:
    """CPU time of the process's live threads, to the nanosecond (/proc's user and system times count 10 ms ticks).

    With ``children``, that of its reaped children too (in ticks): a fork's work, such as a Redis rewrite.
    """
    seconds = _schedstat(pid, 0)
    if children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        seconds += (int(fields[13]) + int(fields[14])) / TICKS_PER_SECOND
    return seconds


def runqueue_wait_seconds(pid: int) -> float:
    """Time the process's threads were runnable but waiting for a CPU: how contended its CPU is."""
    return _schedstat(pid, 1)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise ValueError(f"no VmRSS for {pid}")


def wait_idle(pid: int, busy_below: float = 0.05, window: float = 0.5, timeout: float = 30.0) -> bool:
    """Wait until the process uses less than ``busy_below`` of a CPU over ``window`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(window)
        if cpu_seconds(pid) - before < busy_below * window:
            return True
    return False


def _sample(pids: list[int]) -> tuple[float, float]:
    return sum(cpu_seconds(pid) for pid in pids), sum(runqueue_wait_seconds(pid) for pid in pids)


@dataclass
class Usage:
    """What a group of processes used over ``wall`` seconds."""

    cpu: float
    runqueue_wait: float
    wall: float

    @property
    def utilization(self) -> float:
        """Fraction of one CPU."""
        return self.cpu / self.wall if self.wall else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "cpu_seconds": round(self.cpu, 3),
            "cpu_utilization": round(self.utilization, 3),
            "runqueue_wait_seconds": round(self.runqueue_wait, 3),
            "wall_seconds": round(self.wall, 3),
        }


class CpuMeter:
    """CPU and run-queue time that named groups of processes used between ``start()`` and ``stop()``."""

    def __init__(self, groups: dict[str, list[int]]) -> None:
        self._groups = groups
        self._before: dict[str, tuple[float, float]] = {}
        self._started = 0.0

    def start(self) -> "CpuMeter":
        self._before = {name: _sample(pids) for name, pids in self._groups.items()}
        self._started = time.monotonic()
        return self

    def stop(self) -> dict[str, Usage]:
        wall = time.monotonic() - self._started
        usage = {}
        for name, pids in self._groups.items():
            cpu, waited = _sample(pids)
            usage[name] = Usage(cpu - self._before[name][0], waited - self._before[name][1], wall)
        return usage
