"""The gateway's reads and writes of room state in Redis (keys: services.common.redis_schema)."""

from dataclasses import dataclass

import orjson
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.common.redis_schema import (
    GATEWAYS,
    LINGERING,
    Scripts,
    event_frame,
    gateway_conns_key,
    parse_event_id,
    room_events_key,
    room_key,
)

EventId = tuple[int, int]


@dataclass(frozen=True, slots=True)
class Joined:
    event_id: str
    members: list[str]
    name: str | None


@dataclass(frozen=True, slots=True)
class History:
    frames: list[str]
    last_id: EventId | None
    truncated: bool


async def join(
    scripts: Scripts, gateway_id: str, code: str, conn_id: str, user_id: str, username: str, ts: str, maxlen: int
) -> Joined | None:
    """Register the connection; None if the room is not live."""
    result = await scripts.join(
        keys=[room_key(code), gateway_conns_key(gateway_id)], args=[code, conn_id, user_id, username, ts, maxlen]
    )
    if result is None:
        return None
    event_id, members, name = result
    return Joined(event_id=event_id, members=orjson.loads(members), name=name or None)


async def leave(scripts: Scripts, gateway_id: str, code: str, conn_id: str, ts: str, maxlen: int, linger_ms: int) -> str:
    """Unregister the connection now, or (``linger_ms`` > 0) let the reaper do it that much later."""
    return await scripts.leave(
        keys=[room_key(code), gateway_conns_key(gateway_id), LINGERING],
        args=[code, conn_id, ts, maxlen, linger_ms],
    )


def _frames(entries: list[tuple[str, dict[str, str]]]) -> list[str]:
    return [event_frame(event_id, fields["e"]) for event_id, fields in entries]


async def history(redis: Redis, code: str, since: EventId | None, latest: int) -> History:
    """The latest events, or every retained event after ``since`` (flagging any that were trimmed)."""
    key = room_events_key(code)
    if since is None:
        entries = list(reversed(await redis.xrevrange(key, count=latest)))
        truncated = False
    else:
        entries = await redis.xrange(key, min=f"({since[0]}-{since[1]}")
        truncated = await _trimmed_after(redis, key, since)
    last_id = parse_event_id(entries[-1][0]) if entries else None
    return History(frames=_frames(entries), last_id=last_id, truncated=truncated)


async def _trimmed_after(redis: Redis, key: str, since: EventId) -> bool:
    """Whether trimming may have removed events after ``since``.

    Trimming removes the oldest events, so that happened if the stream ever
    dropped an entry and ``since`` is older than the oldest one it kept.
    """
    try:
        info = await redis.xinfo_stream(key)
    except ResponseError:
        return False
    if int(info["entries-added"]) <= int(info["length"]):
        return False
    first = info["first-entry"][0] if info.get("first-entry") else info["last-generated-id"]
    return since < parse_event_id(first)


async def events_after(redis: Redis, code: str, after: EventId) -> list[tuple[EventId, str]]:
    """Events published after ``after``, to recover what a dropped subscription missed."""
    entries = await redis.xrange(room_events_key(code), min=f"({after[0]}-{after[1]}")
    return [(parse_event_id(event_id), event_frame(event_id, fields["e"])) for event_id, fields in entries]


async def heartbeat(scripts: Scripts, gateway_id: str) -> bool:
    """Record that the gateway is alive; True if it had been forgotten (reaped, or Redis lost its data)."""
    return bool(await scripts.heartbeat(keys=[GATEWAYS], args=[gateway_id]))


async def retire(redis: Redis, gateway_id: str) -> None:
    """Forget a gateway that shut down cleanly."""
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.zrem(GATEWAYS, gateway_id).delete(gateway_conns_key(gateway_id)).execute()
