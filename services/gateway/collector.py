"""When the cyclic garbage collector makes its full passes: never in the middle of a reconnect storm.

Each idle socket holds some 75 objects the collector tracks (coroutines,
tasks, protocol objects), for hours. A full pass scans every one of them:
about 100 ms of the event loop's core at 5,000 sockets on the bench machine,
every socket's frames held up meanwhile. Python starts a full pass whenever
what survived into the oldest generation has grown by a quarter since the
last one; a reconnect storm, which doubles a survivor's sockets in seconds,
set off several of them, and they, not the handshakes, kept the bystanders'
p99 over 100 ms (docs/capacity.md).

So the gateway chooses the moments:

- At startup: one collection, then everything is frozen (moved out of every
  later pass; startup's 80,000 objects are never garbage), and young objects
  are collected in batches of ``YOUNG_THRESHOLD`` allocations.
- While handshakes arrive at ``storm_handshakes_per_second`` or faster, full
  passes are held: the oldest generation's threshold is out of reach. Young
  and middle passes go on, so short-lived garbage is still reclaimed.
- Once handshakes have stayed under that rate for ``quiet_seconds`` (or the
  hold has lasted ``max_hold_seconds``), what the storm left is frozen, which
  costs no pass, and Python's own rule resumes for what is made after.
- Every ``thaw_seconds``, outside a storm: unfreeze, one full pass, freeze
  again. Frozen objects that became cyclic garbage (the sockets that closed
  since) are reclaimed there; refcounting frees the rest as it always does.
  That pass is the one long pause left, at a moment the gateway picks.

Tested with a fake of the ``gc`` module (tests/unit/test_collector.py);
Python 3.11 to 3.13 have the generational thresholds this relies on.
"""

import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType

log = logging.getLogger(__name__)

# Allocations between two collections of the youngest objects (Python's default: 700).
YOUNG_THRESHOLD = 10_000
# The oldest generation's threshold while full passes are held: more middle passes than a process makes.
HELD_THRESHOLD = 2**31 - 1
# How often the handshake rate is read.
SAMPLE_SECONDS = 0.25


@dataclass(frozen=True, slots=True)
class CollectorPolicy:
    storm_handshakes_per_second: float
    quiet_seconds: float
    max_hold_seconds: float
    thaw_seconds: float


class Collector:
    """Holds full passes through storms and makes them at chosen moments instead.

    ``handshakes`` reads how many handshakes the gateway has seen in all (it
    only grows); ``collector`` is the ``gc`` module, a fake in tests.
    """

    def __init__(
        self,
        policy: CollectorPolicy,
        handshakes: Callable[[], int],
        collector: ModuleType = gc,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._policy = policy
        self._handshakes = handshakes
        self._gc = collector
        self._clock = clock
        self._thresholds: tuple[int, ...] = ()
        self._seen = 0
        self._sampled_at = 0.0
        # When the current hold began and when the storm last showed (None: no hold).
        self._held_since: float | None = None
        self._stormy_at = 0.0
        self._thawed_at = 0.0
        self.holds = 0

    @property
    def holding(self) -> bool:
        return self._held_since is not None

    def settle(self) -> None:
        """At startup: collect once, freeze what startup made, collect young objects in big batches."""
        self._gc.collect()
        self._gc.freeze()
        self._gc.set_threshold(YOUNG_THRESHOLD, *self._gc.get_threshold()[1:])
        self._thresholds = self._gc.get_threshold()
        self._seen = self._handshakes()
        self._sampled_at = self._thawed_at = self._clock()

    def tick(self) -> None:
        """Read the handshake rate since the last tick; hold, release or thaw as it says."""
        now = self._clock()
        seen = self._handshakes()
        elapsed = now - self._sampled_at
        stormy = elapsed > 0 and (seen - self._seen) / elapsed >= self._policy.storm_handshakes_per_second
        self._seen, self._sampled_at = seen, now
        if stormy:
            self._stormy_at = now
            if self._held_since is None:
                self._hold(now)
            elif now - self._held_since >= self._policy.max_hold_seconds:
                # A storm that never ends must not keep garbage forever: freeze what it made, hold anew.
                self._gc.freeze()
                self._held_since = now
        elif self._held_since is not None:
            if now - self._stormy_at >= self._policy.quiet_seconds:
                self.release()
        elif now - self._thawed_at >= self._policy.thaw_seconds:
            self._thaw(now)

    async def run(self, pause: Callable[[float], Awaitable[bool]]) -> None:
        """Tick every ``SAMPLE_SECONDS`` until ``pause`` says the gateway is stopping."""
        while await pause(SAMPLE_SECONDS):
            self.tick()

    def _hold(self, now: float) -> None:
        self._held_since = now
        self.holds += 1
        self._gc.set_threshold(*self._thresholds[:2], HELD_THRESHOLD)
        log.info("handshake storm: full garbage collections held")

    def release(self) -> None:
        """End a hold (the gateway stopping ends one too): freeze what it kept, Python's thresholds back."""
        if self._held_since is None:
            return
        held = self._clock() - (self._held_since or 0.0)
        self._held_since = None
        self._gc.freeze()
        # Frozen just now: the next thaw is a whole period away.
        self._thawed_at = self._clock()
        self._gc.set_threshold(*self._thresholds)
        log.info("handshake storm over: its objects frozen", extra={"held_seconds": round(held, 2)})

    def _thaw(self, now: float) -> None:
        started = time.perf_counter()
        self._gc.unfreeze()
        self._gc.collect()
        self._gc.freeze()
        self._thawed_at = now
        log.info("frozen objects collected", extra={"pause_ms": round((time.perf_counter() - started) * 1000, 1)})
