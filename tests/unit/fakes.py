"""Small fakes of Sala's own seams, so the gateway's delivery core runs in unit tests without a server.

Nothing here imitates Redis: each fake stands in for one of the gateway's
own interfaces (the hub's ``Subscriber``, the socket's ASGI side and its
protocol's direct writer, the appender's script and pipeline, the pub/sub
object the hub reads, the members of a ``GatewayContext``).
"""

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import SimpleNamespace

from prometheus_client import CollectorRegistry
from redis.exceptions import ResponseError

from services.common.tokens import Principal
from services.gateway.admission import Admission
from services.gateway.appender import Appended, MessageAppender
from services.gateway.connection import ClientConnection
from services.gateway.context import GatewayContext
from services.gateway.hub import Hub, LocalRoom
from services.gateway.metrics import GatewayMetrics
from services.gateway.presence import Joined
from services.gateway.protocol import WRITE_FRAME_EXTENSION
from services.gateway.settings import GatewaySettings
from services.gateway.timeline import EventId, History
from services.gateway.wire import Reply


async def until(predicate: Callable[[], bool], seconds: float = 5.0) -> None:
    """Let the loop run until ``predicate`` holds; the bound only stops a broken test from hanging."""
    async with asyncio.timeout(seconds):
        while not predicate():
            await asyncio.sleep(0.001)


async def finished(task: asyncio.Task, seconds: float = 5.0) -> object:
    """What ``task`` returns (or raises) once it ends on its own.

    Unlike a timeout around ``await task``, waiting never cancels the task:
    a cancelled socket closes too, which would pass for the close under test.
    """
    await asyncio.wait([task], timeout=seconds)
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise AssertionError("the task did not end on its own")
    return task.result()


def event(ms: int, text: str = "hi") -> tuple[EventId, str]:
    """An event id and its frame, as the append script publishes them."""
    return (ms, 0), f'{{"id":"{ms}-0","type":"message","username":"ana","text":"{text}","ts":"t"}}'


class FakeSubscriber:
    """A local socket as the hub sees it, recording what it is handed."""

    def __init__(self, code: str = "ROOM", username: str = "ana", session_id: str = "s1") -> None:
        self.code = code
        self.username = username
        self.session_id = session_id
        self.delivered: list[tuple[EventId, str, bytes]] = []
        self.ephemeral: list[bytes] = []
        self.closed: list[tuple[int, str]] = []
        # The size of each run of events handed over in one call.
        self.runs: list[int] = []
        # Everything the socket was given or told, in order: event ids, "typing", "close".
        self.trail: list[object] = []

    def deliver(self, event_id: EventId, frame: str, wire: bytes) -> None:
        self.delivered.append((event_id, frame, wire))
        self.trail.append(event_id)

    def deliver_run(self, events: list[tuple[EventId, str, bytes]], joined: bytes) -> None:
        assert joined == b"".join(wire for _, _, wire in events)
        self.runs.append(len(events))
        self.delivered.extend(events)
        self.trail.extend(event_id for event_id, _, _ in events)

    def deliver_ephemeral(self, wire: bytes) -> None:
        self.ephemeral.append(wire)
        self.trail.append("typing")

    def close(self, code: int, reason: str) -> None:
        self.closed.append((code, reason))
        self.trail.append("close")

    @property
    def ids(self) -> list[EventId]:
        return [event_id for event_id, _, _ in self.delivered]


def texts_of(wire: bytes) -> list[str]:
    """The texts of the unmasked server frames in ``wire``, as ``encode_text_frame`` builds them."""
    texts = []
    while wire:
        length, start = wire[1] & 0x7F, 2
        if length == 126:
            length, start = int.from_bytes(wire[2:4], "big"), 4
        elif length == 127:
            length, start = int.from_bytes(wire[2:10], "big"), 10
        texts.append(wire[start : start + length].decode())
        wire = wire[start + length :]
    return texts


class FakeWriter:
    """The protocol's direct writer (``sala.websocket.write_frame``): takes frames while ``accepting``.

    ``transcript`` is every frame's text in the order it left, by either path
    (the socket's ``send_text`` writes into the same list).
    """

    def __init__(self) -> None:
        self.accepting = True
        self.written: list[bytes] = []
        self.transcript: list[str] = []

    def __call__(self, frame: bytes) -> bool:
        if not self.accepting:
            return False
        self.written.append(frame)
        self.transcript.extend(texts_of(frame))
        return True


class FakeWebSocket:
    """The ASGI side of one socket: frames the client sends, what the app sent, and the close.

    ``stalled`` makes ``send_text`` wait like a peer that stopped reading;
    ``send_error`` makes it fail like a broken transport.
    """

    def __init__(self, writer: FakeWriter | None = None) -> None:
        self.scope: dict = {"extensions": {WRITE_FRAME_EXTENSION: writer} if writer is not None else {}}
        self.incoming: asyncio.Queue[dict] = asyncio.Queue()
        self.sent: list[str] = []
        self.transcript: list[str] = writer.transcript if writer is not None else []
        self.closes: list[tuple[int, str]] = []
        self.stalled = False
        self.send_error: Exception | None = None
        self.in_send = asyncio.Event()
        self.receives = 0
        self.on_receive: Callable[[], None] = lambda: None

    def client_sends(self, text: str | None = None, data: bytes | None = None) -> None:
        message = (
            {"type": "websocket.receive", "text": text}
            if data is None
            else {"type": "websocket.receive", "bytes": data}
        )
        self.incoming.put_nowait(message)

    async def send_text(self, text: str) -> None:
        self.in_send.set()
        if self.send_error is not None:
            raise self.send_error
        if self.stalled:
            await asyncio.Future()
        self.sent.append(text)
        self.transcript.append(text)

    async def receive(self) -> dict:
        self.receives += 1
        self.on_receive()
        return await self.incoming.get()

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        self.closes.append((code, reason or ""))


class FakeHub:
    """The hub as a socket sees it: a room to join at once, and who left."""

    def __init__(self) -> None:
        self.rooms: dict[str, LocalRoom] = {}
        self.detached: list[object] = []

    async def attach(self, socket: ClientConnection) -> LocalRoom:
        room = self.rooms.get(socket.code)
        if room is None:
            room = self.rooms[socket.code] = LocalRoom(socket.code)
            room.subscribed.set_result(None)
        room.sockets.add(socket)
        return room

    def detach(self, socket: ClientConnection) -> None:
        self.detached.append(socket)
        room = self.rooms.get(socket.code)
        if room is not None:
            room.sockets.discard(socket)


class FakePresence:
    """Presence that admits every join to a live room, with ``history``, and records each leave with its
    ``explicit`` flag.
    """

    history = History(frames_json="[]", last_id=None, truncated=False)

    def __init__(self, live: bool = True) -> None:
        self.live = live
        self.leaves: list[tuple[str, str, bool]] = []
        self.unrecorded: list[tuple[str, str, bool]] = []

    def index(self, code: str) -> tuple[tuple[str, ...], str]:
        return ("SADD", "sala:gateway:{gw-fake}:rooms", code), "gw-fake"

    async def join(
        self,
        code: str,
        conn_id: str,
        principal: Principal,
        since: EventId | None,
        latest: int,
        indexed_as: str | None = None,
    ) -> Joined | None:
        if not self.live:
            return None
        return Joined(event_id="1-0", members_json=f'["{principal.username}"]', name="Room", history=self.history)

    async def leave(self, code: str, conn_id: str, explicit: bool) -> str:
        self.leaves.append((code, conn_id, explicit))
        return "2-0"


class FakeAppender:
    """Stores each message under the next id, or answers None when the room is gone."""

    def __init__(self, live: bool = True) -> None:
        self.live = live
        self.appended: list[tuple[str, bytes, str]] = []

    async def append(self, code: str, body: bytes, dedupe: str) -> Appended | None:
        if not self.live:
            return None
        self.appended.append((code, body, dedupe))
        return Appended(f"{100 + len(self.appended)}-0", repeat=False)


def gateway_settings(**overrides: object) -> GatewaySettings:
    """Gateway settings with ``overrides``; the key file is never read by these tests."""
    return GatewaySettings(jwt_verify_keys_file=Path("unused.pem"), **overrides)


def context(
    settings: GatewaySettings | None = None,
    hub: object | None = None,
    presence: object | None = None,
    appender: object | None = None,
) -> GatewayContext:
    """A ``GatewayContext`` whose members are the fakes above (or the ones given)."""
    settings = settings or gateway_settings()
    return GatewayContext(
        settings=settings,
        verifier=None,
        metrics=GatewayMetrics(CollectorRegistry()),
        redis=None,
        commands=None,
        scripts=SimpleNamespace(),
        appender=appender or FakeAppender(),
        hub=hub or FakeHub(),
        presence=presence or FakePresence(),
        admission=Admission(settings),
    )


def principal(username: str = "ana", session_id: str = "s1") -> Principal:
    return Principal(
        user_id=f"u-{username}", username=username, session_id=session_id, expires_at=int(time.time()) + 900
    )


def connection(
    ctx: GatewayContext | None = None, websocket: FakeWebSocket | None = None, code: str = "ROOM"
) -> ClientConnection:
    """A socket admitted as the chat route admits it, sharing its user's message budget."""
    ctx = ctx or context()
    who = principal()
    seat = ctx.admission.admit(who.user_id, "192.0.2.1")
    return ClientConnection(websocket or FakeWebSocket(), who, code, None, ctx, seat)


class FakeScript:
    """The append script as the appender calls it in a cluster (directly by its object), or as a line runs it.

    Both ways run ``server``, which stores each dedupe key once and answers
    ``[id, repeat]``; ``calls`` counts direct calls.
    """

    sha = "0123456789abcdef"
    script = "-- the append script"

    def __init__(self, server: "FakeAppendServer") -> None:
        self._server = server
        self.calls = 0

    async def __call__(self, keys: list[str], args: list[object]) -> list[object] | None:
        self.calls += 1
        return self._server.run(keys[0], args)


class FakeAppendServer:
    """What the append script does, reduced to what the appender relies on; counts each run per message body."""

    def __init__(self) -> None:
        self.next_id = 1
        self.stored: dict[str, str] = {}
        self.runs: dict[bytes, int] = {}
        self.dead_rooms: set[str] = set()

    def run(self, key: str, args: list[object]) -> list[object] | None:
        _, body, dedupe, _ = args
        self.runs[body] = self.runs.get(body, 0) + 1
        if key in self.dead_rooms:
            return None
        if dedupe in self.stored:
            return [self.stored[dedupe], 1]
        event_id = self.stored[dedupe] = f"{self.next_id}-0"
        self.next_id += 1
        return [event_id, 0]


class FakeLine:
    """The appender's command line: each ``eval_many`` is one batch, run on the fake server in order.

    ``error`` makes the next batches raise, as a line that ran out of retries.
    """

    def __init__(self, server: FakeAppendServer) -> None:
        self.server = server
        self.batches: list[list[tuple[str, list[object]]]] = []
        self.error: Exception | None = None

    async def eval_many(self, script: object, calls: Sequence[tuple[Sequence[str], Sequence[object]]]) -> list[object]:
        self.batches.append([(keys[0], list(args)) for keys, args in calls])
        if self.error is not None:
            raise self.error
        return [self.server.run(keys[0], list(args)) for keys, args in calls]


def appender(server: FakeAppendServer | None = None) -> tuple[MessageAppender, FakeLine, FakeScript]:
    server = server or FakeAppendServer()
    line = FakeLine(server)
    script = FakeScript(server)
    scripts = SimpleNamespace(append_message=script)
    return MessageAppender(SimpleNamespace(), scripts, maxlen=1000, dedupe_window=1000, commands=line), line, script


class FakePubSub:
    """One pub/sub connection as the hub reads it: confirmations and messages in order, or a failure.

    ``publish`` queues a message on a channel; ``fail`` makes a read raise,
    like a dropped connection, once what came before it was read;
    ``hold_unsubscribe`` keeps an ``unsubscribe`` waiting until it is set.
    A read returns everything queued, as one socket read does.
    """

    def __init__(self) -> None:
        self.channels: set[str] = set()
        self.subscribes: list[tuple[str, ...]] = []
        self.unsubscribing: list[str] = []
        self.unsubscribed: list[str] = []
        self.hold_unsubscribe: asyncio.Event | None = None
        self.on_subscribe: Callable[[FakePubSub], None] = lambda pubsub: None
        # A sharded subscription to a channel for which this answers true is refused with MOVED.
        self.refuse: Callable[[str], bool] | None = None
        self.closed = False
        self.reads = 0
        self._inbox: asyncio.Queue[Reply | BaseException] = asyncio.Queue()
        self._failure: BaseException | None = None

    async def subscribe(self, *channels: str) -> None:
        self.subscribes.append(channels)
        for channel in channels:
            self.channels.add(channel)
            self._inbox.put_nowait(Reply("subscribe", channel, 1))
        self.on_subscribe(self)

    async def unsubscribe(self, channel: str) -> None:
        self.unsubscribing.append(channel)
        if self.hold_unsubscribe is not None:
            await self.hold_unsubscribe.wait()
        self.channels.discard(channel)
        self.unsubscribed.append(channel)

    async def ssubscribe(self, *channels: str) -> None:
        """Sharded: confirmed as ``ssubscribe``, or refused like a channel whose slot this node does not own.

        Channels of several rooms in one command are refused, as the server refuses channels of several slots.
        """
        self.subscribes.append(channels)
        if len(set(channels)) > 1:
            raise ResponseError("CROSSSLOT Keys in request don't hash to the same slot")
        for channel in channels:
            if self.refuse is not None and self.refuse(channel):
                self._inbox.put_nowait(ResponseError(f"MOVED 0 {channel}"))
                return
            self.channels.add(channel)
            self._inbox.put_nowait(Reply("ssubscribe", channel, 1))
        self.on_subscribe(self)

    async def sunsubscribe(self, channel: str) -> None:
        self.unsubscribing.append(channel)
        self.channels.discard(channel)
        self.unsubscribed.append(channel)

    def publish(self, channel: str, data: str) -> None:
        self._inbox.put_nowait(Reply("message", channel, data))

    def spublish(self, channel: str, data: str) -> None:
        if channel in self.channels:
            self._inbox.put_nowait(Reply("smessage", channel, data))

    def slot_moved(self, channel: str) -> None:
        """The server unsubscribes a channel whose slot it gave away, unasked."""
        self.channels.discard(channel)
        self._inbox.put_nowait(Reply("sunsubscribe", channel, 0))

    def fail(self, error: BaseException) -> None:
        self._inbox.put_nowait(error)

    async def read(self, timeout: float) -> list[Reply]:
        if self._failure is None:
            try:
                async with asyncio.timeout(timeout):
                    first = await self._inbox.get()
            except TimeoutError:
                return []
            self.reads += 1
            replies: list[Reply] = []
            item: Reply | BaseException = first
            while True:
                if isinstance(item, BaseException):
                    self._failure = item
                    break
                replies.append(item)
                if self._inbox.empty():
                    break
                item = self._inbox.get_nowait()
            if replies:
                return replies
        failure, self._failure = self._failure, None
        raise failure

    async def ping(self, message: str) -> None:
        self._inbox.put_nowait(Reply("pong", None, message))

    async def aclose(self) -> None:
        self.closed = True


class FakePubSubClient:
    """The hub's pub/sub client: each ``pubsub()`` is a new session, kept in ``sessions``."""

    def __init__(self) -> None:
        self.sessions: list[FakePubSub] = []
        self.prepare: Callable[[FakePubSub], None] = lambda pubsub: None

    async def next_client(self) -> "FakePubSubClient":
        return self

    def pubsub(self) -> FakePubSub:
        session = FakePubSub()
        self.prepare(session)
        self.sessions.append(session)
        return session


class FakeCluster:
    """The hub's pub/sub nodes on a cluster: a slot map to change, a client per node, one for the control link.

    ``owners`` maps a channel to its primary (missing: ``default``); ``refreshes``
    counts slot map reads; each node's sessions are in ``nodes[name].sessions``.
    """

    sharded = True

    def __init__(self, default: str = "a:1") -> None:
        self.default = default
        self.owners: dict[str, str] = {}
        self.control = FakePubSubClient()
        self.nodes: dict[str, FakePubSubClient] = {}
        self.refreshes = 0

    def owner(self, channel: str) -> str | None:
        return self.owners.get(channel, self.default)

    async def refresh(self) -> None:
        self.refreshes += 1

    async def next_client(self) -> FakePubSubClient:
        return self.control

    def node_client(self, node: str) -> FakePubSubClient:
        return self.nodes.setdefault(node, FakePubSubClient())

    def session(self, node: str) -> "FakePubSub":
        """The node's live pub/sub session."""
        return self.nodes[node].sessions[-1]


def hub(client: FakePubSubClient | FakeCluster | None = None, **kwargs: object) -> Hub:
    """A hub over a fake pub/sub client; its health interval is long so no ping or deafness interferes."""
    return Hub(redis=None, pubsub_nodes=client or FakePubSubClient(), health_seconds=60, open_wire=_open, **kwargs)


async def _open(client: FakePubSubClient) -> FakePubSub:
    return client.pubsub()
