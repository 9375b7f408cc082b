"""The supervised dev stack and the short soak: members chatting through faults, judged by the checker.

Both run on a stack of their own (``tools.soak.run.soak_stack``: supervised,
gateways behind cuttable Redis proxies, the product's default timing). Run
alone with ``pytest -m soak``; ``make soak`` runs the 10-minute version.
"""

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import redis.asyncio as aioredis

from services.common.redis_schema import GATEWAYS
from tools.devstack import Stack
from tools.soak.checker import check
from tools.soak.run import soak, soak_stack
from tools.soak.settings import SoakSettings

pytestmark = pytest.mark.soak


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Overrides the session stack for this module: this one restarts what dies."""
    with tempfile.TemporaryDirectory(prefix="sala-soak-test-") as tmp:
        running = soak_stack(Path(tmp), gateways=2)
        if "SALA_TEST_LOG_DIR" in os.environ:
            running.log_dir = Path(os.environ["SALA_TEST_LOG_DIR"]) / "soak"
        try:
            running.start()
            yield running
        finally:
            running.stop()


async def _gateway_ids(stack: Stack) -> set[str]:
    client = aioredis.Redis.from_url(stack.redis_url, decode_responses=True)
    try:
        return set(await client.zrange(GATEWAYS, 0, -1))
    finally:
        await client.aclose()


async def test_a_killed_gateway_is_restarted_on_its_port_with_a_new_id(stack, new_user, new_room, open_socket):
    old_pid = stack.pid("gateway1")
    url = stack.service_url("gateway1") + "/healthz"
    os.kill(old_pid, signal.SIGKILL)
    async with httpx.AsyncClient(timeout=2, trust_env=False) as probe:
        async with asyncio.timeout(60):
            while True:
                child = stack.children.get("gateway1")
                if child is not None and child.process.pid != old_pid:
                    try:
                        if (await probe.get(url)).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                await asyncio.sleep(0.2)
    new_pid = stack.pid("gateway1")
    async with asyncio.timeout(10):
        while not any(f"-{new_pid}-" in gateway_id for gateway_id in await _gateway_ids(stack)):
            await asyncio.sleep(0.2)

    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    a = await open_socket(alice, code)
    await a.recv_type("welcome")
    b = await open_socket(bob, code)
    await b.recv_type("welcome")
    sent = await a.say("after the restart")
    got = await b.recv_type("message")
    assert (got["id"], got["text"]) == (sent, "after the restart")


async def test_a_gateway_stopped_on_purpose_stays_stopped(stack):
    stack.stop_child("gateway0", signal.SIGKILL)
    try:
        await asyncio.sleep(2)  # four supervisor rounds, past its first backoff
        assert "gateway0" not in stack.children
    finally:
        stack.start_child("gateway0")


async def test_redis_is_capped_without_eviction_and_keeps_an_append_only_file(redis_client):
    config = await redis_client.config_get("*")
    assert config["maxmemory-policy"] == "noeviction"
    assert int(config["maxmemory"]) == 256 * 1024 * 1024  # SALA_DEV_REDIS_MAXMEMORY's default
    assert config["appendonly"] == "yes"


async def test_short_soak_loses_nothing_acked(stack):
    settings = SoakSettings(
        seconds=float(os.environ.get("SALA_SOAK_SECONDS", "75")),
        faults=8,
        freeze_min_seconds=5, freeze_max_seconds=8,
        cut_min_seconds=5, cut_max_seconds=8,
        warmup_seconds=5, cooldown_seconds=8,
        seed=int(time.time()),
    )
    history = await soak(stack, settings)
    report = check(history, settings.fault_settle_seconds)
    print(f"\nshort soak (seed {settings.seed}):\n{report.table()}")
    print(orjson.dumps({"faults": report.fault_log, **report.examples}, option=orjson.OPT_INDENT_2).decode())
    assert report.faults and sum(report.faults.values()) >= len(settings.kinds)
    assert report.acked > 0
    assert report.lost_acked == 0
    assert report.stored_twice == 0
    assert report.acked_not_stored == 0
    assert report.out_of_order == 0
    assert report.duplicates_delivered == 0
    assert report.rooms_closed_under_members == 0
