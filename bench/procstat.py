"""What a process costs, read from /proc: CPU seconds and resident memory."""

import os
import time
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of the process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


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


class CpuMeter:
    """CPU seconds a set of processes used between ``start()`` and ``stop()``."""

    def __init__(self, pids: dict[str, int]) -> None:
        self._pids = pids
        self._before: dict[str, float] = {}
        self._wall = 0.0

    def start(self) -> "CpuMeter":
        self._before = {name: cpu_seconds(pid) for name, pid in self._pids.items()}
        self._wall = time.monotonic()
        return self

    def stop(self) -> dict[str, float]:
        """CPU seconds per process, plus ``wall`` seconds."""
        used = {name: round(cpu_seconds(pid) - self._before[name], 3) for name, pid in self._pids.items()}
        used["wall"] = round(time.monotonic() - self._wall, 3)
        return used
