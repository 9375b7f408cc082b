"""The gateway's hot commands (appends, joins, leaves, session checks): pipelined on a line of their own.

redis-py runs every command or pipeline by taking a connection from its pool,
checking its health, writing, reading the reply behind a retry wrapper and a
timeout, and giving the connection back. At light load, with a message or two
per loop tick, that bookkeeping was most of what a message cost the gateway
(a profile of rooms of 10 put the appender at a fifth of its CPU, nearly all
of it in ``execute_command``), and a connect's two round trips a tenth of its.
These callers need less: their batches go out on one connection as they
come, several may be in flight, and the replies come back in the order the
commands went out (Redis answers a connection's commands
in order), so one reader, parsing with hiredis everything a socket read
brought, hands each batch its replies.

redis-py still opens the connection (address, TLS, ``AUTH``, database, as the
client is configured). A connection that fails fails every batch waiting on
it; ``run`` then sends the unanswered batch again on a new connection, with the
client's backoff, as redis-py's retry did. A batch Redis ran before the
connection broke runs twice then, and nothing is done twice: the append
script stores a message once per dedupe key, joins and leaves are keyed by
the socket's id (a second leave finds the socket gone), and the session
check only reads.

What waits on the line is bounded by the sockets, not by the line: a socket
has at most one message, one join or one leave in flight, and new sockets
come through the handshake gate.

Only for one server: in a cluster each room's node is another connection,
which redis-py's cluster client keeps; ``ClusterCommands`` gives the callers
the same two calls over it.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio import Redis, RedisCluster
from redis.asyncio.connection import AbstractConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError

from services.common.redis_schema import Script

log = logging.getLogger(__name__)

READ_SIZE = 65536
# As the pooled client's: the retries a batch gets while Redis is away, and the backoff between them.
RETRIES = 5
BACKOFF_CAP_SECONDS = 2.0
BACKOFF_BASE_SECONDS = 0.05

Command = Sequence[str | bytes | int]


def pack(commands: Sequence[Command]) -> bytes:
    """The commands as RESP arrays of bulk strings, in one buffer."""
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


@dataclass(slots=True)
class _Waiting:
    """A batch in flight: its replies so far, and who waits for all of them."""

    count: int
    future: asyncio.Future[list[object]]
    replies: list[object] = field(default_factory=list)


class _Connection:
    """One open connection: batches written in order, replies read by one task and handed out in order."""

    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace", replyError=BaseParser.parse_error)
        self._waiting: deque[_Waiting] = deque()
        self.failure: RedisConnectionError | None = None
        self._reader = asyncio.create_task(self._read(), name="redis command line")

    @classmethod
    async def open(cls, client: Redis) -> "_Connection":
        pool = client.connection_pool
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        await connection.connect()
        return cls(connection)

    def send(self, commands: Sequence[Command]) -> asyncio.Future[list[object]]:
        future: asyncio.Future[list[object]] = asyncio.get_running_loop().create_future()
        if self.failure is not None:
            future.set_exception(self.failure)
            return future
        writer = self._connection._writer  # redis-py has no public raw write; it never writes here after the connect
        if writer is None:
            self._fail(RedisConnectionError("the command connection is closed"))
            future.set_exception(self.failure)
            return future
        self._waiting.append(_Waiting(len(commands), future))
        writer.write(pack(commands))
        return future

    async def _read(self) -> None:
        stream = self._connection._reader
        try:
            if stream is None:
                raise RedisConnectionError("the command connection is closed")
            while True:
                data = await stream.read(READ_SIZE)
                if not data:
                    raise RedisConnectionError("the server closed the command connection")
                self._parser.feed(data)
                while (reply := self._parser.gets()) is not False:
                    self._deliver(reply)
        except (OSError, hiredis.ProtocolError) as exc:
            self._fail(RedisConnectionError(f"command connection failed: {exc}"))
        except RedisConnectionError as exc:
            self._fail(exc)
        except Exception as exc:  # a waiting batch must hear of any failure, or it would wait forever
            log.exception("the command connection's reader failed")
            self._fail(RedisConnectionError(f"command connection failed: {exc!r}"))

    def _deliver(self, reply: object) -> None:
        if not self._waiting:
            raise RedisConnectionError("a reply came that no command asked for")
        waiting = self._waiting[0]
        waiting.replies.append(reply)
        if len(waiting.replies) == waiting.count:
            self._waiting.popleft()
            if not waiting.future.done():
                waiting.future.set_result(waiting.replies)

    def _fail(self, failure: RedisConnectionError) -> None:
        """Every batch waiting on this connection gets ``failure``; the connection is not used again."""
        if self.failure is None:
            self.failure = failure
        while self._waiting:
            waiting = self._waiting.popleft()
            if not waiting.future.done():
                waiting.future.set_exception(self.failure)
        writer = self._connection._writer
        if writer is not None:
            writer.transport.abort()

    async def aclose(self) -> None:
        self._reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader
        self._fail(RedisConnectionError("the command line was closed"))
        await self._connection.disconnect()


class CommandLine:
    """Batches of commands on one connection to one server, replies in order; reconnects as it needs to."""

    def __init__(self, client: Redis, retries: int = RETRIES) -> None:
        self._client = client
        self._retries = retries
        self._backoff = ExponentialBackoff(cap=BACKOFF_CAP_SECONDS, base=BACKOFF_BASE_SECONDS)
        self._connection: _Connection | None = None
        self._opening: asyncio.Task[_Connection] | None = None
        self._closed = False

    async def run(self, commands: Sequence[Command]) -> list[object]:
        """Each command's reply, in order (an error reply as its exception, returned, not raised).

        Raises ``redis.exceptions.ConnectionError`` once the batch failed on
        ``retries + 1`` connections in a row.
        """
        failures = 0
        while True:
            try:
                connection = await self._connected()
                return await connection.send(commands)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                failures += 1
                if failures > self._retries or self._closed:
                    if isinstance(exc, RedisConnectionError):
                        raise
                    raise RedisConnectionError(f"command connection failed: {exc}") from exc
                await asyncio.sleep(self._backoff.compute(failures))

    async def eval_many(self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[object]]]) -> list[object]:
        """``script`` run once per ``(keys, args)`` in one batch; each result, or the error it got.

        By SHA; if Redis forgot the script (a restart), it is loaded once and
        only the calls it refused run again, so none runs twice.
        """
        results = await self.run([("EVALSHA", script.sha, len(keys), *keys, *args) for keys, args in calls])
        refused = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
        if refused:
            (loaded,) = await self.run([("SCRIPT", "LOAD", script.script)])
            if isinstance(loaded, Exception):
                raise loaded
            again = await self.run(
                [("EVALSHA", script.sha, len(calls[i][0]), *calls[i][0], *calls[i][1]) for i in refused]
            )
            for i, result in zip(refused, again, strict=True):
                results[i] = result
        return results

    async def _connected(self) -> _Connection:
        if self._closed:
            raise RedisConnectionError("the command line was closed")
        connection = self._connection
        if connection is not None and connection.failure is None:
            return connection
        if self._opening is None or self._opening.done():
            # One opening at a time: the batches that find the line down all wait for the same connection.
            self._opening = asyncio.create_task(self._open())
        opening = self._opening
        try:
            return await asyncio.shield(opening)
        finally:
            if opening.done() and self._opening is opening:
                self._opening = None

    async def _open(self) -> _Connection:
        if self._connection is not None:
            await self._connection.aclose()
            self._connection = None
        self._connection = await _Connection.open(self._client)
        return self._connection

    async def aclose(self) -> None:
        self._closed = True
        if self._opening is not None:
            self._opening.cancel()
            with contextlib.suppress(BaseException):
                await self._opening
        if self._connection is not None:
            await self._connection.aclose()
            self._connection = None


class ClusterCommands:
    """``run`` and ``eval_many`` over redis-py's cluster client: each command and script call to its key's node."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client

    async def run(self, commands: Sequence[Command]) -> list[object]:
        async with self._client.pipeline(transaction=False) as pipe:
            for command in commands:
                pipe.execute_command(*command)
            return await pipe.execute(raise_on_error=False)

    async def eval_many(self, script: Script, calls: Sequence[tuple[Sequence[str], Sequence[object]]]) -> list[object]:
        runs = (script(keys=keys, args=args) for keys, args in calls)
        return list(await asyncio.gather(*runs, return_exceptions=True))


# What the gateway's hot paths are given: a line on one server, the cluster client's commands in a cluster.
Commands = CommandLine | ClusterCommands


def raise_first_error(replies: list[object]) -> list[object]:
    """The replies of a batch whose every command must succeed; the first error among them raised."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply
    return replies
