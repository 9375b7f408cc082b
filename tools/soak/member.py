"""One member of a room, behaving as the web client does.

It sends a message every interval with a unique ``ref``; on any close other
than 4404, 4001 and 4401 (and 1000 after its own leave) it reconnects through
the edge with jittered exponential backoff and ``since`` = the last event id
it saw, and re-sends every unacked message with the same ``ref``. A heartbeat
(``ping``; any frame proves the link) drops a silent socket. Everything it
observes goes into the shared ``History``.
"""

import asyncio
import random
import time
from dataclasses import dataclass

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tools.soak.history import Ack, Delivery, History, Sent, Session, parse_id
from tools.soak.settings import SoakSettings

TIMELINE = ("message", "join", "leave")
FINAL_CLOSES = {4404: "room_closed", 4001: "logged_out", 4401: "unauthorized"}
CONNECT_TIMEOUT_SECONDS = 10.0
LEAVE_TIMEOUT_SECONDS = 5.0
RATE_LIMITED_RETRY_SECONDS = 1.0


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """The web client's backoff: base doubling per attempt up to a cap, then a random half to all of it."""
    ceiling = min(cap, base * 2 ** max(0, attempt))
    return ceiling / 2 + rng.random() * ceiling / 2


class DeadLink(Exception):
    """Nothing came from the server for too long: the socket is given up."""


@dataclass
class Phases:
    """Set by the runner: stop typing, then leave."""

    stop_sending: asyncio.Event
    leave: asyncio.Event


class Member:
    def __init__(self, name: str, token: str, room: str, ws_base: str, settings: SoakSettings,
                 history: History, phases: Phases, rng: random.Random) -> None:
        self.name = name
        self.token = token
        self.room = room
        self.ws_base = ws_base
        self.settings = settings
        self.history = history
        self.phases = phases
        self.rng = rng
        self.session = history.sessions.setdefault(name, Session(member=name, room=room))
        self.last_id: str | None = None
        self.pending: dict[str, str] = {}  # ref -> text, unacked, in sending order
        self.retry_at: float | None = None  # rate limited: send pending again then
        self.count = 0
        self.lost_at: float | None = None
        self.received_ids: set[str] = set()

    async def run(self, hard_deadline: float) -> None:
        """Connect, chat, reconnect, until told to leave or the deadline passes."""
        attempt = 0
        while self.session.ended == "running":
            if time.monotonic() >= hard_deadline:
                self.session.ended = "deadline"
                return
            url = f"{self.ws_base}/ws?room={self.room}" + (f"&since={self.last_id}" if self.last_id else "")
            try:
                ws = await connect(
                    url, additional_headers={"Authorization": f"Bearer {self.token}"}, proxy=None,
                    open_timeout=CONNECT_TIMEOUT_SECONDS, ping_interval=None, close_timeout=2,
                )
            except (OSError, InvalidHandshake, TimeoutError):
                ws = None
            if ws is not None:
                try:
                    welcomed = await self._converse(ws)
                finally:
                    ws.transport.abort()  # whatever state it is in, this socket is done
                if welcomed:
                    attempt = 0
            if self.session.ended != "running":
                return
            if self.lost_at is None:
                self.lost_at = time.monotonic()
            if self.phases.leave.is_set():
                self.session.ended = "left"
                return
            delay = backoff_delay(attempt, self.settings.backoff_base_seconds, self.settings.backoff_max_seconds, self.rng)
            attempt += 1
            try:
                await asyncio.wait_for(self.phases.leave.wait(), delay)
            except TimeoutError:
                pass

    async def _converse(self, ws: ClientConnection) -> bool:
        """One socket's life; True when it was welcomed."""
        welcomed = False
        left = False
        leave_deadline = 0.0
        now = last_frame = time.monotonic()
        next_send = now + self.rng.random() * self.settings.message_interval_seconds
        next_ping = now + self.settings.ping_seconds
        try:
            while True:
                now = time.monotonic()
                if welcomed and self.phases.leave.is_set() and not left:
                    left = True
                    await ws.send('{"type":"leave"}')
                    leave_deadline = now + LEAVE_TIMEOUT_SECONDS
                if left and now >= leave_deadline:
                    self.session.ended = "left"
                    return welcomed
                if welcomed and not left:
                    if now >= next_send:
                        next_send = now + self.settings.message_interval_seconds
                        if not self.phases.stop_sending.is_set() and len(self.pending) < self.settings.pending_max:
                            await self._send_new(ws)
                    if self.retry_at is not None and now >= self.retry_at:
                        self.retry_at = None
                        await self._resend_pending(ws)
                    if now >= next_ping:
                        next_ping = now + self.settings.ping_seconds
                        await ws.send('{"type":"ping"}')
                if now - last_frame > self.settings.dead_after_seconds:
                    raise DeadLink
                wake = min(next_send, next_ping, last_frame + self.settings.dead_after_seconds + 0.01)
                if self.retry_at is not None:
                    wake = min(wake, self.retry_at)
                try:
                    raw = await asyncio.wait_for(ws.recv(), max(0.01, min(wake - now, 0.5)))
                except TimeoutError:
                    continue
                last_frame = time.monotonic()
                frame = orjson.loads(raw)
                if frame.get("type") == "welcome":
                    welcomed = True
                    self._welcome(frame)
                    await self._resend_pending(ws)
                else:
                    self._frame(frame)
        except ConnectionClosed as closed:
            code = closed.rcvd.code if closed.rcvd else 1006
            if code in FINAL_CLOSES:
                self.session.ended = FINAL_CLOSES[code]
            elif code == 1000 and left:
                self.session.ended = "left"
        except DeadLink:
            if self.session.ended == "running" and welcomed:
                self.lost_at = last_frame  # the link went silent then, not when the silence was noticed
            return welcomed
        except (OSError, orjson.JSONDecodeError):
            pass
        if self.session.ended == "running" and welcomed:
            self.lost_at = time.monotonic()
        return welcomed

    def _welcome(self, frame: dict) -> None:
        now = time.monotonic()
        history = [event for event in frame.get("history", []) if event.get("type") in TIMELINE]
        if not self.session.welcomed:
            self.session.welcomed = True
            self.session.floor = history[0]["id"] if history else None
        else:
            self.session.reconnects += 1
            if self.lost_at is not None:
                self.session.outages.append(now - self.lost_at)
        self.lost_at = None
        for event in history:
            self._deliver(event, now, live=False)

    def _frame(self, frame: dict) -> None:
        kind = frame.get("type")
        if kind in TIMELINE:
            self._deliver(frame, time.monotonic(), live=True)
        elif kind == "ack":
            ref = frame.get("ref")
            if ref in self.pending:
                del self.pending[ref]
            self.history.acks.append(Ack(self.name, self.room, ref, frame["id"], time.monotonic()))
        elif kind == "error" and frame.get("ref") in self.pending:
            if frame.get("code") == "rate_limited":
                self.retry_at = time.monotonic() + RATE_LIMITED_RETRY_SECONDS
            else:
                self.pending.pop(frame["ref"])
                self.history.rejected.append((self.name, frame["ref"], str(frame.get("code"))))
        # pong, typing, errors without a ref of ours: nothing to record.

    def _deliver(self, event: dict, at: float, live: bool) -> None:
        event_id = event["id"]
        self.history.deliveries.append(
            Delivery(self.name, self.room, event_id, event["type"], event.get("text"), at, live)
        )
        self.received_ids.add(event_id)
        if self.last_id is None or parse_id(event_id) > parse_id(self.last_id):
            self.last_id = event_id

    async def _send_new(self, ws: ClientConnection) -> None:
        self.count += 1
        ref = f"{self.name}-{self.count}"
        text = f"{self.name} says #{self.count} ({ref})"
        self.pending[ref] = text
        self.history.sent.append(Sent(self.name, self.room, ref, text, time.monotonic()))
        await ws.send(orjson.dumps({"type": "message", "text": text, "ref": ref}).decode())

    async def _resend_pending(self, ws: ClientConnection) -> None:
        for ref, text in list(self.pending.items()):
            await ws.send(orjson.dumps({"type": "message", "text": text, "ref": ref}).decode())
