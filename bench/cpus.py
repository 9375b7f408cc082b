"""Which CPU runs what: the server under test on one, everything else on the rest.

A process's affinity is per thread on Linux, so pinning walks every thread
(``/proc/PID/task``) and, for process trees such as Postgres, every child.
Threads started later inherit the mask of the thread that starts them.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class CpuPlan:
    server: set[int] | None  # the gateway (or baseline, or auth while it is measured)
    load: set[int] | None  # load generator, Redis, Postgres, rooms, edge

    @classmethod
    def for_this_machine(cls) -> "CpuPlan":
        available = sorted(os.sched_getaffinity(0))
        if len(available) < 2:
            return cls(None, None)
        return cls({available[0]}, set(available[1:]))

    def describe(self) -> str:
        if self.server is None:
            return "one CPU available: nothing pinned, server and load generator share it"
        return (
            f"server under test on CPU {_cpus(self.server)}; load generator, Redis, Postgres, rooms and edge on CPU "
            f"{_cpus(self.load)}"
        )


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus or ()))


def pin(pid: int, cpus: set[int] | None) -> None:
    """Pin every thread of a process, and of its children, to ``cpus`` (no-op for None)."""
    if not cpus:
        return
    try:
        pids = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
    except psutil.NoSuchProcess:
        return
    for process in pids:
        for task in Path(f"/proc/{process}/task").glob("*"):
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except (ProcessLookupError, PermissionError):
                pass
