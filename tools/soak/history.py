"""What the soak observed: plain records, appended by the members and the injector, judged by the checker.

Times are ``time.monotonic()`` seconds of the one soak process.
"""

from dataclasses import dataclass, field

import orjson


def parse_id(event_id: str) -> tuple[int, int]:
    """Stream ids order as the pair of integers ``(ms, seq)``, not as strings."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


def decode_stream(entries: list) -> list[tuple[str, dict]]:
    """A room's stream as XRANGE gives it, each entry's event (field ``e``, JSON) decoded: ``History.streams``."""
    return [(event_id, orjson.loads(fields.get("e", "{}"))) for event_id, fields in entries]


@dataclass
class Sent:
    member: str
    room: str
    ref: str
    text: str
    at: float  # first transmission


@dataclass
class Ack:
    member: str
    room: str
    ref: str
    id: str
    at: float


@dataclass
class Delivery:
    member: str
    room: str
    id: str
    kind: str  # message, join, leave
    text: str | None
    at: float
    live: bool  # False: from a welcome's history


@dataclass
class Session:
    """One member's continuous session in its room, across reconnects."""

    member: str
    room: str
    # The first welcome's earliest history id when that history may have been cut by the
    # history limit: events before it were never owed to this member. None: everything was.
    floor: str | None = None
    welcomed: bool = False
    ended: str = "running"  # then: left, room_closed, logged_out, unauthorized, deadline
    reconnects: int = 0
    outages: list[float] = field(default_factory=list)  # seconds from losing the socket to the next welcome


@dataclass
class Fault:
    kind: str
    target: str
    start: float
    end: float


@dataclass
class History:
    sent: list[Sent] = field(default_factory=list)
    acks: list[Ack] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    sessions: dict[str, Session] = field(default_factory=dict)
    faults: list[Fault] = field(default_factory=list)
    # Each room's stream at the end: (id, event without id), read with XRANGE before anyone left.
    streams: dict[str, list[tuple[str, dict]]] = field(default_factory=dict)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (member, ref, error code) never retried
    incidents: list[str] = field(default_factory=list)  # trouble of the harness itself, e.g. a child that did not restart at once
