"""A pub/sub connection read in bulk: one socket read, then every message it carried, parsed by hiredis.

redis-py's ``PubSub`` hands over one message per ``get_message()`` call,
each behind a health check, a connection check and a timeout of its own:
under load that is a fifth of a gateway's CPU. The hub's links need less
of it. A link never wants a reconnect it did not make (events published
meanwhile would be lost without the gap recovery the link runs), so this
connection never reconnects: any failure raises, and the link opens a new
one. redis-py still opens it (address, TLS, ``AUTH``, as the client is
configured); after that the link reads the raw stream itself.

Replies use RESP2, where every pub/sub reply is an array: ``[kind,
channel, data]`` for messages and (un)subscribe confirmations, ``["pong",
data]`` for a ping.
"""

import asyncio
from dataclasses import dataclass
from typing import Any

import hiredis
from redis.asyncio import Redis
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class Reply:
    """One pub/sub reply: ``kind`` (message, smessage, subscribe, ssubscribe, sunsubscribe, pong, ...)."""

    kind: str
    channel: str | None
    data: Any


class PubSubWire:
    def __init__(self, connection: AbstractConnection) -> None:
        self._connection = connection
        self._parser = hiredis.Reader(encoding="utf-8", errors="replace")
        # An error reply parsed behind messages of the same read: raised once those are handled.
        self._failure: ResponseError | None = None

    @classmethod
    async def open(cls, client: Redis) -> "PubSubWire":
        """A new connection with ``client``'s settings (not taken from its pool, never reconnected)."""
        pool = client.connection_pool
        connection = pool.connection_class(**{**pool.connection_kwargs, "protocol": 2})
        await connection.connect()
        return cls(connection)

    async def subscribe(self, *channels: str) -> None:
        await self._send("SUBSCRIBE", *channels)

    async def ssubscribe(self, channel: str) -> None:
        await self._send("SSUBSCRIBE", channel)

    async def unsubscribe(self, channel: str) -> None:
        await self._send("UNSUBSCRIBE", channel)

    async def sunsubscribe(self, channel: str) -> None:
        await self._send("SUNSUBSCRIBE", channel)

    async def ping(self, message: str) -> None:
        await self._send("PING", message)

    async def _send(self, *args: str) -> None:
        # No health check: redis-py's would send a PING and read its answer off this connection, a message.
        await self._connection.send_command(*args, check_health=False)

    async def read(self, timeout: float) -> list[Reply]:
        """Every reply that one read of the socket completes, waiting up to ``timeout`` for it; [] if none came.

        An error reply (a ``MOVED`` refusal of a subscription) is raised by
        the read after the one that returned the replies before it.
        """
        if self._failure is None:
            # redis-py has no public raw read; its own parser never reads this stream after the connect.
            stream = self._connection._reader
            if stream is None:
                raise RedisConnectionError("the pub/sub connection is closed")
            try:
                async with asyncio.timeout(timeout):
                    data = await stream.read(READ_SIZE)
            except TimeoutError:
                return []
            except OSError as exc:
                raise RedisConnectionError(f"pub/sub read failed: {exc}") from exc
            if not data:
                raise RedisConnectionError("the server closed the pub/sub connection")
            self._parser.feed(data)
            replies = self._parsed()
            if replies or self._failure is None:
                return replies
        failure, self._failure = self._failure, None
        raise failure

    def _parsed(self) -> list[Reply]:
        """The complete replies fed so far, up to an error reply (kept in ``_failure``)."""
        replies: list[Reply] = []
        while (reply := self._parser.gets()) is not False:
            if isinstance(reply, hiredis.ReplyError):
                self._failure = ResponseError(str(reply))
                break
            if isinstance(reply, list) and reply:
                kind = str(reply[0])
                if len(reply) >= 3:
                    replies.append(Reply(kind, reply[1], reply[2]))
                else:
                    replies.append(Reply(kind, None, reply[1] if len(reply) > 1 else None))
            else:
                replies.append(Reply("reply", None, reply))
        return replies

    async def aclose(self) -> None:
        await self._connection.disconnect()
