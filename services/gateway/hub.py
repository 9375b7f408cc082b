"""One process's view of the bus: one subscription per room, on links that re-establish themselves.

Each event arrives once per gateway, already encoded as its final frame, and
is handed to every local socket of the room as is.

A link is one pub/sub connection with its own reader. On one server a single
link carries the revocations and every room. On a cluster the revocations
take a control link (classic pub/sub, any node) and each room is subscribed
with ``SSUBSCRIBE`` on the link of the primary that owns its slot: one link
per primary, so a shard's events never wait behind another's.

Whenever a room's subscription is (re)confirmed — a link reconnected, a slot
moved to another primary, a failover — the room's gap is read from its
stream before any later live event, so no event is lost and none is handed
over twice. A link's connection (``services.gateway.wire``) never reconnects
behind the hub's back: a failure ends it, and the link opens a new one and
recovers the gap.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisClusterException, RedisError

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
from services.gateway.wire import PubSubWire, Reply

log = logging.getLogger(__name__)

MIN_BACKOFF_SECONDS = 0.05
PING_MESSAGE = "sala-hub-ping"
# A published message, classic or sharded.
MESSAGE_KINDS = frozenset({"message", "smessage"})
MAX_BACKOFF_SECONDS = 2.0


class Subscriber(Protocol):
    """A local socket as the hub sees it."""

    code: str
    session_id: str
    username: str

    def deliver(self, event_id: EventId, frame: str, wire: bytes) -> None: ...

    def deliver_run(self, events: list[tuple[EventId, str, bytes]], joined: bytes) -> None: ...

    def deliver_ephemeral(self, wire: bytes) -> None: ...

    def close(self, code: int, reason: str) -> None: ...


class DeafSubscription(Exception):
    """The pub/sub connection stopped answering pings, or never confirmed a subscription."""


class LocalRoom:
    """The sockets of one room on this gateway, the last event they were given, and the link it is on."""

    __slots__ = ("code", "channel", "sockets", "last_id", "subscribed", "link")

    def __init__(self, code: str) -> None:
        self.code = code
        self.channel = room_key(code)
        self.sockets: set[Subscriber] = set()
        self.last_id: EventId | None = None
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # None while the primary that owns the room's slot is not known.
        self.link: _Link | None = None

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

    def dispatch_run(self, events: list[tuple[EventId, str]]) -> int:
        """Hand events one read brought, oldest first, to every local socket: the new ones in one write each.

        Returns how many frames went out (0 for duplicates only). A socket
        that cannot take them all at once gets them one by one, as ``dispatch``
        would give them.
        """
        fresh = []
        for event_id, frame in events:
            if self.last_id is None or event_id > self.last_id:
                self.last_id = event_id
                fresh.append((event_id, frame, encode_text_frame(frame)))
        if not fresh or not self.sockets:
            return 0
        if len(fresh) == 1:
            event_id, frame, wire = fresh[0]
            for socket in self.sockets:
                socket.deliver(event_id, frame, wire)
        else:
            joined = b"".join([wire for _, _, wire in fresh])
            for socket in self.sockets:
                socket.deliver_run(fresh, joined)
        return len(self.sockets) * len(fresh)

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


class _Link:
    """One pub/sub connection and its reader: the rooms it carries (and, for the control link, the revocations).

    ``node`` is the primary of a sharded link, None for the control link.
    """

    def __init__(self, hub: "Hub", node: str | None) -> None:
        self.hub = hub
        self.node = node
        self.sharded = node is not None
        self.codes: set[str] = set()
        self.wire: PubSubWire | None = None
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        # When the link was last lost (monotonic seconds); None while connected or before the first connection.
        self.lost_at: float | None = None
        self.backoff = MIN_BACKOFF_SECONDS
        self.stopping = False

    @property
    def name(self) -> str:
        return self.node or "control"

    def start(self) -> None:
        self.task = asyncio.create_task(self._run(), name=f"hub-link-{self.name}")

    async def stop(self) -> None:
        self.stopping = True
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait([self.task], timeout=2)
        await self._drop_wire()

    def lost_for(self) -> float:
        return 0.0 if self.lost_at is None else time.monotonic() - self.lost_at

    async def subscribe(self, *channels: str) -> None:
        assert self.wire is not None
        if self.sharded:
            # One channel per command: an SSUBSCRIBE names channels of one slot only.
            for channel in channels:
                await self.wire.ssubscribe(channel)
        else:
            await self.wire.subscribe(*channels)

    async def unsubscribe(self, channel: str) -> None:
        if self.wire is None:
            return
        if self.sharded:
            await self.wire.sunsubscribe(channel)
        else:
            await self.wire.unsubscribe(channel)

    async def _drop_wire(self) -> None:
        """Let go of the pub/sub connection; closing a broken one may fail or hang, and must not stop the reader."""
        wire, self.wire = self.wire, None
        if wire is None:
            return
        try:
            async with asyncio.timeout(self.hub.health_seconds):
                await wire.aclose()
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("the lost pub/sub connection did not close cleanly", extra={"error": str(exc)})

    async def _run(self) -> None:
        hub = self.hub
        while not self.stopping:
            try:
                await self._connect_and_listen()
            except (RedisError, RedisClusterException, OSError, DeafSubscription) as exc:
                log.warning("pub/sub connection lost; reconnecting", extra={"error": str(exc), "link": self.name})
            except asyncio.CancelledError:
                if self.stopping:
                    raise
                # Only stop() ends a link: this is a read or connect timeout the client library let escape as a
                # cancellation, and a link that died of it would leave the gateway deaf for good.
                log.warning("pub/sub read cancelled by the client library; reconnecting", extra={"link": self.name})
            except Exception:
                # The reader must outlive any bug: reconnecting recovers what was missed from the streams.
                log.exception("pub/sub reader failed; reconnecting")
            self.connected.clear()
            if self.lost_at is None:
                self.lost_at = time.monotonic()
            hub.on_reconnect()
            await self._drop_wire()
            if self.sharded:
                # The shard may have failed over or given its slots away: the hub places the rooms again.
                hub.replace_rooms()
            await asyncio.sleep(self.backoff)
            self.backoff = min(self.backoff * 2, MAX_BACKOFF_SECONDS)

    async def _open(self) -> PubSubWire:
        nodes = self.hub.nodes
        client = nodes.node_client(self.node) if self.node is not None else await nodes.next_client()
        return await self.hub.open_wire(client)

    async def _connect_and_listen(self) -> None:
        if self.sharded and self.lost_at is not None:
            # Reconnecting to a shard: its primary may have failed over, and this address may answer again
            # as a restarted node that still claims the slots, or as a replica; a room subscribed there
            # would miss what its real primary publishes. Rooms first go where the slot map says.
            await self.hub.reassign()
        self.wire = wire = await self._open()
        pending = set(self._channels())
        subscribed: set[str] = set()
        # Every channel is confirmed (each room's gap recovered as its confirmation is read) before the link
        # counts as connected; rooms placed here meanwhile are subscribed too.
        while pending:
            await self.subscribe(*pending)
            deadline = time.monotonic() + self.hub.health_seconds * 2
            while pending:
                replies = await wire.read(self.hub.health_seconds)
                if not replies and time.monotonic() > deadline:
                    raise DeafSubscription("no subscription confirmation")
                for reply in replies:
                    if reply.kind in ("subscribe", "ssubscribe"):
                        pending.discard(reply.channel)
                        subscribed.add(reply.channel)
                    await self._handle(reply)
            pending = set(self._channels()) - subscribed
        self.connected.set()
        self.lost_at = None
        self.backoff = MIN_BACKOFF_SECONDS
        await self._listen(wire)

    def _channels(self) -> list[str]:
        channels = [] if self.sharded else [REVOCATIONS_CHANNEL]
        return channels + [room_key(code) for code in self.codes]

    async def _listen(self, wire: PubSubWire) -> None:
        """Hand over what each read brings, in order; ping when quiet, and give up on a connection gone deaf."""
        health = self.hub.health_seconds
        last_heard = last_ping = time.monotonic()
        while True:
            replies = await wire.read(health)
            now = time.monotonic()
            if replies:
                last_heard = now
                if len(replies) == 1:
                    await self._handle(replies[0])
                else:
                    await self._handle_read(replies)
            elif now - last_heard > health * 2:
                raise DeafSubscription("no answer to ping")
            if now - last_ping >= health:
                last_ping = now
                await wire.ping(PING_MESSAGE)

    async def _handle_read(self, replies: list[Reply]) -> None:
        """Everything one read brought, in order; a room's events that follow each other go out as one run.

        Any other reply (a revocation, a confirmation and its gap, a slot
        moved) first hands over the runs gathered before it, so each room's
        order, and the order of events and revocations, is the bus's.
        """
        hub = self.hub
        runs: dict[LocalRoom, list[str]] = {}
        for reply in replies:
            if reply.kind in MESSAGE_KINDS and reply.channel != REVOCATIONS_CHANNEL:
                room = hub.rooms.get(code_of_channel(reply.channel))
                if room is not None and room.link is self:
                    runs.setdefault(room, []).append(reply.data)
                continue
            if runs:
                hub.dispatch_runs(runs)
                runs = {}
            await self._handle(reply)
        if runs:
            hub.dispatch_runs(runs)

    async def _handle(self, reply: Reply) -> None:
        kind, channel = reply.kind, reply.channel
        hub = self.hub
        if kind in MESSAGE_KINDS:
            if channel == REVOCATIONS_CHANNEL:
                hub.revoke(reply.data)
                return
            room = hub.rooms.get(code_of_channel(channel))
            if room is not None and room.link is self:
                hub.dispatch(room, reply.data)
        elif kind in ("subscribe", "ssubscribe"):
            room = hub.rooms.get(code_of_channel(channel)) if channel != REVOCATIONS_CHANNEL else None
            if room is not None and room.link is self:
                await hub.recover(room)
        elif kind == "sunsubscribe":
            room = hub.rooms.get(code_of_channel(channel))
            if room is not None and room.link is self and room.code in self.codes:
                # Not asked for: the room's slot moved to another primary, which now carries its events.
                log.info("a room's slot moved; subscribing on its new primary", extra={"room": room.code})
                self.codes.discard(room.code)
                room.link = None
                hub.replace_rooms()


class Hub:
    def __init__(
        self,
        redis: RedisClient,
        pubsub_nodes: PubSubNodes,
        health_seconds: float,
        on_fanout: Callable[[int], None] = lambda n: None,
        on_reconnect: Callable[[], None] = lambda: None,
        open_wire: Callable[[Redis], Awaitable[PubSubWire]] = PubSubWire.open,
    ) -> None:
        self._redis = redis
        self.nodes = pubsub_nodes
        self.open_wire = open_wire
        self.sharded = bool(getattr(pubsub_nodes, "sharded", False))
        self.health_seconds = health_seconds
        self._on_fanout = on_fanout
        self.on_reconnect = on_reconnect
        self._control = _Link(self, None)
        # The sharded links, by the primary they read.
        self._links: dict[str, _Link] = {}
        self._unsubscribes: set[asyncio.Task[None]] = set()
        self._placer: asyncio.Task[None] | None = None
        self._replace = asyncio.Event()
        self._started = False
        self.rooms: dict[str, LocalRoom] = {}
        self.sessions: dict[str, set[Subscriber]] = {}

    async def start(self) -> None:
        self._started = True
        self._control.start()
        if self.sharded:
            self._placer = asyncio.create_task(self._place_rooms(), name="hub-placer")

    async def stop(self) -> None:
        self._started = False
        if self._placer is not None:
            self._placer.cancel()
            await asyncio.wait([self._placer], timeout=2)
        for link in [self._control, *self._links.values()]:
            await link.stop()

    def is_connected(self) -> bool:
        """Whether every link is subscribed and listening."""
        return self._control.connected.is_set() and all(link.connected.is_set() for link in self._links.values())

    def bus_lost_for(self, code: str | None = None) -> float:
        """How long the bus has been lost (for ``code``'s room: its shard too), in seconds; 0 while connected."""
        lost = self._control.lost_for()
        if code is not None and self.sharded:
            node = self.nodes.owner(room_key(code))
            link = self._links.get(node) if node is not None else None
            if link is not None:
                lost = max(lost, link.lost_for())
        return lost

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
            link = self._place(room)
            if link is not None and link.connected.is_set() and link.wire is not None:
                try:
                    await link.subscribe(room.channel)
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
            link = room.link
            if link is not None:
                link.codes.discard(room.code)
                if link.connected.is_set() and link.wire is not None:
                    self._unsubscribe_later(link, room.channel)

    def close_all(self, code: int, reason: str) -> None:
        for room in list(self.rooms.values()):
            for socket in list(room.sockets):
                socket.close(code, reason)

    def close_cut_off(self, seconds: float, code: int, reason: str) -> int:
        """Close the sockets of every room whose link has been lost for ``seconds``; returns how many."""
        if self._control.lost_for() >= seconds:
            rooms = list(self.rooms.values())
        else:
            rooms = [room for room in self.rooms.values() if room.link is not None and room.link.lost_for() >= seconds]
        closed = 0
        for room in rooms:
            for socket in list(room.sockets):
                socket.close(code, reason)
                closed += 1
        return closed

    def revoke(self, session_id: str) -> None:
        for socket in list(self.sessions.get(session_id, ())):
            socket.close(Close.SESSION_ENDED, "session ended")

    def dispatch(self, room: LocalRoom, data: str) -> None:
        try:
            raw_id = frame_event_id(data)
            if raw_id is None:
                room.dispatch_ephemeral(data)
            else:
                self._on_fanout(room.dispatch(parse_event_id(raw_id), data))
        except (ValueError, AttributeError):
            log.warning("ignored a message that is not a Sala frame", extra={"room": room.code})

    def dispatch_runs(self, runs: dict[LocalRoom, list[str]]) -> None:
        """Each room's frames of one read, in order: its events in runs, a typing notice between them on its own."""
        for room, frames in runs.items():
            if len(frames) == 1:
                self.dispatch(room, frames[0])
                continue
            events: list[tuple[EventId, str]] = []
            for data in frames:
                try:
                    raw_id = frame_event_id(data)
                    if raw_id is not None:
                        events.append((parse_event_id(raw_id), data))
                        continue
                    if events:
                        self._on_fanout(room.dispatch_run(events))
                        events = []
                    room.dispatch_ephemeral(data)
                except (ValueError, AttributeError):
                    log.warning("ignored a message that is not a Sala frame", extra={"room": room.code})
            if events:
                self._on_fanout(room.dispatch_run(events))

    async def recover(self, room: LocalRoom) -> None:
        """The room's subscription is confirmed: hand over what its stream holds past the last event first."""
        if room.last_id is not None:
            for event_id, frame in await timeline.events_after(self._redis, room.code, room.last_id):
                self._on_fanout(room.dispatch(event_id, frame))
        if not room.subscribed.done():
            room.subscribed.set_result(None)

    def replace_rooms(self) -> None:
        """Ask the placer to read the slot map again and move rooms to the primaries that own them now."""
        self._replace.set()

    # Placement of rooms on links.

    def _place(self, room: LocalRoom) -> "_Link | None":
        """Put a new room on the link of its primary (the one link on a single server); None if not known yet."""
        if not self.sharded:
            link = self._control
        else:
            node = self.nodes.owner(room.channel)
            if node is None:
                self.replace_rooms()
                return None
            link = self._link(node)
        room.link = link
        link.codes.add(room.code)
        return link

    def _link(self, node: str) -> _Link:
        link = self._links.get(node)
        if link is None:
            link = self._links[node] = _Link(self, node)
            if self._started:
                link.start()
        return link

    async def _place_rooms(self) -> None:
        """Move each room whose slot is now owned by another primary (or was unknown) to that primary's link."""
        while True:
            await self._replace.wait()
            self._replace.clear()
            try:
                if not await self.reassign():
                    self._replace.set()
            except (RedisError, RedisClusterException, OSError) as exc:
                log.warning("cluster slot map unavailable; retrying", extra={"error": str(exc)})
                await asyncio.sleep(MAX_BACKOFF_SECONDS)
                self._replace.set()
                continue
            for node in [node for node, link in self._links.items() if not link.codes and not link.connected.is_set()]:
                # A link with no room that cannot connect (a primary gone for good) is let go.
                await self._links.pop(node).stop()
            if self._replace.is_set():
                await asyncio.sleep(MAX_BACKOFF_SECONDS)

    async def reassign(self) -> bool:
        """Read the slot map and move each room to the link of the primary that owns its slot now.

        Returns False if some room's owner is not known yet.
        """
        await self.nodes.refresh()
        known = True
        for room in list(self.rooms.values()):
            node = self.nodes.owner(room.channel)
            if node is None:
                known = False
            elif room.link is None or room.link.node != node:
                await self._move(room, self._link(node))
        return known

    async def _move(self, room: LocalRoom, link: _Link) -> None:
        old = room.link
        if old is not None:
            old.codes.discard(room.code)
            if old.connected.is_set() and old.wire is not None:
                self._unsubscribe_later(old, room.channel)
        room.link = link
        link.codes.add(room.code)
        log.info("room moved to another primary's link", extra={"room": room.code, "link": link.name})
        if link.connected.is_set() and link.wire is not None:
            try:
                # Its confirmation, read by the link, recovers the gap.
                await link.subscribe(room.channel)
            except (RedisError, OSError) as exc:
                log.warning("subscribe failed; it is retried on reconnect", extra={"error": str(exc)})

    def _unsubscribe_later(self, link: _Link, channel: str) -> None:
        task = asyncio.create_task(self._unsubscribe(link, channel))
        self._unsubscribes.add(task)
        task.add_done_callback(self._unsubscribes.discard)

    async def _unsubscribe(self, link: _Link, channel: str) -> None:
        room = self.rooms.get(code_of_channel(channel))
        if room is not None and room.link is link:
            return
        try:
            await link.unsubscribe(channel)
        except (RedisError, OSError) as exc:
            log.warning("unsubscribe failed", extra={"error": str(exc)})
