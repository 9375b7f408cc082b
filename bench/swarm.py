"""The load generator as the coordinator sees it: several worker processes, results merged.

Members are dealt round-robin over the processes (a room's members end up in
several of them, like real users on different machines). Every command goes
to all processes at once and the replies are merged here; this is also where
lost deliveries are computed, because only the merged view knows how many
members of a room received each acked event. Only members that stayed
connected through a run count, for the room's size and for receipts; sockets
the server dropped are reported as closes.
"""

import multiprocessing
import time
from array import array
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import wait

from bench import loadgen
from bench.loadgen import MemberSpec
from bench.progress import Progress
from bench.stats import latency_summary, percentile


@dataclass
class Connected:
    rooms: Counter  # room -> members connected
    failures: Counter
    seconds: float
    welcome_ms_p50: float | None
    welcome_ms_p99: float | None

    @property
    def count(self) -> int:
        return sum(self.rooms.values())


@dataclass
class RunResult:
    """One timed burst, merged over every process. A delivery is one message frame reaching one member."""

    duration: float
    sent: int
    acked: int
    expected: int
    delivered: int
    lost: int
    duplicated: int
    errors: Counter
    closes: Counter
    latency_ms: dict[str, float | None]
    deliveries_per_second: float
    max_send_lag_ms: float


class Swarm:
    def __init__(self, processes: int, cpus: set[int] | None) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes = []
        self.processes = []
        for _ in range(processes):
            parent, child = context.Pipe()
            process = context.Process(target=loadgen.worker_main, args=(child, cpus), daemon=True)
            process.start()
            self._pipes.append(parent)
            self.processes.append(process)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def _call(self, command: str, args: list[dict], progress: Progress | None = None) -> list[dict]:
        for pipe, arguments in zip(self._pipes, args, strict=True):
            pipe.send((command, arguments))
        replies: dict[int, dict] = {}
        pending = list(self._pipes)
        while pending:
            for pipe in wait(pending, timeout=0.25):
                replies[self._pipes.index(pipe)] = pipe.recv()
                pending.remove(pipe)
            if progress is not None:
                progress.update()
        return [replies[index] for index in range(len(self._pipes))]

    def _all(self, command: str, progress: Progress | None = None, **args: object) -> list[dict]:
        return self._call(command, [args] * len(self._pipes), progress)

    def connect(self, host: str, port: int, members: list[MemberSpec], label: str) -> Connected:
        shares = [members[index :: len(self._pipes)] for index in range(len(self._pipes))]
        progress = Progress(label)
        replies = self._call("connect", [{"host": host, "port": port, "members": share} for share in shares], progress)
        rooms, failures = Counter(), Counter()
        welcomes = array("q")
        for reply in replies:
            rooms.update(reply["connected"])
            failures.update(reply["failures"])
            welcomes.frombytes(reply["welcome_us"])
        ordered = sorted(welcomes)
        p50, p99 = percentile(ordered, 0.5), percentile(ordered, 0.99)
        result = Connected(
            rooms=rooms,
            failures=failures,
            seconds=max(reply["seconds"] for reply in replies),
            welcome_ms_p50=None if p50 is None else round(p50 / 1000, 2),
            welcome_ms_p99=None if p99 is None else round(p99 / 1000, 2),
        )
        progress.done(
            f"{result.count}/{len(members)} connected" + (f", {sum(failures.values())} failed" if failures else "")
        )
        return result

    def quiet(self, seconds: float = 0.5, timeout: float = 30.0) -> bool:
        """Wait until no process has received a frame for ``seconds``."""
        return all(reply["quiet"] for reply in self._all("quiet", seconds=seconds, timeout=timeout))

    def run(
        self, tag: str, rate: float, duration: float, label: str, drain_quiet: float = 0.5, drain_max: float = 5.0
    ) -> RunResult:
        """Every member sends ``rate`` messages/s for ``duration`` seconds; returns the merged result."""
        start_at = time.monotonic() + 0.3
        progress = Progress(label, 0.3 + duration + drain_quiet)
        replies = self._all(
            "run",
            progress,
            tag=tag,
            rate=rate,
            start_at=start_at,
            duration=duration,
            drain_quiet=drain_quiet,
            drain_max=drain_max,
        )
        result = self._merge(replies, start_at, duration)
        progress.done(f"{result.deliveries_per_second:,.0f} deliveries/s, p99 {result.latency_ms['p99']} ms")
        return result

    def _merge(self, replies: list[dict], start_at: float, duration: float) -> RunResult:
        receipts, rooms = Counter(), Counter()
        latencies = array("q")
        errors, closes = Counter(), Counter()
        acked: list[tuple[str, str]] = []
        for reply in replies:
            receipts.update(reply["receipts"])
            rooms.update(reply["connected"])
            latencies.frombytes(reply["latencies_us"])
            errors.update(reply["errors"])
            closes.update(reply["closes"])
            acked.extend(reply["acked"])
        expected = delivered = lost = 0
        for event_id, room in acked:
            should, got = rooms[room], receipts.get(event_id, 0)
            expected += should
            delivered += min(got, should)
            lost += max(0, should - got)
        sent = sum(reply["sent"] for reply in replies)
        if sent > len(acked):
            errors["sent, never acked"] += sent - len(acked)
        last_receive = max(reply["last_receive_ns"] for reply in replies) / 1e9
        span = max(duration, last_receive - start_at) if last_receive else duration
        return RunResult(
            duration=duration,
            sent=sent,
            acked=len(acked),
            expected=expected,
            delivered=delivered,
            lost=lost,
            duplicated=sum(reply["duplicated"] for reply in replies),
            errors=errors,
            closes=closes,
            latency_ms=latency_summary(latencies),
            deliveries_per_second=delivered / span,
            max_send_lag_ms=round(max(reply["max_send_lag"] for reply in replies) * 1000, 1),
        )

    def storm(self, label: str, expected_seconds: float, **args: object) -> dict:
        """A reconnect storm (``loadgen.Worker._cmd_storm``), merged: losses counted over every member back."""
        replies = self._all("storm", Progress(label, expected_seconds), **args)
        receipts, rooms = Counter(), Counter()
        acked: list[tuple[str, str]] = []
        samples, back, noticed, upgraded = array("q"), array("q"), array("q"), array("q")
        merged = {name: Counter() for name in ("errors", "closes", "attempts", "failures")}
        for reply in replies:
            receipts.update(reply["receipts"])
            rooms.update(reply["connected"])
            acked.extend(reply["acked"])
            samples.frombytes(reply["bystander_samples"])
            back.frombytes(reply["back_ns"])
            noticed.frombytes(reply["noticed_ns"])
            upgraded.frombytes(reply["upgraded_ns"])
            for name, counter in merged.items():
                counter.update(reply[name])
        expected = lost = 0
        for event_id, room in acked:
            should, got = rooms[room], receipts.get(event_id, 0)
            expected += should
            lost += max(0, should - got)
        totals = {
            name: sum(reply[name] for reply in replies)
            for name in ("members", "sent", "delivered", "duplicated", "unacked", "dropped", "gave_up", "resent",
                         "truncated")
        }  # fmt: skip
        return {
            **totals,
            **merged,
            "back": sum(rooms.values()),
            "acked": len(acked),
            "expected": expected,
            "lost": lost,
            "bystander_samples": samples,
            "back_ns": back,
            "noticed_ns": noticed,
            "upgraded_ns": upgraded,
        }

    def disconnect(self) -> None:
        self._all("disconnect")

    def close(self) -> None:
        self._all("exit")
        for process in self.processes:
            process.join(5)
