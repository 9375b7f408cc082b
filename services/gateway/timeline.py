"""Reading a room's timeline (its Redis stream): the history a socket starts with, and gaps to recover."""

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.redis_schema import event_frame, parse_event_id, room_events_key

EventId = tuple[int, int]


@dataclass(frozen=True, slots=True)
class History:
    # The events' frames as one JSON array, oldest first, as the welcome carries them.
    frames_json: str
    last_id: EventId | None
    truncated: bool


def joined_history(frames_json: str, last_id: str, since: EventId | None, stream: list | None) -> History:
    """The history the join script read with the join: the latest events, or every retained event after
    ``since``, flagging any that trimming removed. The script gives the frames as one JSON array, and the
    last one's id ('' for none).
    """
    return History(
        frames_json=frames_json,
        last_id=parse_event_id(last_id) if last_id else None,
        truncated=since is not None and _trimmed_after(since, stream),
    )


def _trimmed_after(since: EventId, stream: list | None) -> bool:
    """Whether trimming may have removed events after ``since``, from the stream's
    ``[length, entries added, first entry id or last generated id]`` (None: no stream).

    Trimming removes the oldest events, so that happened if the stream ever
    dropped an entry and ``since`` is older than the oldest one it kept.
    """
    if not stream:
        return False
    length, added, first = stream
    return int(added) > int(length) and since < parse_event_id(first)


async def events_after(redis: Redis, code: str, after: EventId) -> list[tuple[EventId, str]]:
    """Events published after ``after``, to recover what a dropped subscription missed."""
    entries = await redis.xrange(room_events_key(code), min=f"({after[0]}-{after[1]}")
    return [(parse_event_id(event_id), event_frame(event_id, fields["e"])) for event_id, fields in entries]
