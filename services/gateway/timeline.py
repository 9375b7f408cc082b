"""Reading a room's timeline (its Redis stream): the history a socket starts with, and gaps to recover."""

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.redis_schema import event_frame, parse_event_id, room_events_key

EventId = tuple[int, int]


@dataclass(frozen=True, slots=True)
class History:
    frames: list[str]
    last_id: EventId | None
    truncated: bool


def _body(fields: list[str]) -> str:
    """The event JSON of a stream entry's fields as a script returns them (``["e", body]``)."""
    for index in range(0, len(fields), 2):
        if fields[index] == "e":
            return fields[index + 1]
    raise ValueError("a stream entry without its event")


def joined_history(entries: list, since: EventId | None, stream: list | None) -> History:
    """The history the join script read with the join: the latest events (it gives them newest first),
    or every retained event after ``since``, flagging any that trimming removed.
    """
    if since is None:
        entries.reverse()
    frames = [event_frame(event_id, _body(fields)) for event_id, fields in entries]
    last_id = parse_event_id(entries[-1][0]) if entries else None
    return History(frames=frames, last_id=last_id, truncated=since is not None and _trimmed_after(since, stream))


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
