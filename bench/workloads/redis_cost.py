"""Redis's own CPU per published event, and what each subscribed gateway adds to it.

Sala stores and publishes every event with one Lua script (XADD + PUBLISH),
and Redis writes the published frame once to every gateway subscribed to the
room. This pipelines that very script (``append_message``) at Redis with k
subscriber connections that read and discard, for several k, and reads the
server's CPU time from /proc: cost(k) ≈ a + b·k µs per event, the figures
docs/capacity.md scales from. Plain PUBLISH (what the baseline gateway asks
of Redis) is measured alongside.
"""

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable

import orjson
from redis.asyncio import Redis

from bench.context import Context
from bench.procstat import cpu_seconds
from bench.progress import Progress
from services.common.redis_schema import Scripts, room_key

ROOM = "BENCHREDIS"
BATCH = 200
HISTORY_MAX = 1000
DEDUPE_WINDOW = 1000


class _Discard(asyncio.Protocol):
    """A subscriber that reads everything as fast as it comes and keeps nothing."""

    def data_received(self, data: bytes) -> None:
        pass


def _body() -> bytes:
    event = {
        "type": "message",
        "username": "m0000x00",
        "text": "s0 m0000x00 123456789012345",
        "ts": "2025-01-01T00:00:00.000Z",
    }
    return orjson.dumps(event)


async def _cost(send_batch: Callable[[], Awaitable[None]], events: int, subscribers: int, port: int, pid: int) -> float:
    loop = asyncio.get_running_loop()
    transports = []
    for _ in range(subscribers):
        transport, _ = await loop.create_connection(_Discard, "127.0.0.1", port)
        transport.write(f"SUBSCRIBE {room_key(ROOM)}\r\n".encode())
        transports.append(transport)
    await asyncio.sleep(0.2)
    await send_batch()  # warm: scripts loaded, buffers grown
    before = cpu_seconds(pid)
    for _ in range(events // BATCH):
        await send_batch()
    await asyncio.sleep(0.3)  # let Redis finish writing to the subscribers
    used = cpu_seconds(pid) - before
    for transport in transports:
        transport.close()
    return used * 1e6 / (events // BATCH * BATCH)


async def _measure(
    url: str, port: int, pid: int, events: int, subscriber_counts: list[int], progress: Progress
) -> dict:
    redis = Redis.from_url(url)
    scripts = Scripts.register(redis)
    body = _body()
    await redis.hset(room_key(ROOM), mapping={"code": ROOM, "name": ""})

    refs = itertools.count()

    append = scripts.append_message
    await redis.script_load(append.script)

    async def script_batch() -> None:
        # Every event with a ref of its own, as the gateway sends them: a repeated ref would skip the append.
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(BATCH):
                pipe.evalsha(append.sha, 1, room_key(ROOM), HISTORY_MAX, body, f"m0000x00 {next(refs)}", DEDUPE_WINDOW)
            await pipe.execute()

    async def publish_batch() -> None:
        async with redis.pipeline(transaction=False) as pipe:
            for _ in range(BATCH):
                pipe.publish(room_key(ROOM), body)
            await pipe.execute()

    try:
        script = {}
        for count in subscriber_counts:
            script[count] = round(await _cost(script_batch, events, count, port, pid), 2)
            progress.update()
        publish = round(await _cost(publish_batch, events, 1, port, pid), 2)
    finally:
        # The room's keys all share its prefix (redis_schema): the hash, the stream, the refs.
        await redis.delete(*[key async for key in redis.scan_iter(match=room_key(ROOM).replace("{", "[{]") + "*")])
        await redis.aclose()
    return {"script": script, "publish_one_subscriber": publish}


def _fit(points: dict[int, float]) -> tuple[float, float]:
    """Least squares a + b·k."""
    n = len(points)
    mean_k = sum(points) / n
    mean_c = sum(points.values()) / n
    spread = sum((k - mean_k) ** 2 for k in points)
    slope = sum((k - mean_k) * (c - mean_c) for k, c in points.items()) / spread if spread else 0.0
    return mean_c - slope * mean_k, slope


def redis_cost(ctx: Context, events: int, subscriber_counts: list[int]) -> dict:
    stack = ctx.systems.stack
    progress = Progress("redis cost per event", None)
    started = time.monotonic()
    measured = asyncio.run(
        _measure(stack.redis_url, stack.ports.redis, ctx.systems.pid("redis"), events, subscriber_counts, progress)
    )
    base, per_subscriber = _fit(measured["script"])
    progress.done(f"{base:.1f} µs + {per_subscriber:.2f} µs per subscribed gateway")
    return {
        "events_per_point": events,
        "script_us_per_event_by_subscribers": {str(k): v for k, v in measured["script"].items()},
        "fit_us_per_event": {"base": round(base, 2), "per_subscriber": round(per_subscriber, 3)},
        "publish_us_per_event_one_subscriber": measured["publish_one_subscriber"],
        "events_per_redis_cpu_second_one_subscriber": round(1e6 / measured["script"][min(measured["script"])]),
        "seconds": round(time.monotonic() - started, 1),
    }
