"""Which CPU runs what: the server under test on one, everything else on the rest.

A process's affinity and nice value are per thread on Linux, so placing a
process walks every thread (``/proc/PID/task``) and, for process trees such
as Postgres, every child; threads started later inherit both from the thread
that starts them. Where allowed (root or CAP_SYS_NICE), the bench's own
processes also get a higher priority, so that other work on a shared machine
disturbs the measurement less; what is left of that disturbance shows as
run-queue wait in the results.
"""

import os
from dataclasses import dataclass
from pathlib import Path

import psutil

BENCH_NICENESS = -10


@dataclass(frozen=True)
class CpuPlan:
    server: set[int] | None  # the gateway (or baseline, or auth while it is measured)
    load: set[int] | None  # load generator, Redis, Postgres, rooms, edge
    niceness: int | None  # applied to every bench process, None if not permitted

    @classmethod
    def for_this_machine(cls) -> "CpuPlan":
        available = sorted(os.sched_getaffinity(0))
        try:
            os.setpriority(os.PRIO_PROCESS, 0, BENCH_NICENESS)
            niceness = BENCH_NICENESS
        except PermissionError:
            niceness = None
        if len(available) < 2:
            return cls(None, None, niceness)
        return cls({available[0]}, set(available[1:]), niceness)

    @property
    def everything(self) -> set[int] | None:
        """Every CPU of the plan: for a process that must not be confined to either side."""
        return None if self.server is None else self.server | (self.load or set())

    def describe(self) -> str:
        if self.server is None:
            placement = "one CPU available: nothing pinned, server and load generator share it"
        else:
            placement = (
                f"server under test on CPU {_cpus(self.server)}; load generator, Redis, Postgres, rooms and edge on CPU "
                f"{_cpus(self.load)}"
            )
        priority = f"bench processes at nice {self.niceness}" if self.niceness is not None else "default priority"
        return f"{placement}; {priority}"

    def place(self, pid: int, cpus: set[int] | None) -> None:
        """Pin every thread of a process and its children to ``cpus``, at the bench's priority."""
        try:
            pids = [pid, *(child.pid for child in psutil.Process(pid).children(recursive=True))]
        except psutil.NoSuchProcess:
            return
        for process in pids:
            for task in Path(f"/proc/{process}/task").glob("*"):
                try:
                    if cpus:
                        os.sched_setaffinity(int(task.name), cpus)
                    if self.niceness is not None:
                        os.setpriority(os.PRIO_PROCESS, int(task.name), self.niceness)
                except (ProcessLookupError, PermissionError):
                    pass


def _cpus(cpus: set[int] | None) -> str:
    return ",".join(str(cpu) for cpu in sorted(cpus or ()))
