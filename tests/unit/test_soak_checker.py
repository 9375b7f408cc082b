"""The soak's checker on synthetic histories: a clean run passes, and each rule catches its own fault."""

import random

import pytest

from tools.soak.checker import check, percentile
from tools.soak.faults import schedule
from tools.soak.history import Ack, Delivery, Fault, History, Sent, Session
from tools.soak.member import backoff_delay
from tools.soak.settings import FAULT_KINDS, SoakSettings

ROOM = "ACDEFG"


def clean_history() -> History:
    """Two members, ann and bob; ann sends three messages, each delivered once to both, in order."""
    history = History()
    for name in ("ann", "bob"):
        history.sessions[name] = Session(name, ROOM, floor=None, welcomed=True, ended="left")
    ids = ["100-0", "100-1", "205-0"]
    for n, event_id in enumerate(ids):
        text = f"ann says #{n}"
        history.sent.append(Sent("ann", ROOM, f"ann-{n}", text, at=10.0 + n))
        history.acks.append(Ack("ann", ROOM, f"ann-{n}", event_id, at=10.01 + n))
        for name in ("ann", "bob"):
            history.deliveries.append(Delivery(name, ROOM, event_id, "message", text, at=10.005 + n, live=True))
    history.streams[ROOM] = [(event_id, {"type": "message", "username": "ann", "text": f"ann says #{n}"})
                             for n, event_id in enumerate(ids)]
    return history


def test_a_clean_history_is_clean():
    report = check(clean_history())
    assert report.clean
    assert (report.sent, report.acked, report.lost_acked) == (3, 3, 0)
    assert report.latency_samples == 6 and report.latency_p50_ms == pytest.approx(5, abs=0.01)
    assert "| sent" in report.table() and report.as_dict()["clean"] is True


def test_an_acked_message_a_member_never_got_is_lost():
    history = clean_history()
    history.deliveries = [d for d in history.deliveries if not (d.member == "bob" and d.id == "100-1")]
    report = check(history)
    assert (report.lost_acked, report.lost_pairs) == (1, 1) and not report.clean
    assert report.examples["lost_acked"] == [{"member": "bob", "room": ROOM, "id": "100-1", "fault": None}]
    history.faults.append(Fault("redis_restart", "redis", start=10.5, end=10.8))
    assert check(history).examples["lost_acked"][0]["fault"] == "redis_restart on redis, acked +0.21 s after its end"


def test_events_before_a_members_floor_are_not_owed():
    history = clean_history()
    history.sessions["bob"].floor = "205-0"
    history.deliveries = [d for d in history.deliveries if not (d.member == "bob" and d.id != "205-0")]
    assert check(history).clean


def test_a_member_whose_room_closed_is_owed_only_what_came_before_and_the_closure_counts():
    history = clean_history()
    history.sessions["bob"].ended = "room_closed"
    history.deliveries = [d for d in history.deliveries if not (d.member == "bob" and d.id == "205-0")]
    report = check(history)
    assert report.lost_acked == 0
    assert report.rooms_closed_under_members == 1 and not report.clean


def test_a_room_closed_before_a_member_was_even_welcomed_counts():
    history = clean_history()
    history.sessions["cid"] = Session("cid", ROOM, welcomed=False, ended="room_closed")
    assert check(history).rooms_closed_under_members == 1


def test_two_deliveries_of_one_id_are_a_duplicate():
    history = clean_history()
    history.deliveries.append(Delivery("bob", ROOM, "100-0", "message", "ann says #0", at=20, live=False))
    report = check(history)
    assert report.duplicates_delivered == 1 and report.out_of_order == 0 and not report.clean


def test_an_id_below_one_already_received_is_out_of_order():
    history = clean_history()
    bob = [d for d in history.deliveries if d.member == "bob"]
    bob[1], bob[2] = bob[2], bob[1]
    history.deliveries = [d for d in history.deliveries if d.member != "bob"] + bob
    report = check(history)
    assert report.out_of_order == 1 and report.duplicates_delivered == 0 and not report.clean


def test_ids_compare_as_numbers_not_strings():
    history = clean_history()
    for delivery, event_id in zip(history.deliveries, ["9-0", "9-0", "10-0", "10-0", "10-1", "10-1"], strict=True):
        delivery.id = event_id
    history.acks = [Ack("ann", ROOM, a.ref, i, a.at) for a, i in zip(history.acks, ["9-0", "10-0", "10-1"], strict=True)]
    history.streams = {}
    assert check(history).out_of_order == 0


def test_one_message_under_two_ids_in_the_stream_is_stored_twice():
    history = clean_history()
    history.streams[ROOM].append(("300-0", {"type": "message", "username": "ann", "text": "ann says #2"}))
    report = check(history)
    assert report.stored_twice == 1 and not report.clean
    assert report.examples["stored_twice"][0]["ids"] == ["205-0", "300-0"]


def test_an_acked_id_missing_from_the_stream_at_the_end_was_not_stored():
    history = clean_history()
    history.streams[ROOM].pop(1)
    report = check(history)
    assert report.acked_not_stored == 1 and not report.clean
    assert report.examples["acked_not_stored"] == [{"room": ROOM, "id": "100-1"}]
    history.streams[ROOM] = []  # a stream read under the wrong key
    assert check(history).acked_not_stored == 3


def test_one_ref_acked_under_two_ids_is_stored_twice():
    history = clean_history()
    history.streams = {}
    history.acks.append(Ack("ann", ROOM, "ann-0", "400-0", at=30))
    assert check(history).stored_twice == 1


def test_an_unacked_message_delivered_under_two_ids_is_stored_twice():
    history = clean_history()
    history.streams = {}
    history.sent.append(Sent("ann", ROOM, "ann-9", "never acked", at=40))
    for event_id in ("500-0", "500-1"):
        history.deliveries.append(Delivery("bob", ROOM, event_id, "message", "never acked", at=41, live=True))
    report = check(history)
    assert report.stored_twice == 1 and report.lost_acked == 0


def test_latency_inside_a_fault_window_is_left_out():
    history = clean_history()
    history.faults.append(Fault("gateway_freeze", "gateway0", start=10.5, end=11.5))
    report = check(history, settle_seconds=0.1)
    assert report.latency_samples == 4  # the message sent at 11 s is inside the window
    assert report.faults == {"gateway_freeze": 1}
    assert report.fault_log == [{"kind": "gateway_freeze", "target": "gateway0", "start": 0.5, "seconds": 1.0}]


def test_outages_and_reconnects_are_reported():
    history = clean_history()
    history.sessions["bob"].reconnects = 2
    history.sessions["bob"].outages = [0.4, 3.5]
    report = check(history)
    assert report.reconnects == 2 and report.longest_outage_seconds == 3.5
    assert report.longest_outage_by_member == {"ann": 0.0, "bob": 3.5}


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert (percentile(values, 0.5), percentile(values, 0.99), percentile([7], 0.99)) == (50, 99, 7)


def test_the_schedule_covers_every_kind_within_the_run():
    settings = SoakSettings(seconds=600, faults=30)
    plan = schedule(settings, random.Random(1))
    assert len(plan) == 30 and {kind for _, kind in plan} == set(FAULT_KINDS)
    offsets = [offset for offset, _ in plan]
    assert offsets == sorted(offsets)
    assert settings.warmup_seconds <= offsets[0] and offsets[-1] < settings.seconds - settings.cooldown_seconds


def test_settings_refuse_unknown_kinds_and_inverted_bounds():
    with pytest.raises(ValueError, match="unknown fault kinds"):
        SoakSettings(kinds=("gateway_kill", "meteor"))
    with pytest.raises(ValueError, match="minimum"):
        SoakSettings(freeze_min_seconds=9, freeze_max_seconds=3)


def test_backoff_is_jittered_and_capped():
    rng = random.Random(3)
    delays = [backoff_delay(attempt, 0.5, 10, rng) for attempt in range(12)]
    assert all(0.25 <= d <= 10 for d in delays)
    assert 5 <= delays[-1] <= 10
