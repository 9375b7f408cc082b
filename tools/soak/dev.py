"""The soak's dev-stack target: a supervised stack of its own, faulted with signals and proxies.

Kinds: ``gateway_kill`` (SIGKILL; the supervisor restarts it), ``gateway_freeze``
(SIGSTOP, then SIGCONT), ``gateway_cut`` (its Redis proxy drops and refuses
connections), ``redis_restart`` (SIGTERM, then start), ``redis_kill`` (SIGKILL;
the supervisor restarts it, its append-only file keeps the data),
``auth_restart`` and ``rooms_restart`` (SIGTERM, then start). The checker
reads the streams straight from the stack's Redis.
"""

import asyncio
import logging
import os
import signal
from pathlib import Path

import redis.asyncio as aioredis

from services.common.redis_schema import room_events_key
from tools.devstack import Ports, Stack, StartupError, http_ok, port_open
from tools.soak.faults import wait_until
from tools.soak.history import decode_stream
from tools.soak.settings import PRODUCT_ENV

log = logging.getLogger("soak.dev")


def soak_stack(folder: Path, gateways: int, extra_env: dict[str, str] | None = None) -> Stack:
    """A supervised stack whose gateways reach Redis through proxies the injector can cut."""
    return Stack(
        data_dir=folder / "data",
        ports=Ports.free(gateways),
        log_dir=folder / "logs",
        fast_storage=True,
        extra_env={**PRODUCT_ENV, **(extra_env or {})},
        supervise=True,
        redis_proxies=True,
    )


class DevStackTarget:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.edge_url = stack.edge_url
        self.incidents: list[str] = []

    def gateway_names(self) -> list[str]:
        return [f"gateway{index}" for index in range(len(self.stack.ports.gateways))]

    async def read_streams(self, codes: list[str]) -> dict[str, list[tuple[str, dict]]]:
        client = aioredis.Redis.from_url(self.stack.redis_url, decode_responses=True)
        try:
            return {code: decode_stream(await client.xrange(room_events_key(code))) for code in codes}
        finally:
            await client.aclose()

    async def gateway_kill(self, gateway: str) -> None:
        url = self.stack.service_url(gateway) + "/readyz"
        await self._killed_and_restarted(gateway, lambda: http_ok(url))

    async def gateway_freeze(self, gateway: str, seconds: float) -> None:
        pid = self.stack.pid(gateway)
        os.kill(pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(seconds)
        finally:
            os.kill(pid, signal.SIGCONT)

    async def gateway_cut(self, gateway: str, seconds: float) -> None:
        await asyncio.to_thread(self.stack.cut_redis, gateway, seconds)
        await asyncio.sleep(seconds)

    async def redis_restart(self) -> None:
        await self._restart("redis", lambda: port_open(self.stack.ports.redis))

    async def redis_kill(self) -> None:
        await self._killed_and_restarted("redis", lambda: port_open(self.stack.ports.redis))

    async def auth_restart(self) -> None:
        url = self.stack.service_url("auth") + "/readyz"
        await self._restart("auth", lambda: http_ok(url))

    async def rooms_restart(self) -> None:
        url = self.stack.service_url("rooms") + "/readyz"
        await self._restart("rooms", lambda: http_ok(url))

    async def _killed_and_restarted(self, name: str, ready) -> None:
        pid = self.stack.pid(name)
        os.kill(pid, signal.SIGKILL)

        def back() -> bool:
            child = self.stack.children.get(name)
            return child is not None and child.process.pid != pid and child.process.poll() is None and ready()

        await wait_until(back, name)

    async def _restart(self, name: str, ready) -> None:
        """SIGTERM, then start; a start that fails is the supervisor's to retry, and the fault lasts until it is up."""
        await asyncio.to_thread(self.stack.stop_child, name, signal.SIGTERM)
        try:
            await asyncio.to_thread(self.stack.start_child, name)
        except StartupError as exc:
            log.warning("%s did not start at once; the supervisor retries: %s", name, exc)
            self.incidents.append(f"{name} did not start at once: {exc}")

            def up() -> bool:
                child = self.stack.children.get(name)
                return child is not None and child.process.poll() is None and ready()

            await wait_until(up, name)
