"""The garbage collector's full passes: held through a handshake storm, frozen after it, thawed at chosen moments."""

import gc

import pytest

from services.gateway.collector import HELD_THRESHOLD, YOUNG_THRESHOLD, Collector, CollectorPolicy

POLICY = CollectorPolicy(storm_handshakes_per_second=50, quiet_seconds=1.0, max_hold_seconds=60, thaw_seconds=600)


class FakeGC:
    """The parts of the ``gc`` module the collector uses, recording each call."""

    def __init__(self) -> None:
        self.threshold = (700, 10, 10)
        self.calls: list[str] = []

    def collect(self) -> int:
        self.calls.append("collect")
        return 0

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")

    def get_threshold(self) -> tuple[int, ...]:
        return self.threshold

    def set_threshold(self, *threshold: int) -> None:
        self.threshold = threshold


class Storm:
    """A clock and a handshake count that the test moves."""

    def __init__(self) -> None:
        self.now = 100.0
        self.handshakes = 0

    def step(self, seconds: float, handshakes: int) -> None:
        self.now += seconds
        self.handshakes += handshakes


@pytest.fixture
def world() -> tuple[Collector, FakeGC, Storm]:
    fake, storm = FakeGC(), Storm()
    collector = Collector(POLICY, lambda: storm.handshakes, fake, lambda: storm.now)
    collector.settle()
    fake.calls.clear()
    return collector, fake, storm


def test_startup_collects_freezes_and_batches_young_objects():
    fake = FakeGC()
    Collector(POLICY, lambda: 0, fake, lambda: 0.0).settle()
    assert fake.calls == ["collect", "freeze"]
    assert fake.threshold == (YOUNG_THRESHOLD, 10, 10)


def test_a_storm_holds_full_passes_and_its_end_freezes_what_it_left(world):
    collector, fake, storm = world
    storm.step(0.25, 5)
    collector.tick()
    assert not collector.holding and fake.threshold == (YOUNG_THRESHOLD, 10, 10), "20 a second is no storm"
    storm.step(0.25, 50)
    collector.tick()
    assert collector.holding and fake.threshold == (YOUNG_THRESHOLD, 10, HELD_THRESHOLD)
    for _ in range(8):
        storm.step(0.25, 40)
        collector.tick()
    assert collector.holding and fake.calls == [], "young and middle passes go on; nothing frozen mid-storm"
    storm.step(0.25, 2)
    collector.tick()
    assert collector.holding, "under the rate, but not yet for quiet_seconds"
    for _ in range(4):
        storm.step(0.25, 2)
        collector.tick()
    assert not collector.holding
    assert fake.calls == ["freeze"] and fake.threshold == (YOUNG_THRESHOLD, 10, 10)
    assert collector.holds == 1


def test_a_storm_that_never_ends_freezes_its_objects_every_max_hold(world):
    collector, fake, storm = world
    for _ in range(int(POLICY.max_hold_seconds / 0.25) + 1):
        storm.step(0.25, 100)
        collector.tick()
    assert collector.holding and fake.calls == ["freeze"]
    assert collector.holds == 1


def test_frozen_objects_are_collected_every_thaw_period_outside_storms(world):
    collector, fake, storm = world
    storm.step(POLICY.thaw_seconds - 1, 0)
    collector.tick()
    assert fake.calls == []
    storm.step(1, 0)
    collector.tick()
    assert fake.calls == ["unfreeze", "collect", "freeze"]
    fake.calls.clear()
    storm.step(POLICY.thaw_seconds / 2, 0)
    collector.tick()
    storm.step(0.25, 100)
    collector.tick()
    storm.step(POLICY.thaw_seconds, 100)
    collector.tick()
    assert fake.calls == ["freeze"], "no thaw in a storm: the hold went past max_hold_seconds instead"


def test_a_release_on_stop_gives_python_its_thresholds_back(world):
    collector, fake, storm = world
    storm.step(0.25, 100)
    collector.tick()
    collector.release()
    assert not collector.holding and fake.threshold == (YOUNG_THRESHOLD, 10, 10)
    collector.release()
    assert fake.calls == ["freeze"], "a second release does nothing"


def test_the_real_gc_module_has_what_the_collector_uses():
    threshold = gc.get_threshold()
    collector = Collector(POLICY, lambda: 0)
    try:
        collector.settle()
        assert gc.get_freeze_count() > 0, "what exists at startup is out of every collection"
        assert gc.get_threshold() == (YOUNG_THRESHOLD, *threshold[1:])
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
