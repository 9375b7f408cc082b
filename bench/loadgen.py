"""One load-generator process: many simulated members on one event loop.

The coordinator (bench.swarm) drives each process through a pipe with a few
commands: ``connect`` its share of members, wait until the sockets go
``quiet``, ``run`` a timed burst of messages, ``disconnect``. Every member
sends its messages at a steady rate with a random phase, so the load is
smooth rather than in lockstep.

A message's text is ``"<tag> <sender> <monotonic ns>"``: the receiving process
reads the send time straight from it (CLOCK_MONOTONIC is one clock for every
process on the machine), and the tag tells this run's messages from earlier
ones. Each member remembers the last event id it got; since a room's events
arrive in id order, an id at or below it is a duplicate (or out of order).
Each member also lists the ids it received during a run, and the coordinator
finds lost deliveries by comparing, per acked event id, how many members
that stayed connected received it with how many stayed in the room (the
contract promises delivery to members that stay connected; dropped sockets
are reported on their own).
"""

import asyncio
import os
import random
import time
from array import array
from collections import Counter
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import orjson
import uvloop

from bench.wsclient import WsClient, connect

CONNECT_CONCURRENCY = 64
CONNECT_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """Who to simulate: the request path and headers carry the room and the credentials."""

    username: str
    room: str
    path: str
    headers: dict[str, str]


@dataclass(slots=True)
class Member:
    spec: MemberSpec
    welcomed: asyncio.Future
    client: WsClient | None = None
    last_id: tuple[int, int] = (0, 0)
    closed: bool = False
    received: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Run:
    """What one ``run`` command observed in this process."""

    tag: str
    sent: int = 0
    delivered: int = 0
    duplicated: int = 0
    max_send_lag: float = 0.0
    last_receive_ns: int = 0
    acked: list[tuple[str, str]] = field(default_factory=list)
    latencies_us: array = field(default_factory=lambda: array("q"))
    errors: Counter = field(default_factory=Counter)


def _event_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class Worker:
    def __init__(self, pipe: Connection) -> None:
        self._pipe = pipe
        self._members: list[Member] = []
        self._run = Run(tag="")
        self._closes: Counter = Counter()
        self._last_frame = time.monotonic()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, self._pipe.recv)
            reply = await getattr(self, f"_cmd_{command}")(**args)
            self._pipe.send(reply)
            if command == "exit":
                return

    # Frames in.

    def _on_text(self, member: Member, payload: bytes) -> None:
        now = time.monotonic_ns()
        self._last_frame = now / 1e9
        event = orjson.loads(payload)
        kind = event.get("type")
        run = self._run
        if kind == "message":
            parts = event.get("text", "").split(" ")
            if len(parts) != 3:
                return
            tag, sender, sent_ns = parts
            event_id = event["id"]
            key = _event_key(event_id)
            if key <= member.last_id:
                run.duplicated += 1
                return
            member.last_id = key
            if tag != run.tag:  # a straggler from an earlier run
                return
            member.received.append(event_id)
            run.delivered += 1
            run.last_receive_ns = now
            if sender != member.spec.username:
                run.latencies_us.append((now - int(sent_ns)) // 1000)
        elif kind == "ack":
            run.acked.append((event["id"], member.spec.room))
        elif kind == "error":
            run.errors[f"error frame: {event.get('code')}"] += 1
        elif kind == "welcome" and not member.welcomed.done():
            member.welcomed.set_result(None)

    def _on_close(self, member: Member, code: int) -> None:
        member.closed = True
        self._closes[code] += 1
        if not member.welcomed.done():
            member.welcomed.set_exception(ConnectionError(f"closed with {code} before the welcome"))

    # Commands.

    async def _cmd_connect(self, host: str, port: int, members: list[MemberSpec]) -> dict:
        """Open every socket (a bounded number at a time) and wait for each welcome."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: Counter = Counter()
        started = time.monotonic()
        welcomes = array("q")

        async def open_one(spec: MemberSpec) -> None:
            member = Member(spec, asyncio.get_running_loop().create_future())
            async with gate:
                began = time.monotonic_ns()
                try:
                    member.client = await asyncio.wait_for(
                        connect(
                            host,
                            port,
                            spec.path,
                            spec.headers,
                            lambda payload: self._on_text(member, payload),
                            lambda code: self._on_close(member, code),
                        ),
                        CONNECT_TIMEOUT_SECONDS,
                    )
                    await asyncio.wait_for(member.welcomed, CONNECT_TIMEOUT_SECONDS)
                except Exception as exc:
                    failures[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    if member.client is not None:
                        member.client.close()
                    return
                welcomes.append((time.monotonic_ns() - began) // 1000)
                self._members.append(member)

        await asyncio.gather(*(open_one(spec) for spec in members))
        return {
            "connected": Counter(m.spec.room for m in self._members if not m.closed),
            "failures": failures,
            "seconds": time.monotonic() - started,
            "welcome_us": welcomes.tobytes(),
        }

    async def _cmd_quiet(self, seconds: float, timeout: float) -> dict:
        """Wait until no frame has arrived for ``seconds`` (join storms settle), or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and time.monotonic() - self._last_frame < seconds:
            await asyncio.sleep(0.05)
        return {"quiet": time.monotonic() - self._last_frame >= seconds}

    async def _cmd_run(
        self, tag: str, rate: float, start_at: float, duration: float, drain_quiet: float, drain_max: float
    ) -> dict:
        """Send at ``rate`` per member from ``start_at`` for ``duration``, then wait for the stragglers."""
        run = self._run = Run(tag=tag)
        self._closes.clear()
        for member in self._members:
            member.received = []
        end = start_at + duration
        if rate > 0:
            await asyncio.gather(*(self._send_loop(m, run, rate, start_at, end) for m in self._members if not m.closed))
        else:
            await asyncio.sleep(max(0.0, end - time.monotonic()))
        drain_end = max(time.monotonic(), end) + drain_max
        while time.monotonic() < drain_end and time.monotonic() - self._last_frame < drain_quiet:
            await asyncio.sleep(0.05)
        self._run = Run(tag="")
        stayed = [member for member in self._members if not member.closed]
        receipts: Counter = Counter()
        for member in stayed:
            receipts.update(member.received)
        return {
            "connected": Counter(member.spec.room for member in stayed),
            "sent": run.sent,
            "delivered": run.delivered,
            "duplicated": run.duplicated,
            "max_send_lag": run.max_send_lag,
            "last_receive_ns": run.last_receive_ns,
            "acked": run.acked,
            "receipts": receipts,
            "latencies_us": run.latencies_us.tobytes(),
            "errors": run.errors,
            "closes": Counter(self._closes),
        }

    async def _send_loop(self, member: Member, run: Run, rate: float, start: float, end: float) -> None:
        interval = 1.0 / rate
        due = start + random.random() * interval
        username, client = member.spec.username, member.client
        sequence = 0
        while due < end and not member.closed:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > run.max_send_lag:
                run.max_send_lag = -delay
            client.send_text(
                f'{{"type":"message","text":"{run.tag} {username} {time.monotonic_ns()}","ref":"{sequence}"}}'
            )
            run.sent += 1
            sequence += 1
            due += interval

    async def _cmd_disconnect(self) -> dict:
        for member in self._members:
            if member.client is not None:
                member.client.close()
        count = len(self._members)
        self._members.clear()
        await asyncio.sleep(0.1)
        return {"closed": count}

    async def _cmd_exit(self) -> dict:
        return await self._cmd_disconnect()


def worker_main(pipe: Connection, cpus: set[int] | None) -> None:
    """Entry point of a load-generator process."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    uvloop.run(Worker(pipe).serve())
