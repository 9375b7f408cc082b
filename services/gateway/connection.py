"""One client socket: join, welcome, then a sender and a receiver in one task group."""

import asyncio
import logging
import uuid
from collections.abc import Callable

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from services.common.presence import utc_now_iso
from services.common.tokens import Principal
from services.gateway import store
from services.gateway.frames import ChatMessage, FrameError, parse_client_frame
from services.gateway.hub import Hub, LocalRoom
from services.gateway.limits import TokenBucket
from services.gateway.mailbox import Mailbox
from services.gateway.protocol import WRITE_FRAME_EXTENSION, encode_text_frame
from services.gateway.settings import GatewaySettings
from services.gateway.store import EventId

log = logging.getLogger(__name__)

CLOSE_ROOM_GONE = 4404
CLOSE_UNSUPPORTED = 1003
CLOSE_TRY_AGAIN = 1013
# How long a new socket waits for its room's subscription (Redis may be restarting).
SUBSCRIBE_TIMEOUT_SECONDS = 10
# How long a close may wait for a peer that has stopped reading before the connection is dropped instead.
CLOSE_SEND_TIMEOUT_SECONDS = 2


class CloseSocket(Exception):
    """End the socket with this close code."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _Close:
    """A request, queued behind pending frames, to close the socket."""

    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


class ClientConnection:
    __slots__ = (
        "websocket",
        "principal",
        "session_id",
        "code",
        "since",
        "conn_id",
        "last_id",
        "_hub",
        "_state",
        "_settings",
        "_queue",
        "_closing",
        "_bucket",
        "_write_frame",
        "_sending",
        "_sender",
        "_cut_off",
    )

    def __init__(
        self, websocket: WebSocket, principal: Principal, code: str, since: EventId | None, hub: Hub, app_state: object
    ) -> None:
        self.websocket = websocket
        self.principal = principal
        self.session_id = principal.session_id
        self.code = code
        self.since = since
        self.conn_id = uuid.uuid4().hex
        self.last_id: EventId = (0, 0)
        self._hub = hub
        self._state = app_state
        self._settings: GatewaySettings = app_state.settings
        self._queue: Mailbox[tuple[EventId | None, str] | _Close] = Mailbox()
        self._closing = False
        self._bucket = TokenBucket(self._settings.message_rate_per_second, self._settings.message_burst)
        # The protocol's direct writer, once the welcome is out; None means every frame takes the queue.
        self._write_frame: Callable[[bytes], bool] | None = None
        # The sender is inside a send() that may wait for the transport to drain.
        self._sending = False
        self._sender: asyncio.Task[None] | None = None
        # The close that cancelled the sender, stuck behind a peer that stopped reading.
        self._cut_off: _Close | None = None

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    # Called by the hub.

    def deliver(self, event_id: EventId, frame: str, wire: bytes) -> None:
        if self._closing:
            return
        if self._can_write_now():
            # Nothing is waiting to go out before it: write the room's encoded frame straight away.
            if event_id <= self.last_id:
                return
            if self._write_frame(wire):
                self.last_id = event_id
                return
        if self._queue.qsize() >= self._settings.send_queue_max:
            self.close(CLOSE_TRY_AGAIN, "too far behind; reconnect with since")
            return
        self._queue.put_nowait((event_id, frame))

    def _reply(self, frame: str) -> None:
        """An ack or error for this socket alone: written at once when nothing waits to go out before it."""
        if self._closing:
            return
        if self._can_write_now() and self._write_frame(encode_text_frame(frame)):
            return
        self._queue.put_nowait((None, frame))

    def _can_write_now(self) -> bool:
        """Whether a frame may skip the queue: the direct writer is set up and nothing waits to go out first."""
        return self._write_frame is not None and not self._sending and self._queue.empty()

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        request = _Close(code, reason)
        self._queue.put_nowait(request)
        if self._sending and self._sender is not None:
            # The sender waits for a peer that stopped reading: the close must not wait behind it.
            self._cut_off = request
            self._sender.cancel()

    # The socket's life.

    async def run(self) -> None:
        settings, scripts = self._settings, self._state.scripts
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                room = await self._hub.attach(self)
        except TimeoutError:
            self._hub.detach(self)
            await self._close_quietly(CLOSE_TRY_AGAIN, "the bus is unavailable; reconnect")
            return
        try:
            joined = await store.join(
                scripts,
                settings.gateway_id,
                self.code,
                self.conn_id,
                self.principal.user_id,
                self.principal.username,
                utc_now_iso(),
                settings.room_history_max,
            )
        except RedisError as failure:
            log.warning("Redis failed during a join", extra={"error": str(failure)})
            self._hub.detach(self)
            await self._close_quietly(CLOSE_TRY_AGAIN, "temporarily unavailable; reconnect")
            return
        except asyncio.CancelledError:
            self._hub.detach(self)
            raise
        if joined is None:
            self._hub.detach(self)
            await self._close_quietly(CLOSE_ROOM_GONE, "no live room with this code")
            return
        self._state.metrics.connections.inc()
        log.info("socket joined", extra={"conn": self.conn_id, "room": self.code, "user": self.principal.user_id})
        try:
            await self._welcome(room, joined)
            self._write_frame = (self.websocket.scope.get("extensions") or {}).get(WRITE_FRAME_EXTENSION)
            await self._pump()
        except (WebSocketDisconnect, OSError):
            log.debug("client left during the welcome", extra={"conn": self.conn_id})
        except RedisError as failure:
            log.warning("Redis failed during the welcome", extra={"error": str(failure)})
            await self._close_quietly(CLOSE_TRY_AGAIN, "temporarily unavailable; reconnect")
        finally:
            self._hub.detach(self)
            self._state.metrics.connections.dec()
            await self._leave()
            log.info("socket left", extra={"conn": self.conn_id, "room": self.code})

    async def _welcome(self, room: LocalRoom, joined: store.Joined) -> None:
        history = await store.history(self._state.redis, self.code, self.since, self._settings.history_on_join)
        if history.last_id is not None:
            self.last_id = history.last_id
            room.seen(history.last_id)
        welcome = {
            "type": "welcome",
            "room": {"code": self.code, "name": joined.name},
            "you": self.principal.username,
            "members": joined.members,
            "history": [orjson.Fragment(frame) for frame in history.frames],
        }
        if self.since is not None:
            welcome["truncated"] = history.truncated
        await self.websocket.send_text(orjson.dumps(welcome).decode())

    async def _pump(self) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                self._sender = group.create_task(self._send_loop())
                group.create_task(self._receive_loop())
        except* CloseSocket as closing:
            first = closing.exceptions[0]
            await self._close_quietly(first.code, first.reason)
        except* (WebSocketDisconnect, OSError):
            pass
        except* RedisError as failure:
            log.warning("Redis failed during a socket; closing it", extra={"error": str(failure.exceptions[0])})
            await self._close_quietly(CLOSE_TRY_AGAIN, "temporarily unavailable; reconnect with since")

    async def _close_quietly(self, code: int, reason: str) -> None:
        try:
            async with asyncio.timeout(CLOSE_SEND_TIMEOUT_SECONDS):
                await self.websocket.close(code, reason)
        except TimeoutError:
            # The peer reads nothing, not even the close; the protocol drops the connection once we return.
            log.info("peer not reading; connection dropped", extra={"conn": self.conn_id, "code": code})
        except (RuntimeError, OSError, WebSocketDisconnect):
            log.debug("socket already closed", extra={"conn": self.conn_id})

    async def _send_loop(self) -> None:
        try:
            await self._send_queued()
        except asyncio.CancelledError:
            if self._cut_off is None:
                raise
            raise CloseSocket(self._cut_off.code, self._cut_off.reason) from None

    async def _send_queued(self) -> None:
        send = self.websocket.send_text
        queue = self._queue
        while True:
            item = await queue.get()
            while True:
                if isinstance(item, _Close):
                    raise CloseSocket(item.code, item.reason)
                event_id, frame = item
                if event_id is None or event_id > self.last_id:
                    if event_id is not None:
                        self.last_id = event_id
                    self._sending = True
                    await send(frame)
                    self._sending = False
                if queue.empty():
                    break
                item = queue.get_nowait()

    async def _receive_loop(self) -> None:
        while True:
            message = await self.websocket.receive()
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            text = message.get("text")
            if text is None:
                raise CloseSocket(CLOSE_UNSUPPORTED, "binary frames are not supported")
            parsed = parse_client_frame(text)
            if isinstance(parsed, ChatMessage) and not self._bucket.allow():
                parsed = FrameError("rate_limited", "Too many messages; slow down.", parsed.ref)
            if isinstance(parsed, FrameError):
                self._reply(parsed.frame())
                continue
            await self._send_message(parsed)

    async def _send_message(self, message: ChatMessage) -> None:
        body = orjson.dumps(
            {"type": "message", "username": self.principal.username, "text": message.text, "ts": utc_now_iso()}
        )
        event_id = await self._state.appender.append(self.code, body)
        if event_id is None:
            raise CloseSocket(CLOSE_ROOM_GONE, "the room has closed")
        if message.ref is not None:
            self._reply(orjson.dumps({"type": "ack", "ref": message.ref, "id": event_id}).decode())

    async def _leave(self) -> None:
        linger_ms = int(self._settings.drain_linger_seconds * 1000) if self._state.draining else 0
        try:
            await store.leave(
                self._state.scripts,
                self._settings.gateway_id,
                self.code,
                self.conn_id,
                utc_now_iso(),
                self._settings.room_history_max,
                linger_ms,
            )
        except RedisError as exc:
            # Not lost: the heartbeat loop records it once Redis answers again.
            log.warning("leave not recorded yet; retried", extra={"conn": self.conn_id, "error": str(exc)})
            self._state.unrecorded_leaves.append((self.code, self.conn_id))
