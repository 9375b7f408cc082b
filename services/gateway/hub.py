"""One process's view of the bus: a single pub/sub connection, one subscription per room.

Each event arrives once per gateway, already encoded as its final frame, and
is handed to every local socket of the room as is. The hub re-establishes a
dropped or deaf subscription itself and recovers what it missed from the
room's stream, so no event is lost to a Redis hiccup. The client library
must never re-subscribe behind its back: its pub/sub client does not retry,
and a reconnect it makes anyway (it does so on the next read) is caught by a
connect callback and treated as a lost subscription, gap recovery included.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

import orjson
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

from services.common.redis_client import PubSubNodes, RedisClient
from services.common.redis_schema import (
    REVOCATIONS_CHANNEL,
    code_of_channel,
    frame_event_id,
    parse_event_id,
    room_key,
)
from services.gateway import timeline
from services.gateway.closes import Close
from services.gateway.protocol import encode_text_frame
from services.gateway.timeline import EventId

log = logging.getLogger(__name__)

MIN_BACKOFF_SECONDS = 0.05
PING_MESSAGE = "sala-hub-ping"
MAX_BACKOFF_SECONDS = 2.0


class Subscriber(Protocol):
    """A local socket as the hub sees it."""

    code: str
    session_id: str
    username: str

    def deliver(self, event_id: EventId, frame: str, wire: bytes) -> None: ...

    def deliver_ephemeral(self, wire: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


class DeafSubscription(Exception):
    """The pub/sub connection stopped answering pings, or was re-established behind the hub's back."""


class LocalRoom:
    """The sockets of one room on this gateway, and the last event they were given."""

    __slots__ = ("code", "channel", "sockets", "last_id", "subscribed")

    def __init__(self, code: str) -> None:
        self.code = code
        self.channel = room_key(code)
        self.sockets: set[Subscriber] = set()
        self.last_id: EventId | None = None
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def dispatch(self, event_id: EventId, frame: str) -> int:
        """Hand a new event to every local socket; returns how many got it (0 for a duplicate)."""
        if self.last_id is not None and event_id <= self.last_id:
            return 0
        self.last_id = event_id
        if not self.sockets:
            return 0
        wire = encode_text_frame(frame)
        for socket in self.sockets:
            socket.deliver(event_id, frame, wire)
        return len(self.sockets)

    def dispatch_ephemeral(self, frame: str) -> None:
        """Hand a frame that is not stored (typing) to every local socket but its author's."""
        author = orjson.loads(frame).get("username")
        wire = encode_text_frame(frame)
        for socket in self.sockets:
            if socket.username != author:
                socket.deliver_ephemeral(wire)

    def seen(self, event_id: EventId | None) -> None:
        """Start counting from a new socket's history, when the room has no live event yet.

        Only then: a socket's history can hold events that are still on their
        way over pub/sub (in a cluster they cross nodes, and Redis under load
        may be slow), and moving ``last_id`` past them would drop them for
        every other socket of the room. The new socket drops them itself.
        """
        if event_id is not None and self.last_id is None:
            self.last_id = event_id


class Hub:
    def __init__(
        self,
        redis: RedisClient,
        pubsub_nodes: PubSubNodes,
        health_seconds: float,
        on_fanout: Callable[[int], None] = lambda n: None,
        on_reconnect: Callable[[], None] = lambda: None,
    ) -> None:
        self._redis = redis
        self._pubsub_nodes = pubsub_nodes
        self._health_seconds = health_seconds
        self._on_fanout = on_fanout
        self._on_reconnect = on_reconnect
        self._pubsub: PubSub | None = None
        # The pub/sub connection being watched for a reconnect the hub did not make, and whether one happened.
        self._watched: Connection | None = None
        self._reset_behind_our_back = False
        self._unsubscribes: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._backoff = MIN_BACKOFF_SECONDS
        self._stopping = False
        self.connected = asyncio.Event()
        # When the bus was last lost (monotonic seconds); None while connected or before the first connection.
        self._lost_at: float | None = None
        self.rooms: dict[str, LocalRoom] = {}
        self.sessions: dict[str, set[Subscriber]] = {}

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="hub-reader")

    async def stop(self) -> None:
        self._stopping = True
        if self._task:
            self._task.cancel()
            await asyncio.wait([self._task], timeout=2)
        await self._drop_pubsub()

    async def _drop_pubsub(self) -> None:
        """Let go of the pub/sub connection; closing a broken one may fail or hang, and must not stop the reader."""
        self._unwatch()
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is None:
            return
        try:
            async with asyncio.timeout(self._health_seconds):
                await pubsub.aclose()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("the lost pub/sub connection did not close cleanly", extra={"error": str(exc)})

    def bus_lost_for(self) -> float:
        """How long the bus has been lost, in seconds: 0 while connected (and while first connecting)."""
        return 0.0 if self._lost_at is None else time.monotonic() - self._lost_at

    @property
    def connection_count(self) -> int:
        return sum(len(room.sockets) for room in self.rooms.values())

    def watch_session(self, socket: Subscriber) -> None:
        self.sessions.setdefault(socket.session_id, set()).add(socket)

    async def attach(self, socket: Subscriber) -> LocalRoom:
        """Add the socket to its room, subscribing first if it is the room's first here."""
        room = self.rooms.get(socket.code)
        if room is None:
            room = self.rooms[socket.code] = LocalRoom(socket.code)
            if self.connected.is_set() and self._pubsub is not None:
                try:
                    await self._pubsub.subscribe(room.channel)
                except (RedisError, OSError) as exc:
                    log.warning("subscribe failed; it is retried on reconnect", extra={"error": str(exc)})
        room.sockets.add(socket)
        await asyncio.shield(room.subscribed)
        return room

    def detach(self, socket: Subscriber) -> None:
        sockets = self.sessions.get(socket.session_id)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self.sessions[socket.session_id]
        room = self.rooms.get(socket.code)
        if room is None:
            return
        room.sockets.discard(socket)
        if not room.sockets:
            del self.rooms[socket.code]
            if not room.subscribed.done():
                room.subscribed.cancel()
            if self.connected.is_set() and self._pubsub is not None:
                task = asyncio.create_task(self._unsubscribe(room.channel))
                self._unsubscribes.add(task)
                task.add_done_callback(self._unsubscribes.discard)

    def close_all(self, code: int, reason: str) -> None:
        for room in list(self.rooms.values()):
            for socket in list(room.sockets):
                socket.close(code, reason)

    async def _unsubscribe(self, channel: str) -> None:
        if code_of_channel(channel) in self.rooms or self._pubsub is None:
            return
        try:
            await self._pubsub.unsubscribe(channel)
        except (RedisError, OSError) as exc:
            log.warning("unsubscribe failed", extra={"error": str(exc)})

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._connect_and_listen()
            except (RedisError, OSError, DeafSubscription) as exc:
                log.warning("pub/sub connection lost; reconnecting", extra={"error": str(exc)})
            except Exception:
                # The reader must outlive any bug: reconnecting recovers what was missed from the streams.
                log.exception("pub/sub reader failed; reconnecting")
            self.connected.clear()
            if self._lost_at is None:
                self._lost_at = time.monotonic()
            self._on_reconnect()
            await self._drop_pubsub()
            await asyncio.sleep(self._backoff)
            self._backoff = min(self._backoff * 2, MAX_BACKOFF_SECONDS)

    def _watch(self, pubsub: PubSub) -> None:
        self._reset_behind_our_back = False
        self._watched = pubsub.connection
        if self._watched is not None:
            self._watched.register_connect_callback(self._connection_reset)

    def _unwatch(self) -> None:
        if self._watched is not None:
            self._watched.deregister_connect_callback(self._connection_reset)
            self._watched = None

    def _connection_reset(self, connection: Connection) -> None:
        """The client library reconnected (and re-subscribed) on its own: events published meanwhile are lost."""
        if connection is self._watched:
            self._reset_behind_our_back = True

    async def _connect_and_listen(self) -> None:
        pubsub = self._pubsub = (await self._pubsub_nodes.next_client()).pubsub()
        held = await self._subscribe_all(pubsub)
        # Subscribed everywhere: now what was missed meanwhile can be read without a gap.
        for room in list(self.rooms.values()):
            if room.last_id is not None:
                for event_id, frame in await timeline.events_after(self._redis, room.code, room.last_id):
                    self._on_fanout(room.dispatch(event_id, frame))
            if not room.subscribed.done():
                room.subscribed.set_result(None)
        self.connected.set()
        self._lost_at = None
        self._backoff = MIN_BACKOFF_SECONDS
        for message in held:
            self._handle(message)
        await self._listen(pubsub)

    async def _subscribe_all(self, pubsub: PubSub) -> list[dict]:
        """Subscribe to every channel, rooms attached meanwhile included; returns the messages read meanwhile."""
        held: list[dict] = []
        subscribed: set[str] = set()
        pending = {REVOCATIONS_CHANNEL, *(room.channel for room in self.rooms.values())}
        while pending:
            await pubsub.subscribe(*pending)
            if self._watched is None:
                self._watch(pubsub)
            deadline = time.monotonic() + self._health_seconds * 2
            while pending:
                message = await pubsub.get_message(timeout=self._health_seconds)
                if message is None:
                    if time.monotonic() > deadline:
                        raise DeafSubscription("no subscription confirmation")
                elif message["type"] == "subscribe":
                    pending.discard(message["channel"])
                    subscribed.add(message["channel"])
                elif message["type"] == "message":
                    held.append(message)
            pending = {room.channel for room in self.rooms.values()} - subscribed
        return held

    async def _listen(self, pubsub: PubSub) -> None:
        last_heard = last_ping = time.monotonic()
        while True:
            message = await pubsub.get_message(timeout=self._health_seconds)
            if self._reset_behind_our_back:
                raise DeafSubscription("the connection was re-established behind the hub's back")
            now = time.monotonic()
            if message is not None:
                last_heard = now
                self._handle(message)
            elif now - last_heard > self._health_seconds * 2:
                raise DeafSubscription("no answer to ping")
            if now - last_ping >= self._health_seconds:
                last_ping = now
                await pubsub.ping(PING_MESSAGE)

    def _handle(self, message: dict) -> None:
        kind, channel = message["type"], message["channel"]
        if kind == "message":
            if channel == REVOCATIONS_CHANNEL:
                for socket in list(self.sessions.get(message["data"], ())):
                    socket.close(Close.SESSION_ENDED, "session ended")
                return
            room = self.rooms.get(code_of_channel(channel))
            if room is not None:
                self._dispatch(room, message["data"])
        elif kind == "subscribe":
            room = self.rooms.get(code_of_channel(channel))
            if room is not None and not room.subscribed.done():
                room.subscribed.set_result(None)

    def _dispatch(self, room: LocalRoom, data: str) -> None:
        try:
            raw_id = frame_event_id(data)
            if raw_id is None:
                room.dispatch_ephemeral(data)
            else:
                self._on_fanout(room.dispatch(parse_event_id(raw_id), data))
        except (ValueError, AttributeError):
            log.warning("ignored a message that is not a Sala frame", extra={"room": room.code})
