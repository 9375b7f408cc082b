"""The hub's pub/sub connection: replies parsed in bulk from raw reads, errors and ends raised, no health pings."""

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from services.gateway.wire import PubSubWire, Reply


def resp(*items: str | int) -> bytes:
    """A RESP2 array of bulk strings and integers, as the server sends a pub/sub reply."""
    parts = [b"*%d\r\n" % len(items)]
    for item in items:
        if isinstance(item, int):
            parts.append(b":%d\r\n" % item)
        else:
            data = item.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


class FakeConnection:
    """A connected redis-py connection as the wire uses it: its raw stream, and what was sent."""

    def __init__(self) -> None:
        self._reader = asyncio.StreamReader()
        self.sent: list[tuple[tuple[str, ...], dict]] = []
        self.disconnected = False

    async def send_command(self, *args: str, **kwargs: object) -> None:
        self.sent.append((args, kwargs))

    async def disconnect(self) -> None:
        self.disconnected = True


@pytest.fixture
def connection() -> FakeConnection:
    return FakeConnection()


async def test_one_read_returns_every_complete_reply_in_order(connection):
    wire = PubSubWire(connection)
    connection._reader.feed_data(
        resp("subscribe", "sala:room:{A}", 1) + resp("message", "sala:room:{A}", "one") + resp("pong", "hello")
    )
    assert await wire.read(1) == [
        Reply("subscribe", "sala:room:{A}", 1),
        Reply("message", "sala:room:{A}", "one"),
        Reply("pong", None, "hello"),
    ]


async def test_a_reply_split_across_reads_comes_whole(connection):
    wire = PubSubWire(connection)
    whole = resp("smessage", "sala:room:{A}", '{"id":"1-0","text":"héllo"}')
    connection._reader.feed_data(whole[:9])
    assert await wire.read(1) == []
    connection._reader.feed_data(whole[9:])
    assert await wire.read(1) == [Reply("smessage", "sala:room:{A}", '{"id":"1-0","text":"héllo"}')]


async def test_an_error_reply_is_raised_after_the_replies_before_it(connection):
    wire = PubSubWire(connection)
    connection._reader.feed_data(resp("message", "c", "before") + b"-MOVED 12 127.0.0.1:7001\r\n")
    assert await wire.read(1) == [Reply("message", "c", "before")]
    with pytest.raises(ResponseError, match="MOVED"):
        await wire.read(1)


async def test_nothing_within_the_timeout_is_an_empty_read(connection):
    assert await PubSubWire(connection).read(0.01) == []


async def test_the_server_closing_the_connection_is_a_connection_error(connection):
    wire = PubSubWire(connection)
    connection._reader.feed_eof()
    with pytest.raises(RedisConnectionError):
        await wire.read(1)


async def test_commands_go_out_without_redis_pys_health_check(connection):
    """Its health check would send a PING and read the answer itself, taking a message off the stream."""
    wire = PubSubWire(connection)
    await wire.subscribe("a", "b")
    await wire.ssubscribe("c")
    await wire.sunsubscribe("c")
    await wire.unsubscribe("a")
    await wire.ping("hi")
    assert [args for args, _ in connection.sent] == [
        ("SUBSCRIBE", "a", "b"),
        ("SSUBSCRIBE", "c"),
        ("SUNSUBSCRIBE", "c"),
        ("UNSUBSCRIBE", "a"),
        ("PING", "hi"),
    ]
    assert all(kwargs == {"check_health": False} for _, kwargs in connection.sent)
    await wire.aclose()
    assert connection.disconnected
