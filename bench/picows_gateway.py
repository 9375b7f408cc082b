"""The harder yardstick: bench/baseline.py's fan-out job on picows (a Cython WebSocket) and uvloop.

The same job and the same wire format where the load generator looks
(``welcome``, ``ack`` with ``ref`` and ``id``, ``message`` with ``id``; the
username from the ``user`` query parameter), with what a C-speed server in
Python can shave off: picows parses frames in Cython, and Redis is spoken
directly over two asyncio protocols instead of through redis-py. One
connection publishes (pipelined: each ``PUBLISH`` reply releases the oldest
pending ack, so acks keep the publish order), one connection holds one
subscription per room and reads every push that arrived in one
``data_received`` in a single pass. Each event is encoded once as a
WebSocket frame (server frames are unmasked, so the bytes suit every socket)
and written straight to each member's transport.

Sala's own figures over these say what its gateway costs beyond the
cheapest fan-out Python can do.

    python -m bench.picows_gateway --port PORT --redis-url URL
"""

import argparse
import asyncio
import itertools
import struct
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import orjson
import uvloop
from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

CHANNEL_PREFIX = "bench:picows:"
MAX_FRAME_BYTES = 64 * 1024
WELCOME = b'{"type":"welcome"}'


def encode_text_frame(payload: bytes) -> bytes:
    """A server's final, unmasked text frame."""
    length = len(payload)
    if length < 126:
        return struct.pack("!BB", 0x81, length) + payload
    if length < 65536:
        return struct.pack("!BBH", 0x81, 126, length) + payload
    return struct.pack("!BBQ", 0x81, 127, length) + payload


def command(*parts: bytes) -> bytes:
    """One Redis command in RESP."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def parse_resp(buffer: bytes | bytearray, start: int) -> tuple[object, int] | None:
    """One RESP2 value at ``start`` and the offset after it, or None when it has not all arrived."""
    end = buffer.find(b"\r\n", start)
    if end < 0:
        return None
    kind, line = buffer[start], bytes(buffer[start + 1 : end])
    if kind == 0x2A:  # '*' array
        items, offset = [], end + 2
        for _ in range(int(line)):
            parsed = parse_resp(buffer, offset)
            if parsed is None:
                return None
            item, offset = parsed
            items.append(item)
        return items, offset
    if kind == 0x24:  # '$' bulk string
        length = int(line)
        if length < 0:
            return None, end + 2
        if len(buffer) < end + 2 + length + 2:
            return None
        return bytes(buffer[end + 2 : end + 2 + length]), end + 2 + length + 2
    if kind == 0x3A:  # ':' integer
        return int(line), end + 2
    if kind == 0x2D:  # '-' error
        raise RuntimeError(f"Redis error: {line.decode(errors='replace')}")
    return line, end + 2  # '+' simple string


class RespConnection(asyncio.Protocol):
    """A Redis connection that hands every complete reply or push to ``on_value`` as it is parsed."""

    def __init__(self, on_value: Callable[[object], None]) -> None:
        self._on_value = on_value
        self._buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        offset = 0
        while offset < len(buffer):
            parsed = parse_resp(buffer, offset)
            if parsed is None:
                break
            value, offset = parsed
            self._on_value(value)
        del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


class Member(WSListener):
    def __init__(self, gateway: "PicowsGateway", channel: bytes, username: str) -> None:
        self._gateway = gateway
        self.channel = channel
        self.username = username
        self.transport: WSTransport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self._gateway.join(self)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type == WSMsgType.TEXT:
            self._gateway.publish(self, orjson.loads(frame.get_payload_as_bytes()))
        elif frame.msg_type == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._gateway.leave(self)


class PicowsGateway:
    def __init__(self) -> None:
        self._publisher: RespConnection | None = None
        self._subscriber: RespConnection | None = None
        self._rooms: dict[bytes, set[Member]] = {}
        # Members of rooms whose SUBSCRIBE is not confirmed yet: welcomed once it is.
        self._waiting: dict[bytes, list[Member]] = {}
        self._acks: deque[tuple[Member, bytes]] = deque()
        self._ids = itertools.count()
        self._epoch_ms = int(time.time() * 1000)

    async def open(self, host: str, port: int) -> list[asyncio.Future]:
        """Connect to Redis; returns what resolves when either connection is lost."""
        loop = asyncio.get_running_loop()
        _, self._publisher = await loop.create_connection(lambda: RespConnection(self._on_reply), host, port)
        _, self._subscriber = await loop.create_connection(lambda: RespConnection(self._on_push), host, port)
        return [self._publisher.lost, self._subscriber.lost]

    def listener(self, request: WSUpgradeRequest) -> Member:
        query = parse_qs(urlsplit(request.path.decode()).query)
        channel = (CHANNEL_PREFIX + query.get("room", [""])[0]).encode()
        return Member(self, channel, query.get("user", ["anonymous"])[0])

    def join(self, member: Member) -> None:
        sockets = self._rooms.get(member.channel)
        if sockets is None:
            self._rooms[member.channel] = {member}
            self._waiting[member.channel] = [member]
            self._subscriber.transport.write(command(b"SUBSCRIBE", member.channel))
        elif member.channel in self._waiting:
            sockets.add(member)
            self._waiting[member.channel].append(member)
        else:
            sockets.add(member)
            member.transport.send(WSMsgType.TEXT, WELCOME)

    def leave(self, member: Member) -> None:
        sockets = self._rooms.get(member.channel)
        if sockets is None:
            return
        sockets.discard(member)
        if not sockets and member.channel not in self._waiting:
            del self._rooms[member.channel]
            self._subscriber.transport.write(command(b"UNSUBSCRIBE", member.channel))

    def publish(self, member: Member, frame: dict) -> None:
        event_id = f"{self._epoch_ms}-{next(self._ids)}"
        ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = {"id": event_id, "type": "message", "username": member.username, "text": frame["text"], "ts": ts}
        self._acks.append((member, orjson.dumps({"type": "ack", "ref": frame.get("ref"), "id": event_id})))
        self._publisher.transport.write(command(b"PUBLISH", member.channel, orjson.dumps(event)))

    def _on_reply(self, value: object) -> None:
        """A PUBLISH was carried out: the oldest pending ack may go."""
        member, ack = self._acks.popleft()
        if not member.transport.is_disconnected:
            member.transport.send(WSMsgType.TEXT, ack)

    def _on_push(self, value: object) -> None:
        kind, channel, data = value  # type: ignore[misc]
        if kind == b"message":
            sockets = self._rooms.get(channel)
            if sockets:
                frame = encode_text_frame(data)
                for member in sockets:
                    member.transport.underlying_transport.write(frame)
        elif kind == b"subscribe":
            for member in self._waiting.pop(channel, ()):
                if not member.transport.is_disconnected:
                    member.transport.send(WSMsgType.TEXT, WELCOME)
            if not self._rooms.get(channel):
                self._rooms.pop(channel, None)
                self._subscriber.transport.write(command(b"UNSUBSCRIBE", channel))


async def main(host: str, port: int, redis_url: str) -> None:
    redis = urlsplit(redis_url)
    gateway = PicowsGateway()
    lost = await gateway.open(redis.hostname or "127.0.0.1", redis.port or 6379)
    async with await ws_create_server(gateway.listener, host, port, max_frame_size=MAX_FRAME_BYTES):
        done, _ = await asyncio.wait(lost, return_when=asyncio.FIRST_COMPLETED)
    raise RuntimeError(f"the Redis connection was lost: {next(iter(done)).result()}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port, args.redis_url))
