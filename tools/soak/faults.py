"""The fault injector: one fault at a time against a target, each recorded as a window.

The injector decides when, which kind, which gateway and for how long; a
``Target`` (``tools.soak.dev``: a supervised dev stack, ``tools.soak.compose``:
a compose project) knows how to do each kind:

- ``gateway_kill``: the gateway dies at once and comes back as a new process;
- ``gateway_freeze``: the gateway stops for the given seconds, then runs on;
- ``gateway_cut``: the gateway loses its network to Redis for the given seconds;
- ``redis_restart``: Redis stops cleanly and starts again;
- ``redis_kill``: Redis dies at once and comes back with its data;
- ``auth_restart``, ``rooms_restart``: the service stops cleanly and starts again.

Each method returns once the fault is over: a kill or a restart when what it
hit is ready again, a freeze or a cut when it is lifted.
"""

import asyncio
import logging
import random
import time
from collections.abc import Callable
from typing import Protocol

from tools.soak.history import Fault, History
from tools.soak.settings import SoakSettings

log = logging.getLogger("soak.faults")

RECOVERY_TIMEOUT_SECONDS = 90.0
MIN_GAP_SECONDS = 2.0


class Target(Protocol):
    """A running deployment the soak chats through and faults."""

    edge_url: str
    incidents: list[str]  # trouble of the harness itself, e.g. a child that did not restart at once

    def gateway_names(self) -> list[str]: ...

    async def read_streams(self, codes: list[str]) -> dict[str, list[tuple[str, dict]]]:
        """Each room's whole stream: (id, event without id)."""
        ...

    async def gateway_kill(self, gateway: str) -> None: ...

    async def gateway_freeze(self, gateway: str, seconds: float) -> None: ...

    async def gateway_cut(self, gateway: str, seconds: float) -> None: ...

    async def redis_restart(self) -> None: ...

    async def redis_kill(self) -> None: ...

    async def auth_restart(self) -> None: ...

    async def rooms_restart(self) -> None: ...


def schedule(settings: SoakSettings, rng: random.Random) -> list[tuple[float, str]]:
    """(offset from the start, kind) of every fault: spread over the run, every kind in each round of kinds."""
    span = settings.seconds - settings.warmup_seconds - settings.cooldown_seconds
    if settings.faults == 0 or span <= 0 or not settings.kinds:
        return []
    kinds: list[str] = []
    while len(kinds) < settings.faults:
        round_ = list(settings.kinds)
        rng.shuffle(round_)
        kinds += round_
    slot = span / settings.faults
    return [(settings.warmup_seconds + i * slot + rng.random() * slot / 2, kind) for i, kind in enumerate(kinds[: settings.faults])]


async def wait_until(check: Callable[[], bool], what: str) -> None:
    """Poll a blocking check (in a thread) until it holds; an error past the recovery timeout."""
    deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
    while not await asyncio.to_thread(check):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not come back within {RECOVERY_TIMEOUT_SECONDS:.0f} s")
        await asyncio.sleep(0.2)


class Injector:
    def __init__(self, target: Target, settings: SoakSettings, history: History, rng: random.Random) -> None:
        self.target = target
        self.settings = settings
        self.history = history
        self.rng = rng

    async def run(self, started: float) -> None:
        """Inject the scheduled faults; returns once the last has ended (and never starts one past the run)."""
        end_by = started + self.settings.seconds - self.settings.cooldown_seconds
        ready_at = started
        for offset, kind in schedule(self.settings, self.rng):
            at = max(started + offset, ready_at)
            if at >= end_by:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            await self.inject(kind)
            ready_at = time.monotonic() + MIN_GAP_SECONDS

    async def inject(self, kind: str) -> Fault:
        gateway = self.rng.choice(self.target.gateway_names())
        hit = gateway if kind.startswith("gateway") else kind.split("_")[0]
        fault = Fault(kind, hit, time.monotonic(), 0.0)
        self.history.faults.append(fault)
        try:
            if kind == "gateway_freeze":
                seconds = self.rng.uniform(self.settings.freeze_min_seconds, self.settings.freeze_max_seconds)
                await self.target.gateway_freeze(gateway, seconds)
            elif kind == "gateway_cut":
                seconds = self.rng.uniform(self.settings.cut_min_seconds, self.settings.cut_max_seconds)
                await self.target.gateway_cut(gateway, seconds)
            elif kind == "gateway_kill":
                await self.target.gateway_kill(gateway)
            else:
                await getattr(self.target, kind)()
        finally:
            fault.end = time.monotonic()
            log.info("fault %s on %s: %.1f s", kind, hit, fault.end - fault.start)
        return fault
