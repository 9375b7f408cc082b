"""The fault injector: one fault at a time against a running dev stack, each recorded as a window.

Kinds: ``gateway_kill`` (SIGKILL; the supervisor restarts it), ``gateway_freeze``
(SIGSTOP, then SIGCONT), ``gateway_cut`` (its Redis proxy drops and refuses
connections), ``redis_restart`` (SIGTERM, then start), ``redis_kill`` (SIGKILL;
the supervisor restarts it, its append-only file keeps the data),
``auth_restart`` and ``rooms_restart`` (SIGTERM, then start).
"""

import asyncio
import logging
import os
import random
import signal
import time

from tools.devstack import Stack, StartupError, http_ok, port_open
from tools.soak.history import Fault, History
from tools.soak.settings import SoakSettings

log = logging.getLogger("soak.faults")

RECOVERY_TIMEOUT_SECONDS = 90.0
MIN_GAP_SECONDS = 2.0


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


class Injector:
    def __init__(self, stack: Stack, settings: SoakSettings, history: History, rng: random.Random) -> None:
        self.stack = stack
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
        gateway = f"gateway{self.rng.randrange(len(self.stack.ports.gateways))}"
        target = gateway if kind.startswith("gateway") else kind.split("_")[0]
        fault = Fault(kind, target, time.monotonic(), 0.0)
        self.history.faults.append(fault)
        try:
            await getattr(self, kind)(target)
        finally:
            fault.end = time.monotonic()
            log.info("fault %s on %s: %.1f s", kind, target, fault.end - fault.start)
        return fault

    async def _wait_for(self, check, what: str) -> None:
        deadline = time.monotonic() + RECOVERY_TIMEOUT_SECONDS
        while not await asyncio.to_thread(check):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come back within {RECOVERY_TIMEOUT_SECONDS:.0f} s")
            await asyncio.sleep(0.2)

    async def _killed_and_restarted(self, name: str, ready) -> None:
        pid = self.stack.pid(name)
        os.kill(pid, signal.SIGKILL)

        def back() -> bool:
            child = self.stack.children.get(name)
            return child is not None and child.process.pid != pid and child.process.poll() is None and ready()

        await self._wait_for(back, name)

    async def gateway_kill(self, name: str) -> None:
        url = self.stack.service_url(name) + "/readyz"
        await self._killed_and_restarted(name, lambda: http_ok(url))

    async def gateway_freeze(self, name: str) -> None:
        pid = self.stack.pid(name)
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(self.rng.uniform(self.settings.freeze_min_seconds, self.settings.freeze_max_seconds))
        finally:
            os.kill(pid, signal.SIGCONT)

    async def gateway_cut(self, name: str) -> None:
        seconds = self.rng.uniform(self.settings.cut_min_seconds, self.settings.cut_max_seconds)
        await asyncio.to_thread(self.stack.cut_redis, name, seconds)
        await asyncio.sleep(seconds)

    async def redis_restart(self, name: str) -> None:
        await self._restart("redis", lambda: port_open(self.stack.ports.redis))

    async def redis_kill(self, name: str) -> None:
        await self._killed_and_restarted("redis", lambda: port_open(self.stack.ports.redis))

    async def auth_restart(self, name: str) -> None:
        url = self.stack.service_url("auth") + "/readyz"
        await self._restart("auth", lambda: http_ok(url))

    async def rooms_restart(self, name: str) -> None:
        url = self.stack.service_url("rooms") + "/readyz"
        await self._restart("rooms", lambda: http_ok(url))

    async def _restart(self, name: str, ready) -> None:
        """SIGTERM, then start; a start that fails is the supervisor's to retry, and the fault lasts until it is up."""
        await asyncio.to_thread(self.stack.stop_child, name, signal.SIGTERM)
        try:
            await asyncio.to_thread(self.stack.start_child, name)
        except StartupError as exc:
            log.warning("%s did not start at once; the supervisor retries: %s", name, exc)
            self.history.incidents.append(f"{name} did not start at once: {exc}")

            def up() -> bool:
                child = self.stack.children.get(name)
                return child is not None and child.process.poll() is None and ready()

            await self._wait_for(up, name)
