"""The gateway's handshake rate: a bucket of handshakes, and spread retry hints for those beyond it."""

import re

import pytest

from services.gateway.admission import Admission, HandshakeGate, Refused, retry_reason
from services.gateway.closes import Close
from services.gateway.settings import GatewaySettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_is_admitted_at_once_and_then_the_rate():
    clock = Clock()
    gate = HandshakeGate(rate=8, burst=5, max_wait=10, clock=clock)
    assert [gate.admit() for _ in range(5)] == [None] * 5
    assert gate.admit() is not None
    clock.now += 0.25
    assert sum(gate.admit() is None for _ in range(20)) == 2
    clock.now += 60
    assert sum(gate.admit() is None for _ in range(20)) == 5, "never more than the burst at once"


def test_refused_handshakes_are_told_distinct_slots_one_interval_apart():
    clock = Clock()
    gate = HandshakeGate(rate=10, burst=1, max_wait=10, clock=clock)
    assert gate.admit() is None
    waits = [gate.admit() for _ in range(4)]
    assert waits == pytest.approx([0.1, 0.2, 0.3, 0.4])


def test_a_client_that_waits_as_told_gets_in():
    clock = Clock()
    gate = HandshakeGate(rate=4, burst=2, max_wait=10, clock=clock)
    assert gate.admit() is None and gate.admit() is None
    waits = [gate.admit() for _ in range(3)]
    for wait in waits:
        clock.now = 1000.0 + wait
        assert gate.admit() is None, "the token promised for this slot is there when it comes back"


def test_promises_never_reach_past_the_longest_wait():
    clock = Clock()
    gate = HandshakeGate(rate=1, burst=1, max_wait=3, clock=clock)
    gate.admit()
    waits = [gate.admit() for _ in range(10)]
    assert max(waits) == pytest.approx(3)
    assert waits[:3] == pytest.approx([1, 2, 3])


def test_slots_already_past_are_not_promised_again():
    clock = Clock()
    gate = HandshakeGate(rate=2, burst=1, max_wait=10, clock=clock)
    gate.admit()
    assert gate.admit() == pytest.approx(0.5)
    clock.now += 60
    gate.admit()  # the refilled token
    assert gate.admit() == pytest.approx(0.5), "the wait counts from now, not from an old promise"


def test_the_replica_gate_follows_the_settings(tmp_path):
    settings = GatewaySettings(
        jwt_verify_keys_file=tmp_path / "keys.pem", handshake_rate_per_second=2, handshake_burst=3
    )
    admission = Admission(settings)
    assert [admission.handshakes.admit() for _ in range(3)] == [None] * 3
    wait = admission.handshakes.admit()
    assert wait is not None and 0 < wait <= settings.leave_grace_seconds / 2


@pytest.mark.parametrize("field", ["handshake_rate_per_second", "handshake_burst"])
def test_the_handshake_settings_are_bounded(tmp_path, field):
    with pytest.raises(ValueError):
        GatewaySettings(jwt_verify_keys_file=tmp_path / "keys.pem", **{field: 0})


def test_the_hint_is_whole_milliseconds_in_the_reason():
    assert retry_reason("busy", 0.8504) == "busy; retry_after_ms=851", "rounded up: never too early"
    assert re.search(r"retry_after_ms=(\d+)", retry_reason("busy", 0.0001)).group(1) == "1"


def test_a_user_connecting_too_often_is_told_when_to_come_back(tmp_path):
    settings = GatewaySettings(jwt_verify_keys_file=tmp_path / "keys.pem", connects_per_user_per_minute=2)
    admission = Admission(settings)
    for _ in range(2):
        admission.admit("u1", "192.0.2.1").release()
    with pytest.raises(Refused) as refused:
        admission.admit("u1", "192.0.2.1")
    assert refused.value.code == Close.TRY_AGAIN
    assert refused.value.reason.endswith("retry_after_ms=30000")
