"""Judges a soak's history: acked means delivered, exactly once, in order, to every member that stayed.

Rules, for every room and member (each able to fail on its own):

- lost acked: a message acked in the room during the member's session (after
  its floor) that the member never received, live or in a welcome's history;
- duplicate delivery: the member received one event id more than once;
- out of order: the member received an event id below one it had already
  received (its session is continuous across reconnects);
- stored twice: one message (one text, unique per ref) under two ids, in the
  room's stream at the end, in what members received, or in two acks;
- room closed under its members: a member was told 4404 while it had not left;
- acked but not stored: an acked id missing from its room's stream at the end
  (the soak's rooms keep every event), which also catches a stream read under
  the wrong key.

Latency is from a message's first transmission to its live delivery, over
samples whose span touches no fault window (each widened by a settle time).
"""

import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from tools.soak.history import History, parse_id

EXAMPLES = 10  # examples kept per finding, so a report stays readable


@dataclass
class Report:
    sent: int = 0
    acked: int = 0
    lost_acked: int = 0  # distinct acked messages some member never received
    lost_pairs: int = 0  # (message, member) pairs missing
    stored_twice: int = 0
    acked_not_stored: int = 0
    duplicates_delivered: int = 0
    out_of_order: int = 0
    rooms_closed_under_members: int = 0
    reconnects: int = 0
    longest_outage_seconds: float = 0.0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_samples: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    rejected: int = 0
    longest_outage_by_member: dict[str, float] = field(default_factory=dict)
    # Each fault: kind, target, start (seconds after the first message was sent) and duration.
    fault_log: list[dict] = field(default_factory=list)
    incidents: list[str] = field(default_factory=list)
    examples: dict[str, list] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        return not (
            self.lost_acked or self.stored_twice or self.duplicates_delivered or self.out_of_order
            or self.rooms_closed_under_members or self.acked_not_stored
        )

    def as_dict(self) -> dict:
        return {**asdict(self), "clean": self.clean}

    def table(self) -> str:
        p50 = "-" if self.latency_p50_ms is None else f"{self.latency_p50_ms:.1f}"
        p99 = "-" if self.latency_p99_ms is None else f"{self.latency_p99_ms:.1f}"
        rows = [
            ("sent", self.sent),
            ("acked", self.acked),
            ("acked but never delivered (messages / member pairs)", f"{self.lost_acked} / {self.lost_pairs}"),
            ("stored twice", self.stored_twice),
            ("acked but not in the room's stream at the end", self.acked_not_stored),
            ("duplicate deliveries", self.duplicates_delivered),
            ("out of order", self.out_of_order),
            ("rooms closed under their members", self.rooms_closed_under_members),
            ("reconnects", self.reconnects),
            ("longest outage of a member (s)", f"{self.longest_outage_seconds:.1f}"),
            ("latency p50 / p99 outside faults (ms)", f"{p50} / {p99} ({self.latency_samples} samples)"),
            ("faults", ", ".join(f"{kind} {count}" for kind, count in sorted(self.faults.items())) or "none"),
            ("messages refused by the server", self.rejected),
            ("harness incidents (see the JSON)", len(self.incidents)),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"| {'measure'.ljust(width)} | value |", f"| {'-' * width} | --- |"]
        lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
        return "\n".join(lines)


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def check(history: History, settle_seconds: float = 3.0) -> Report:
    report = Report()
    report.sent = len(history.sent)
    report.rejected = len(history.rejected)
    report.incidents = list(history.incidents)
    report.faults = dict(Counter(fault.kind for fault in history.faults))
    t0 = min((sent.at for sent in history.sent), default=0.0)
    report.fault_log = [
        {"kind": f.kind, "target": f.target, "start": round(f.start - t0, 2), "seconds": round(f.end - f.start, 2)}
        for f in history.faults
    ]
    examples: dict[str, list] = defaultdict(list)

    def example(rule: str, item: object) -> None:
        if len(examples[rule]) < EXAMPLES:
            examples[rule].append(item)

    # Acks: one id per (room, ref); a ref acked under two ids was stored twice.
    acked: dict[str, dict[str, str]] = defaultdict(dict)  # room -> id -> ref
    ids_of_ref: dict[tuple[str, str], set[str]] = defaultdict(set)
    acked_at: dict[str, float] = {}
    for ack in history.acks:
        acked[ack.room][ack.id] = ack.ref
        ids_of_ref[(ack.room, ack.ref)].add(ack.id)
        acked_at.setdefault(ack.id, ack.at)
    report.acked = len(ids_of_ref)

    # Stored twice: one text under several ids, wherever the ids were seen.
    ids_of_text: dict[tuple[str, str], set[str]] = defaultdict(set)
    for room, events in history.streams.items():
        for event_id, event in events:
            if event.get("type") == "message":
                ids_of_text[(room, event.get("text", ""))].add(event_id)
    for delivery in history.deliveries:
        if delivery.kind == "message" and delivery.text is not None:
            ids_of_text[(delivery.room, delivery.text)].add(delivery.id)
    text_of_ref = {(sent.room, sent.ref): sent.text for sent in history.sent}
    for (room, ref), ids in ids_of_ref.items():
        ids_of_text[(room, text_of_ref.get((room, ref), f"ref:{ref}"))] |= ids
    for (room, text), ids in ids_of_text.items():
        if len(ids) > 1:
            report.stored_twice += len(ids) - 1
            example("stored_twice", {"room": room, "text": text, "ids": sorted(ids, key=parse_id)})

    for room, events in history.streams.items():
        stored = {event_id for event_id, _ in events}
        for event_id in acked[room]:
            if event_id not in stored:
                report.acked_not_stored += 1
                example("acked_not_stored", {"room": room, "id": event_id})

    # Per member: duplicates, order, and every acked message of its session received.
    received: dict[str, list] = defaultdict(list)
    for delivery in history.deliveries:
        received[delivery.member].append(delivery)
    lost_messages: set[tuple[str, str]] = set()
    closed_rooms: set[str] = set()
    for member, session in history.sessions.items():
        got = received[member]
        counts = Counter(d.id for d in got)
        for event_id, count in counts.items():
            if count > 1:
                report.duplicates_delivered += count - 1
                example("duplicates", {"member": member, "id": event_id, "times": count})
        highest: tuple[int, int] | None = None
        seen: set[str] = set()
        for delivery in got:
            key = parse_id(delivery.id)
            if delivery.id not in seen and highest is not None and key < highest:
                report.out_of_order += 1
                example("out_of_order", {"member": member, "id": delivery.id, "after": f"{highest[0]}-{highest[1]}"})
            seen.add(delivery.id)
            highest = key if highest is None else max(highest, key)
        if session.ended == "room_closed":
            closed_rooms.add(session.room)
        if not session.welcomed:
            continue
        owed = [event_id for event_id in acked[session.room] if _owed(event_id, session.floor)]
        if session.ended in ("room_closed", "logged_out", "unauthorized"):
            # Its session ended early: only what came before its last delivery was surely owed.
            owed = [event_id for event_id in owed if highest is not None and parse_id(event_id) <= highest]
        for event_id in owed:
            if event_id not in seen:
                report.lost_pairs += 1
                lost_messages.add((session.room, event_id))
                example("lost_acked", {"member": member, "room": session.room, "id": event_id,
                                       "fault": _last_fault(history, acked_at.get(event_id))})
        report.reconnects += session.reconnects
        longest = max(session.outages, default=0.0)
        report.longest_outage_by_member[member] = round(longest, 3)
        report.longest_outage_seconds = max(report.longest_outage_seconds, longest)
    report.lost_acked = len(lost_messages)
    report.rooms_closed_under_members = len(closed_rooms)

    # Latency outside faults.
    first_sent = {(sent.room, sent.text): sent.at for sent in history.sent}
    windows = [(fault.start, fault.end + settle_seconds) for fault in history.faults]
    samples = []
    for delivery in history.deliveries:
        sent_at = first_sent.get((delivery.room, delivery.text or ""))
        if not delivery.live or delivery.kind != "message" or sent_at is None:
            continue
        if any(start <= delivery.at and sent_at <= end for start, end in windows):
            continue
        samples.append((delivery.at - sent_at) * 1000)
    if samples:
        report.latency_samples = len(samples)
        report.latency_p50_ms = round(percentile(samples, 0.50), 2)
        report.latency_p99_ms = round(percentile(samples, 0.99), 2)
    report.examples = dict(examples)
    return report


def _last_fault(history: History, at: float | None) -> str | None:
    """The last fault begun before ``at``, and how long after its end (negative: during it)."""
    begun = [fault for fault in history.faults if at is not None and fault.start <= at]
    if not begun:
        return None
    fault = max(begun, key=lambda f: f.start)
    return f"{fault.kind} on {fault.target}, acked {at - fault.end:+.2f} s after its end"


def _owed(event_id: str, floor: str | None) -> bool:
    return floor is None or parse_id(event_id) >= parse_id(floor)
