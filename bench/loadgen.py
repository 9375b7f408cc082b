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
import re
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
# The web client's reconnect backoff (web/static/js/backoff.js, docs/protocol.md).
BACKOFF_BASE_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 10.0
BACKOFF_ATTEMPTS = 8
# Refusals with a retry hint it waits out before a welcome, apart from the attempts.
HINTED_ATTEMPTS = 30
# Its first reconnect after an unclean close: in [base/2, this].
DROP_SPREAD_SECONDS = 3.0
# A 1013's retry hint (docs/protocol.md), and how often a first connect follows one before it counts as failed.
RETRY_HINT = re.compile(r"\bretry_after_ms=(\d+)\b")
CONNECT_RETRIES = 50


class ClosedBeforeWelcome(ConnectionError):
    """The server closed the socket before its welcome; ``retry_after``: the seconds its hint says to wait, if any."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"closed with {code} before the welcome")
        hint = RETRY_HINT.search(reason) if code == 1013 else None
        self.retry_after = int(hint.group(1)) / 1000 if hint else None


@dataclass(frozen=True, slots=True)
class MemberSpec:
    """Who to simulate: the request path and headers carry the room and the credentials.

    ``port`` is the gateway to connect to when the command names none; ``fallback`` is where the
    member reconnects in a reconnect storm (where the edge's room hash sends it once its gateway died).
    """

    username: str
    room: str
    path: str
    headers: dict[str, str]
    port: int = 0
    fallback: int = 0


@dataclass(slots=True)
class Member:
    spec: MemberSpec
    welcomed: asyncio.Future
    client: WsClient | None = None
    last_id: tuple[int, int] = (0, 0)
    last_event_id: str = ""
    closed: bool = False
    received: list[str] = field(default_factory=list)
    # The web client's outbox: messages sent (or typed while away) and not acked yet, by ref.
    pending: dict[str, str] = field(default_factory=dict)
    reconnecting: bool = False


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
    # Reconnect storms only: (receive ns, latency µs) of every delivery to a bystander, and the reconnects.
    storm: "Storm | None" = None
    bystander_samples: array = field(default_factory=lambda: array("q"))


@dataclass(slots=True)
class Storm:
    """One reconnect storm as this process saw it: who came back, when, after how many attempts."""

    victim_port: int
    kill_at_ns: int
    dropped: int = 0
    back_ns: array = field(default_factory=lambda: array("q"))  # kill to welcome, per reconnect
    noticed_ns: array = field(default_factory=lambda: array("q"))  # kill to the socket's close, per drop
    upgraded_ns: array = field(default_factory=lambda: array("q"))  # kill to the 101, per reconnect
    attempts: Counter = field(default_factory=Counter)  # attempts a reconnect took
    failures: Counter = field(default_factory=Counter)  # why an attempt failed
    gave_up: int = 0
    resent: int = 0
    truncated: int = 0


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
            self._on_message(member, event, now, live=True)
        elif kind == "ack":
            if member.pending.pop(str(event.get("ref")), None) is not None or run.storm is None:
                run.acked.append((event["id"], member.spec.room))
        elif kind == "error":
            run.errors[f"error frame: {event.get('code')}"] += 1
        elif kind == "welcome" and not member.welcomed.done():
            # A reconnect's history: every retained event after ``since``, the same as live ones.
            for past in event.get("history") or ():
                if past.get("type") == "message":
                    self._on_message(member, past, now, live=False)
            if event.get("truncated") and run.storm is not None:
                run.storm.truncated += 1
            member.welcomed.set_result(None)

    def _on_message(self, member: Member, event: dict, now: int, live: bool) -> None:
        run = self._run
        parts = event.get("text", "").split(" ")
        if len(parts) != 3:
            return
        tag, sender, sent_ns = parts
        event_id = event["id"]
        key = _event_key(event_id)
        if key <= member.last_id:
            run.duplicated += 1
            return
        member.last_id, member.last_event_id = key, event_id
        if tag != run.tag:  # a straggler from an earlier run
            return
        member.received.append(event_id)
        run.delivered += 1
        run.last_receive_ns = now
        if live and sender != member.spec.username:
            latency = (now - int(sent_ns)) // 1000
            run.latencies_us.append(latency)
            if run.storm is not None and member.spec.port != run.storm.victim_port:
                run.bystander_samples.extend((now, latency))

    def _on_close(self, member: Member, code: int, reason: str) -> None:
        member.closed = True
        self._closes[code] += 1
        if not member.welcomed.done():
            member.welcomed.set_exception(ClosedBeforeWelcome(code, reason))
            member.welcomed.exception()  # retrieved: whoever awaits it still gets it, nobody else need
        storm = self._run.storm
        if storm is not None and not member.reconnecting:
            storm.dropped += 1
            storm.noticed_ns.append(time.monotonic_ns() - storm.kill_at_ns)
            member.reconnecting = True
            asyncio.get_running_loop().create_task(self._reconnect(member, storm))

    # Commands.

    async def _cmd_connect(self, host: str, port: int, members: list[MemberSpec]) -> dict:
        """Open every socket (a bounded number at a time) and wait for each welcome."""
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        failures: Counter = Counter()
        started = time.monotonic()
        welcomes = array("q")

        async def open_one(spec: MemberSpec) -> None:
            member = Member(spec, asyncio.get_running_loop().create_future())
            for _ in range(CONNECT_RETRIES):
                async with gate:
                    began = time.monotonic_ns()
                    try:
                        await self._open(member, host, spec.port or port, spec.path)
                    except ClosedBeforeWelcome as exc:
                        if exc.retry_after is None:
                            failures[_reason(exc)] += 1
                            return
                        wait = exc.retry_after
                    except Exception as exc:
                        failures[_reason(exc)] += 1
                        return
                    else:
                        welcomes.append((time.monotonic_ns() - began) // 1000)
                        self._members.append(member)
                        return
                # Refused by the gateway's handshake rate: come back when it said, as the web client does.
                await asyncio.sleep(wait)
            failures["still refused after every retry"] += 1

        await asyncio.gather(*(open_one(spec) for spec in members))
        return {
            "connected": Counter(m.spec.room for m in self._members if not m.closed),
            "failures": failures,
            "seconds": time.monotonic() - started,
            "welcome_us": welcomes.tobytes(),
        }

    async def _open(self, member: Member, host: str, port: int, path: str, storm: Storm | None = None) -> None:
        """One socket for ``member``, up to its welcome; on failure it is closed and the error raised."""
        member.welcomed = asyncio.get_running_loop().create_future()
        member.closed = False
        member.client = None
        try:
            member.client = await asyncio.wait_for(
                connect(
                    host,
                    port,
                    path,
                    member.spec.headers,
                    lambda payload: self._on_text(member, payload),
                    lambda code, reason: self._on_close(member, code, reason),
                ),
                CONNECT_TIMEOUT_SECONDS,
            )
            if storm is not None:
                storm.upgraded_ns.append(time.monotonic_ns() - storm.kill_at_ns)
            await asyncio.wait_for(member.welcomed, CONNECT_TIMEOUT_SECONDS)
        except BaseException:
            member.closed = True
            if member.client is not None:
                member.client.close()
            raise

    async def _reconnect(self, member: Member, storm: Storm) -> None:
        """The web client's reconnect: jittered backoff, ``since`` the last event, the outbox sent again.

        The socket died uncleanly, so the first attempt is spread wider; after a refusal with a retry hint,
        the hint is the delay instead of the backoff's, and the refusal is not one of the attempts.
        """
        try:
            hint = None
            attempt = hinted = 0
            while True:
                if hint is not None:
                    if hinted >= HINTED_ATTEMPTS:
                        break
                    hinted += 1
                    await asyncio.sleep(hint)
                else:
                    if attempt >= BACKOFF_ATTEMPTS:
                        break
                    await asyncio.sleep(drop_delay() if attempt == 0 else backoff_delay(attempt))
                    attempt += 1
                since = f"&since={member.last_event_id}" if member.last_event_id else ""
                try:
                    await self._open(member, "127.0.0.1", member.spec.fallback, member.spec.path + since, storm)
                except Exception as exc:
                    storm.failures[_reason(exc)] += 1
                    hint = getattr(exc, "retry_after", None)
                    continue
                storm.back_ns.append(time.monotonic_ns() - storm.kill_at_ns)
                storm.attempts[attempt + hinted] += 1
                for ref, text in list(member.pending.items()):
                    member.client.send_text(_message_frame(text, ref))
                    storm.resent += 1
                return
            storm.gave_up += 1
        finally:
            member.reconnecting = False

    async def _cmd_storm(
        self,
        tag: str,
        rate: float,
        start_at: float,
        kill_at: float,
        victim_port: int,
        chat_until: float,
        give_up_at: float,
    ) -> dict:
        """Chat at ``rate`` from ``start_at`` to ``chat_until`` while a gateway dies at ``kill_at``.

        Members whose socket drops reconnect (to their fallback gateway) like the web client; messages
        typed meanwhile wait in the outbox. Then wait until every member is back (or ``give_up_at``).
        """
        storm = Storm(victim_port, int(kill_at * 1e9))
        run = self._run = Run(tag=tag, storm=storm)
        self._closes.clear()
        for member in self._members:
            member.received = []
            member.pending.clear()
        await asyncio.gather(*(self._chat(member, run, rate, start_at, chat_until) for member in self._members))
        while time.monotonic() < give_up_at and any(m.closed or m.reconnecting for m in self._members):
            await asyncio.sleep(0.05)
        while time.monotonic() < give_up_at and time.monotonic() - self._last_frame < 0.5:
            await asyncio.sleep(0.05)
        self._run = Run(tag="")
        back = [member for member in self._members if not member.closed]
        receipts: Counter = Counter()
        for member in back:
            receipts.update(member.received)
        return {
            "connected": Counter(member.spec.room for member in back),
            "members": len(self._members),
            "sent": run.sent,
            "delivered": run.delivered,
            "duplicated": run.duplicated,
            "acked": run.acked,
            "unacked": sum(len(member.pending) for member in self._members),
            "receipts": receipts,
            "bystander_samples": run.bystander_samples.tobytes(),
            "errors": run.errors,
            "closes": Counter(self._closes),
            "dropped": storm.dropped,
            "back_ns": storm.back_ns.tobytes(),
            "noticed_ns": storm.noticed_ns.tobytes(),
            "upgraded_ns": storm.upgraded_ns.tobytes(),
            "attempts": storm.attempts,
            "failures": storm.failures,
            "gave_up": storm.gave_up,
            "resent": storm.resent,
            "truncated": storm.truncated,
        }

    async def _chat(self, member: Member, run: Run, rate: float, start: float, end: float) -> None:
        """Like ``_send_loop``, but through the outbox: a message typed while away is sent on return."""
        interval = 1.0 / rate
        due = start + random.random() * interval
        username = member.spec.username
        sequence = 0
        while due < end:
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            text = f"{run.tag} {username} {time.monotonic_ns()}"
            ref = f"{run.tag}-{sequence}"
            member.pending[ref] = text
            if not member.closed and member.client is not None and member.welcomed.done():
                member.client.send_text(_message_frame(text, ref))
            run.sent += 1
            sequence += 1
            due += interval

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
            # The ref names the run too: the gateway acks a ref it already stored with the first id, unstored.
            client.send_text(_message_frame(f"{run.tag} {username} {time.monotonic_ns()}", f"{run.tag}-{sequence}"))
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


def backoff_delay(attempt: int) -> float:
    """The web client's delay before reconnect number ``attempt`` (0-based): in [d/2, d], d = min(10, 0.5·2ⁿ) s."""
    ceiling = min(BACKOFF_MAX_SECONDS, BACKOFF_BASE_SECONDS * 2**attempt)
    return ceiling / 2 + random.random() * ceiling / 2


def drop_delay() -> float:
    """The web client's first delay after an unclean close: in [base/2, ``DROP_SPREAD_SECONDS``]."""
    low = BACKOFF_BASE_SECONDS / 2
    return low + random.random() * (DROP_SPREAD_SECONDS - low)


def _message_frame(text: str, ref: str) -> str:
    return f'{{"type":"message","text":"{text}","ref":"{ref}"}}'


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:120]


def worker_main(pipe: Connection, cpus: set[int] | None) -> None:
    """Entry point of a load-generator process."""
    if cpus:
        os.sched_setaffinity(0, cpus)
    uvloop.run(Worker(pipe).serve())
