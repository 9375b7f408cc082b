"""One client socket: join, welcome, then its frames received in its own task, and sent by a task of their own
only while some wait.

An idle socket lives for hours, and each task costs it about a kilobyte: the
frames the hub hands over are written straight to the transport when the socket
can take them (nearly always), so a sender task is started only when frames
queue up, and ends once it has sent them. A failure of the sender (a close
request reached, a broken transport) ends the receive loop by cancelling it,
as a task group would.
"""

import asyncio
import itertools
import logging
import os
import secrets
from collections.abc import Callable

import orjson
from fastapi import WebSocket, WebSocketDisconnect
from redis.exceptions import RedisError

from services.common.clock import utc_now_iso
from services.common.redis_schema import room_key
from services.common.tokens import Principal
from services.gateway.admission import Seat
from services.gateway.closes import Close, ErrorCode
from services.gateway.context import GatewayContext
from services.gateway.frames import PONG_FRAME, ChatMessage, FrameError, Leave, Ping, Typing, parse_client_frame
from services.gateway.hub import LocalRoom
from services.gateway.limits import TokenBucket
from services.gateway.line import Command
from services.gateway.mailbox import Mailbox
from services.gateway.presence import Joined
from services.gateway.protocol import WRITE_FRAME_EXTENSION, encode_text_frame
from services.gateway.timeline import EventId

log = logging.getLogger(__name__)

# Connection ids are unique among every gateway's sockets: a random prefix, the process, then a count
# (cheaper than a UUID each).
CONN_ID_PREFIX = secrets.token_hex(6)
_conn_numbers = itertools.count(1)
# How long a new socket waits for its room's subscription (Redis may be restarting).
SUBSCRIBE_TIMEOUT_SECONDS = 10
# How long a close may wait for a peer that has stopped reading before the connection is dropped instead.
CLOSE_SEND_TIMEOUT_SECONDS = 2
# The receive loop lets other sockets run after this many frames read without waiting.
FRAMES_PER_TURN = 16


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
        "username",
        "code",
        "since",
        "conn_id",
        "last_id",
        "_context",
        "_queue",
        "_closing",
        "_explicit_leave",
        "_bucket",
        "_seat",
        "_frames",
        "_typing",
        "_sent",
        "_write_frame",
        "_sending",
        "_sender",
        "_cut_off",
        "_receiver",
        "_ending",
        "_indexed_as",
    )

    def __init__(
        self,
        websocket: WebSocket,
        principal: Principal,
        code: str,
        since: EventId | None,
        context: GatewayContext,
        seat: Seat,
    ) -> None:
        settings = context.settings
        self.websocket = websocket
        self.principal = principal
        self.session_id = principal.session_id
        self.username = principal.username
        self.code = code
        self.since = since
        self.conn_id = f"{CONN_ID_PREFIX}{os.getpid():x}.{next(_conn_numbers):x}"
        self.last_id: EventId = (0, 0)
        self._context = context
        self._queue: Mailbox[tuple[EventId | None, str] | _Close] = Mailbox()
        self._closing = False
        # The user asked to leave (the leave frame, a logout): no leave grace.
        self._explicit_leave = False
        self._bucket = TokenBucket(settings.message_rate_per_second, settings.message_burst)
        # The socket's place in its user's and address's counts, whose message budget all the user's sockets share.
        self._seat = seat
        self._frames = TokenBucket(settings.frame_rate_per_second, settings.frame_burst)
        self._typing = TokenBucket(settings.typing_rate_per_second, 1)
        # Messages sent without a ref get one of the gateway's, so a retried append is still stored once.
        self._sent = 0
        # The protocol's direct writer, once the welcome is out; None means every frame takes the queue.
        self._write_frame: Callable[[bytes], bool] | None = None
        # The sender is inside a send() that may wait for the transport to drain.
        self._sending = False
        # The task sending the queue, while frames wait in it.
        self._sender: asyncio.Task[None] | None = None
        # The close that cancelled the sender, stuck behind a peer that stopped reading.
        self._cut_off: _Close | None = None
        # The task receiving the client's frames (the socket's own), while it does.
        self._receiver: asyncio.Task[None] | None = None
        # What ended the sender, for the receiver to raise.
        self._ending: BaseException | None = None
        # The gateway id the room was put in the rooms index under, if ``index_room`` did it.
        self._indexed_as: str | None = None

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
        self._enqueue((event_id, frame))

    def deliver_run(self, events: list[tuple[EventId, str, bytes]], joined: bytes) -> None:
        """Events of one read, oldest first: one write of them all when the socket can take it now and has
        none of them yet, else one by one (a syscall less per event, when a room is busy).
        """
        if self._closing:
            return
        if self._can_write_now() and events[0][0] > self.last_id and self._write_frame(joined):
            self.last_id = events[-1][0]
            return
        for event_id, frame, wire in events:
            self.deliver(event_id, frame, wire)

    def deliver_ephemeral(self, wire: bytes) -> None:
        """A typing notice: written only if the socket can take it now; a backed-up socket skips it."""
        if not self._closing and self._can_write_now():
            self._write_frame(wire)

    def _reply(self, frame: str) -> None:
        """An ack, error or pong for this socket alone, under the same bound as the room's events."""
        if self._closing:
            return
        if self._can_write_now() and self._write_frame(encode_text_frame(frame)):
            return
        self._enqueue((None, frame))

    def _enqueue(self, item: tuple[EventId | None, str]) -> None:
        """Queue a frame for the sender; a socket whose backlog passes the bound is closed instead."""
        if self._queue.qsize() >= self._context.settings.send_queue_max:
            self.close(Close.TRY_AGAIN, "too far behind; reconnect with since")
            return
        self._queue.put_nowait(item)
        self._start_sender()

    def _can_write_now(self) -> bool:
        """Whether a frame may skip the queue: the direct writer is set up and nothing waits to go out first."""
        return self._write_frame is not None and not self._sending and self._queue.empty()

    def close(self, code: int, reason: str) -> None:
        if self._closing:
            return
        self._closing = True
        if code == Close.SESSION_ENDED:
            self._explicit_leave = True
        request = _Close(code, reason)
        self._queue.put_nowait(request)
        if self._sending and self._sender is not None:
            # The sender waits for a peer that stopped reading: the close must not wait behind it.
            self._cut_off = request
            self._sender.cancel()
        else:
            self._start_sender()

    # The socket's life.

    def index_room(self) -> Command:
        """The command that puts the room in this gateway's rooms index, for the caller's batch ahead of the join."""
        command, self._indexed_as = self._context.presence.index(self.code)
        return command

    def release_seat(self) -> None:
        """Give the socket's place in its user's and address's counts back (once; again is harmless)."""
        self._seat.release()

    async def run(self) -> bool:
        """Serve the socket until it ends; False if its room was not live.

        This frame lives as long as the socket, so what the join and the welcome
        needed (the room's members, its history) lives in frames that end first.
        """
        context = self._context
        joined = await self._join()
        if isinstance(joined, bool):
            return joined
        context.metrics.connections.inc()
        log.debug("socket joined", extra={"conn": self.conn_id, "room": self.code, "user": self.principal.user_id})
        try:
            await self._welcome(*joined)
            del joined
            await self._pump()
        except (WebSocketDisconnect, OSError):
            log.debug("client left during the welcome", extra={"conn": self.conn_id})
        except RedisError as failure:
            log.warning("Redis failed during the welcome", extra={"error": str(failure)})
            await self._close_quietly(Close.TRY_AGAIN, "temporarily unavailable; reconnect")
        finally:
            self._seat.release()
            context.hub.detach(self)
            context.metrics.connections.dec()
            await self._leave()
            log.debug("socket left", extra={"conn": self.conn_id, "room": self.code, "explicit": self._explicit_leave})
        return True

    async def _join(self) -> tuple[LocalRoom, Joined] | bool:
        """Attach to the room here and join it in Redis; once not joined, whether the room was live."""
        context = self._context
        hub = context.hub
        try:
            async with asyncio.timeout(SUBSCRIBE_TIMEOUT_SECONDS):
                room = await hub.attach(self)
        except TimeoutError:
            hub.detach(self)
            await self._close_quietly(Close.TRY_AGAIN, "the bus is unavailable; reconnect")
            return True
        try:
            joined = await context.presence.join(
                self.code,
                self.conn_id,
                self.principal,
                self.since,
                context.settings.history_on_join,
                self._indexed_as,
            )
        except RedisError as failure:
            log.warning("Redis failed during a join", extra={"error": str(failure)})
            hub.detach(self)
            await self._close_quietly(Close.TRY_AGAIN, "temporarily unavailable; reconnect")
            return True
        except asyncio.CancelledError:
            hub.detach(self)
            raise
        if joined is None:
            hub.detach(self)
            await self._close_quietly(Close.ROOM_GONE, "no live room with this code")
            return False
        return room, joined

    async def _welcome(self, room: LocalRoom, joined: Joined) -> None:
        history = joined.history
        if history.last_id is not None:
            self.last_id = history.last_id
            room.seen(history.last_id)
        welcome = {
            "type": "welcome",
            "room": {"code": self.code, "name": joined.name},
            "you": self.principal.username,
            "members": orjson.Fragment(joined.members_json),
            "history": orjson.Fragment(history.frames_json),
        }
        if self.since is not None:
            welcome["truncated"] = history.truncated
        encoded = orjson.dumps(welcome)
        write_frame = (self.websocket.scope.get("extensions") or {}).get(WRITE_FRAME_EXTENSION)
        # Straight to the transport when it can take it (it nearly always can), else the ASGI way, which waits.
        if write_frame is None or not write_frame(encode_text_frame(encoded)):
            await self.websocket.send_text(encoded.decode())
        self._write_frame = write_frame

    async def _pump(self) -> None:
        try:
            await self._receive()
        except CloseSocket as closing:
            await self._close_quietly(closing.code, closing.reason)
        except (WebSocketDisconnect, OSError):
            pass
        except RedisError as failure:
            log.warning("Redis failed during a socket; closing it", extra={"error": str(failure)})
            await self._close_quietly(Close.TRY_AGAIN, "temporarily unavailable; reconnect with since")

    async def _receive(self) -> None:
        """Receive the client's frames until the socket ends: by them, by the peer, or by the sender's failure."""
        receiver = self._receiver = asyncio.current_task()
        # Events queued while the socket joined are mostly in its welcome's history (its own join among them):
        # dropped now, they need no sender, and the frames that follow can be written straight away.
        self._queue.drop_leading(self._in_history)
        self._start_sender()
        try:
            await self._receive_loop()
        except asyncio.CancelledError:
            ending = self._ending
            # Cancelled by the sender's failure alone (not also from outside): that failure ends the socket.
            if ending is None or receiver.uncancel() > 0:
                raise
            raise ending from None
        finally:
            self._receiver = None
            sender = self._sender
            if sender is not None:
                sender.cancel()
                await asyncio.wait([sender])
                # A sender cancelled before it ever ran did not clear its own place.
                self._sender = None

    async def _close_quietly(self, code: int, reason: str) -> None:
        self._seat.release()
        try:
            async with asyncio.timeout(CLOSE_SEND_TIMEOUT_SECONDS):
                await self.websocket.close(code, reason)
        except TimeoutError:
            # The peer reads nothing, not even the close; the protocol drops the connection once we return.
            log.info("peer not reading; connection dropped", extra={"conn": self.conn_id, "code": code})
        except (RuntimeError, OSError, WebSocketDisconnect):
            log.debug("socket already closed", extra={"conn": self.conn_id})

    def _in_history(self, item: tuple[EventId | None, str] | _Close) -> bool:
        return isinstance(item, tuple) and item[0] is not None and item[0] <= self.last_id

    def _start_sender(self) -> None:
        """Start a sender for the waiting frames, if the socket is receiving and none runs."""
        if self._sender is None and self._receiver is not None and self._ending is None and not self._queue.empty():
            self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    async def _send_loop(self) -> None:
        """Send the queue until it is empty; a failure ends the socket (the receiver raises it)."""
        try:
            queue = self._queue
            while not queue.empty():
                await self._send_item(queue.get_nowait())
        except asyncio.CancelledError:
            if self._cut_off is None:
                raise
            self._fail(CloseSocket(self._cut_off.code, self._cut_off.reason))
        except Exception as failure:
            self._fail(failure)
        finally:
            self._sender = None

    def _fail(self, failure: BaseException) -> None:
        """End the receive loop with the sender's failure (the first one)."""
        if self._ending is None and self._receiver is not None:
            self._ending = failure
            self._receiver.cancel()

    async def _send_item(self, item: tuple[EventId | None, str] | _Close) -> None:
        if isinstance(item, _Close):
            raise CloseSocket(item.code, item.reason)
        event_id, frame = item
        # Once closing, the backlog is skipped: the close must not wait behind it for a peer that reads nothing.
        if self._closing or (event_id is not None and event_id <= self.last_id):
            return
        if event_id is not None:
            self.last_id = event_id
        self._sending = True
        try:
            await self.websocket.send_text(frame)
        finally:
            self._sending = False

    async def _receive_loop(self) -> None:
        # Each frame lives in ``_take``'s frame only, not in this one's (a socket's receiver waits for hours).
        receive = self.websocket.receive
        read = 0
        while True:
            await self._take(await receive())
            read += 1
            if read % FRAMES_PER_TURN == 0:
                # Frames already buffered are read without waiting: let the other sockets have their turn.
                await asyncio.sleep(0)

    async def _take(self, message: dict) -> None:
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        text = message.get("text")
        if text is None:
            raise CloseSocket(Close.UNSUPPORTED, "binary frames are not supported")
        if not self._frames.allow():
            raise CloseSocket(Close.POLICY, "too many frames; slow down")
        await self._handle(parse_client_frame(text))

    async def _handle(self, frame: object) -> None:
        if isinstance(frame, ChatMessage):
            if self._bucket.allow() and self._seat.messages.allow():
                await self._send_message(frame)
            else:
                self._reply(FrameError(ErrorCode.RATE_LIMITED, "Too many messages; slow down.", frame.ref).frame())
        elif isinstance(frame, Ping):
            self._reply(PONG_FRAME)
        elif isinstance(frame, Typing):
            if self._typing.allow():
                await self._send_typing()
        elif isinstance(frame, Leave):
            self._explicit_leave = True
            raise CloseSocket(Close.LEFT, "left the room")
        elif isinstance(frame, FrameError):
            self._reply(frame.frame())

    async def _send_message(self, message: ChatMessage) -> None:
        body = orjson.dumps(
            {"type": "message", "username": self.principal.username, "text": message.text, "ts": utc_now_iso()}
        )
        if len(body) > self._context.settings.max_event_bytes:
            self._reply(
                FrameError(
                    ErrorCode.TOO_LONG, "This message takes too many bytes once stored; shorten it.", message.ref
                ).frame()
            )
            return
        if message.ref is not None:
            dedupe = f"{self.principal.user_id} {message.ref}"
        else:
            self._sent += 1
            dedupe = f"{self.principal.user_id} ~{self.conn_id}:{self._sent}"
        appended = await self._context.appender.append(self.code, body, dedupe)
        if appended is None:
            raise CloseSocket(Close.ROOM_GONE, "the room has closed")
        if message.ref is not None:
            self._reply(orjson.dumps({"type": "ack", "ref": message.ref, "id": appended.event_id}).decode())

    async def _send_typing(self) -> None:
        frame = orjson.dumps({"type": "typing", "username": self.principal.username}).decode()
        if not await self._context.scripts.publish_ephemeral(keys=[room_key(self.code)], args=[frame]):
            raise CloseSocket(Close.ROOM_GONE, "the room has closed")

    async def _leave(self) -> None:
        presence = self._context.presence
        try:
            await presence.leave(self.code, self.conn_id, self._explicit_leave)
        except (RedisError, asyncio.CancelledError) as exc:
            # Not lost: the heartbeat loop records it once Redis answers again. A cancellation (the server
            # shutting down, or one the client library let escape while connecting) still ends this task.
            log.warning("leave not recorded yet; retried", extra={"conn": self.conn_id, "error": repr(exc)})
            presence.unrecorded.append((self.code, self.conn_id, self._explicit_leave))
            if isinstance(exc, asyncio.CancelledError):
                raise
