"""Sala's append script driven at Redis as hard as pipelining allows, and stand-ins for the gateways.

A lane is one connection's work: a primary and rooms whose slots it owns.
Each message is an ``EVALSHA`` of ``append_message`` (the script the
gateway's appender runs: XADD, publish, dedupe ref) with a ref of its own,
sent in pipelined batches; only the replies are counted. The stand-ins read
the published frames as a gateway's hub would and throw them away: with
``SSUBSCRIBE`` on one connection per primary (Sala on a cluster), or with
``SUBSCRIBE`` on one connection to one node (one server, or the classic
pub/sub a cluster copies to every node).
"""

import asyncio
import multiprocessing
import time
from dataclasses import asdict, dataclass, field
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event

import orjson
import uvloop
from redis import Redis

from bench.cpus import CpuPlan
from bench.redisnodes import Deployment
from bench.resp import ReplyCounter, bulk, command
from services.common.redis_schema import room_key

BATCH = 200
READ_SIZE = 1 << 16
# What the gateway's settings default to: the stream's length and the refs remembered per room.
HISTORY_MAX = 1000
DEDUPE_WINDOW = 1000
SUBSCRIBED_WAIT_SECONDS = 10.0
READY = "ready"


def message_body() -> bytes:
    """A chat message event of about 200 bytes, as the gateway hands it to the script."""
    event = {
        "type": "message",
        "username": "member0042",
        "text": "a line of chat of a realistic length, long enough to carry a sentence or two of what people "
        "say in a room",
        "ts": "2025-01-01T00:00:00.000Z",
    }
    return orjson.dumps(event)


@dataclass(frozen=True)
class Lane:
    """What one connection drives: a primary and rooms it owns."""

    port: int
    codes: tuple[str, ...]


class AppendCommands:
    """``EVALSHA append_message`` round-robin over rooms, every message with a ref of its own.

    A repeated ref would be answered from the dedupe hash without appending.
    """

    def __init__(self, sha: str, codes: tuple[str, ...], body: bytes, author: str) -> None:
        head = b"*8\r\n" + bulk("EVALSHA") + bulk(sha) + bulk(1)
        self._heads = [head + bulk(room_key(code)) + bulk(HISTORY_MAX) + bulk(body) for code in codes]
        self._tail = bulk(DEDUPE_WINDOW)
        self._author = author.encode()
        self._sent = 0

    def batch(self, size: int) -> bytes:
        parts = []
        heads, tail, author, first = self._heads, self._tail, self._author, self._sent
        for number in range(first, first + size):
            ref = b"%s %d" % (author, number)
            parts += (heads[number % len(heads)], b"$%d\r\n%s\r\n" % (len(ref), ref), tail)
        self._sent += size
        return b"".join(parts)


@dataclass
class Pumped:
    """Messages answered (in total and by primary's port), and the errors among them."""

    messages: int = 0
    errors: int = 0
    first_error: str | None = None
    by_port: dict[int, int] = field(default_factory=dict)

    def add(self, other: "Pumped") -> "Pumped":
        by_port = dict(self.by_port)
        for port, messages in other.by_port.items():
            by_port[port] = by_port.get(port, 0) + messages
        return Pumped(
            self.messages + other.messages, self.errors + other.errors, self.first_error or other.first_error, by_port
        )


async def pump(
    lane: Lane, commands: AppendCommands, messages: int | None, until: float | None, batch: int = BATCH
) -> Pumped:
    """Send batches on one connection, one batch in flight, until ``messages`` are answered or ``until``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", lane.port)
    counter, sent = ReplyCounter(), 0
    try:
        while (messages is None or sent < messages) and (until is None or time.monotonic() < until):
            size = batch if messages is None else min(batch, messages - sent)
            writer.write(commands.batch(size))
            sent += size
            while counter.replies < sent:
                data = await reader.read(READ_SIZE)
                if not data:
                    raise ConnectionError(f"Redis on port {lane.port} closed the connection")
                counter.feed(data)
    finally:
        writer.close()
    return Pumped(counter.replies, counter.errors, counter.first_error, {lane.port: counter.replies})


async def pump_lanes(
    lanes: list[Lane],
    sha: str,
    body: bytes,
    author: str,
    messages: int | None,
    until: float | None,
    batch: int = BATCH,
    connections: int = 1,
) -> Pumped:
    """Every lane at once on ``connections`` each, ``messages`` spread over them all (or until ``until``)."""
    links = [lane for lane in lanes for _ in range(connections)]
    shares = [None] * len(links) if messages is None else split(messages, len(links))
    results = await asyncio.gather(
        *(
            pump(lane, AppendCommands(sha, lane.codes, body, f"{author}l{index}"), share, until, batch)
            for index, (lane, share) in enumerate(zip(links, shares, strict=True))
        )
    )
    total = Pumped()
    for result in results:
        total = total.add(result)
    return total


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` shares differing by at most one."""
    return [total // parts + (1 if index < total % parts else 0) for index in range(parts)]


def load_script(deployment: Deployment, script: str) -> str:
    """Load the script on every primary; returns its SHA."""
    shas = set()
    for node in deployment.primaries:
        with Redis(port=node.port) as client:
            shas.add(client.script_load(script))
    (sha,) = shas
    return sha


# The load-generator processes of the throughput runs.


def _loader_main(
    lanes: list[Lane], sha: str, body: bytes, author: str, seconds: float, go: Event, results: Queue
) -> None:
    async def run() -> Pumped:
        return await pump_lanes(lanes, sha, body, author, None, time.monotonic() + seconds)

    results.put(READY)
    go.wait()
    results.put(asdict(uvloop.run(run())))


class Loaders:
    """Processes that each drive every lane for ``seconds`` once told to go."""

    def __init__(self, count: int, lanes: list[Lane], sha: str, body: bytes, author: str, seconds: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._go = context.Event()
        self._results = context.Queue()
        self._processes = [
            context.Process(
                target=_loader_main,
                args=(lanes, sha, body, f"{author}p{index}", seconds, self._go, self._results),
                daemon=True,
            )
            for index in range(count)
        ]
        for process in self._processes:
            process.start()

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def place(self, cpus: CpuPlan, where: set[int] | None) -> None:
        for pid in self.pids:
            cpus.place(pid, where)

    async def ready(self, timeout: float) -> None:
        """Wait until every process has started and waits for the go."""
        for _ in self._processes:
            if await asyncio.to_thread(self._results.get, True, timeout) != READY:
                raise RuntimeError("a load-generator process answered before it was told to go")

    def go(self) -> None:
        self._go.set()

    async def results(self, timeout: float) -> Pumped:
        total = Pumped()
        for _ in self._processes:
            reply = await asyncio.to_thread(self._results.get, True, timeout)
            total = total.add(Pumped(**reply))
        return total

    def stop(self) -> None:
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()


# The gateways' stand-ins.


class _Reader(asyncio.Protocol):
    """Reads everything; counts the pushes when asked to (that costs the reader some CPU)."""

    def __init__(self, count: bool) -> None:
        self.received_bytes = 0
        self.counter = ReplyCounter() if count else None

    def data_received(self, data: bytes) -> None:
        self.received_bytes += len(data)
        if self.counter is not None:
            self.counter.feed(data)


@dataclass
class Subscription:
    reader: _Reader
    transport: asyncio.Transport
    channels: int


class StandIns:
    """``count`` gateways' pub/sub connections, each gateway subscribed to every room."""

    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []

    async def open(self, deployment: Deployment, codes: list[str], count: int, sharded: bool, counting: bool) -> None:
        loop = asyncio.get_running_loop()
        for index in range(count):
            for port, verb, owned in _links(deployment, codes, index, sharded):
                if not owned:
                    continue
                transport, reader = await loop.create_connection(lambda: _Reader(counting), "127.0.0.1", port)
                # One command per room: a sharded subscription takes channels of one slot only.
                transport.write(b"".join(command(verb, room_key(code)) for code in owned))
                self.subscriptions.append(Subscription(reader, transport, len(owned)))
        if counting:
            await self.wait_for(0)
        else:
            await asyncio.sleep(0.3)

    def received(self) -> int:
        """Pushes received, subscription confirmations not included (only when counting)."""
        return sum(s.reader.counter.replies - s.channels for s in self.subscriptions if s.reader.counter)

    def received_bytes(self) -> int:
        return sum(s.reader.received_bytes for s in self.subscriptions)

    async def wait_for(self, deliveries: int, timeout: float = SUBSCRIBED_WAIT_SECONDS) -> bool:
        deadline = time.monotonic() + timeout
        while self.received() < deliveries:
            if time.monotonic() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    def close(self) -> None:
        for subscription in self.subscriptions:
            subscription.transport.close()
        self.subscriptions = []


def _links(deployment: Deployment, codes: list[str], index: int, sharded: bool) -> list[tuple[int, str, list[str]]]:
    """Where stand-in ``index`` subscribes: per primary to its rooms (sharded), or to one node for all.

    Classic subscribers on a cluster take the nodes in turn, as the hub did
    before sharded pub/sub (any node hears every PUBLISH); on one server
    they subscribe where Sala's gateways do, on the primary.
    """
    if sharded:
        return [
            (node.port, "SSUBSCRIBE", [code for code in codes if deployment.owner(code) == node.port])
            for node in deployment.primaries
        ]
    nodes = deployment.nodes if deployment.cluster else deployment.primaries
    return [(nodes[index % len(nodes)].port, "SUBSCRIBE", codes)]
