"""Reading a room's timeline (its Redis stream): the history a socket starts with, and gaps to recover."""

from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from services.common.redis_schema import event_frame, parse_event_id, room_events_key

EventId = tuple[int, int]


@dataclass(frozen=True, slots=True)
class History:
    frames: list[str]
    last_id: EventId | None
    truncated: bool


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
