"""The yardstick: the smallest chat gateway that does the same fan-out job.

Plain ``websockets`` asyncio server, no auth, no presence, no history: a
message is given an id, encoded once, published on the room's Redis channel,
and every frame that arrives on a channel goes to the room's sockets with
``websockets.broadcast()``. One pub/sub connection carries one subscription
per room (as in Sala's hub), so the ratio of Sala's figures to these isolates
what the gateway itself adds per socket and per frame.

The wire format is Sala's where the load generator looks (``welcome``,
``ack`` with ``ref`` and ``id``, ``message`` with ``id``); with no auth the
username comes from the ``user`` query parameter. Ids are ``<start ms>-<n>``
from one counter, published in order over a single connection, so a room's
events arrive in id order like Sala's.

    python -m bench.baseline --port PORT --redis-url URL
"""

import argparse
import asyncio
import itertools
import time
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import orjson
import uvloop
from redis.asyncio import Redis
from websockets.asyncio.server import ServerConnection, broadcast, serve

CHANNEL_PREFIX = "bench:baseline:"
MAX_FRAME_BYTES = 64 * 1024


class BaselineGateway:
    def __init__(self, redis_url: str) -> None:
        # One connection for publishing keeps the publish order the id order.
        self._publisher = Redis.from_url(redis_url, single_connection_client=True)
        self._pubsub = Redis.from_url(redis_url).pubsub(ignore_subscribe_messages=True)
        self._rooms: dict[str, set[ServerConnection]] = {}
        self._ids = itertools.count()
        self._epoch_ms = int(time.time() * 1000)

    async def handle(self, socket: ServerConnection) -> None:
        query = parse_qs(urlsplit(socket.request.path).query)
        channel = CHANNEL_PREFIX + query.get("room", [""])[0]
        username = query.get("user", ["anonymous"])[0]
        sockets = self._rooms.get(channel)
        if sockets is None:
            sockets = self._rooms[channel] = set()
            await self._pubsub.subscribe(channel)
        sockets.add(socket)
        try:
            await socket.send('{"type":"welcome"}')
            async for text in socket:
                await self._publish(socket, channel, username, orjson.loads(text))
        finally:
            sockets.discard(socket)
            if not sockets:
                del self._rooms[channel]
                await self._pubsub.unsubscribe(channel)

    async def _publish(self, socket: ServerConnection, channel: str, username: str, frame: dict) -> None:
        event_id = f"{self._epoch_ms}-{next(self._ids)}"
        ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        event = {"id": event_id, "type": "message", "username": username, "text": frame["text"], "ts": ts}
        await self._publisher.publish(channel, orjson.dumps(event))
        await socket.send(orjson.dumps({"type": "ack", "ref": frame.get("ref"), "id": event_id}).decode())

    async def pump(self) -> None:
        """Every published frame to the room's local sockets, decoded once."""
        await self._pubsub.subscribe(CHANNEL_PREFIX)  # the connection exists before the first room
        while True:
            message = await self._pubsub.get_message(timeout=1.0)
            if message is not None:
                sockets = self._rooms.get(message["channel"].decode())
                if sockets:
                    broadcast(sockets, message["data"].decode())


async def main(host: str, port: int, redis_url: str) -> None:
    gateway = BaselineGateway(redis_url)
    pump = asyncio.create_task(gateway.pump())
    async with serve(gateway.handle, host, port, max_size=MAX_FRAME_BYTES, compression=None) as server:
        await asyncio.gather(server.serve_forever(), pump)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--redis-url", required=True)
    args = parser.parse_args()
    uvloop.run(main(args.host, args.port, args.redis_url))
