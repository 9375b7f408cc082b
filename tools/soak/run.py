"""Start a dev stack of its own (free ports, a temporary folder), run members and faults, judge the history."""

import asyncio
import logging
import random
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
import redis.asyncio as aioredis

from services.common.redis_schema import room_events_key
from tools.devstack import Ports, Stack
from tools.soak.checker import Report, check
from tools.soak.faults import Injector
from tools.soak.history import History, parse_id
from tools.soak.member import Member, Phases
from tools.soak.settings import SoakSettings

log = logging.getLogger("soak")

PASSWORD = "soak: correct horse battery"
# The soak's stack keeps the product's own timing (presence timeout, leave grace): the faults
# are measured against what production promises. Only what would throttle the soak itself
# changes, and rooms keep every event so the checker can read whole streams at the end.
STACK_ENV = {
    "SALA_REGISTRATIONS_PER_ADDRESS": "10000",
    "SALA_LOGIN_ATTEMPTS_PER_ADDRESS": "10000",
    "SALA_ROOMS_PER_USER": "1000",
    "SALA_ACCESS_TOKEN_TTL_SECONDS": "86400",
    "SALA_ROOM_HISTORY_MAX": "100000",
    "SALA_LOG_LEVEL": "INFO",
}
SETUP_TIMEOUT_SECONDS = 120.0


def soak_stack(folder: Path, gateways: int, extra_env: dict[str, str] | None = None) -> Stack:
    """A supervised stack whose gateways reach Redis through proxies the injector can cut."""
    return Stack(
        data_dir=folder / "data",
        ports=Ports.free(gateways),
        log_dir=folder / "logs",
        fast_storage=True,
        extra_env={**STACK_ENV, **(extra_env or {})},
        supervise=True,
        redis_proxies=True,
    )


async def _accounts(edge: str, settings: SoakSettings) -> list[tuple[str, list[tuple[str, str]]]]:
    """One room per entry with its members' (name, token); the first member created the room."""
    rooms = []
    run = uuid.uuid4().hex[:6]
    async with httpx.AsyncClient(base_url=edge, timeout=30, trust_env=False) as api:
        for r in range(settings.rooms):
            members = []
            for m in range(settings.members):
                name = f"soak{run}r{r}m{m}"
                email = f"{name}@example.com"
                response = await api.post("/api/auth/register", json={"email": email, "username": name, "password": PASSWORD})
                response.raise_for_status()
                response = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
                response.raise_for_status()
                api.cookies.clear()
                members.append((name, response.json()["access_token"]))
            response = await api.post("/api/rooms", json={"name": f"soak {r}"}, headers={"Authorization": f"Bearer {members[0][1]}"})
            response.raise_for_status()
            rooms.append((response.json()["code"], members))
    return rooms


async def _read_streams(redis_url: str, codes: list[str]) -> dict[str, list[tuple[str, dict]]]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        streams = {}
        for code in codes:
            entries = await client.xrange(room_events_key(code))
            streams[code] = [(event_id, orjson.loads(fields.get("e", "{}"))) for event_id, fields in entries]
        return streams
    finally:
        await client.aclose()


def _caught_up(members: list[Member], history: History) -> bool:
    """Every member holds no unacked message and has received every acked id of its room after its floor."""
    acked: dict[str, set[str]] = {}
    for ack in history.acks:
        acked.setdefault(ack.room, set()).add(ack.id)
    for member in members:
        if member.session.ended != "running":
            continue
        if member.pending:
            return False
        floor = member.session.floor
        owed = {i for i in acked.get(member.room, ()) if floor is None or parse_id(i) >= parse_id(floor)}
        if not owed <= member.received_ids:
            return False
    return True


async def soak(stack: Stack, settings: SoakSettings) -> History:
    """Run members and faults against a started stack; the history, with each room's stream at the end."""
    rng = random.Random(settings.seed)
    history = History()
    rooms = await asyncio.wait_for(_accounts(stack.edge_url, settings), SETUP_TIMEOUT_SECONDS)
    phases = Phases(asyncio.Event(), asyncio.Event())
    ws_base = stack.edge_url.replace("http://", "ws://")
    members = [
        Member(name, token, code, ws_base, settings, history, phases, random.Random(rng.random()))
        for code, people in rooms
        for name, token in people
    ]
    started = time.monotonic()
    hard_deadline = started + settings.seconds + settings.drain_seconds + 60
    tasks = [asyncio.create_task(member.run(hard_deadline)) for member in members]
    injector = Injector(stack, settings, history, random.Random(rng.random()))
    try:
        await injector.run(started)
        await asyncio.sleep(max(0.0, started + settings.seconds - time.monotonic()))
        phases.stop_sending.set()
        log.info("sending stopped; draining for up to %.0f s", settings.drain_seconds)
        drain_end = time.monotonic() + settings.drain_seconds
        while time.monotonic() < drain_end and not _caught_up(members, history):
            await asyncio.sleep(0.5)
        history.streams = await _read_streams(stack.redis_url, [code for code, _ in rooms])
        phases.leave.set()
        await asyncio.wait(tasks, timeout=30)
    finally:
        phases.leave.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return history


async def run(settings: SoakSettings, logs: Path | None = None) -> Report:
    """The whole soak on a stack of its own, torn down at the end; its children's logs go to ``logs`` if given."""
    with tempfile.TemporaryDirectory(prefix="sala-soak-") as tmp:
        stack = soak_stack(Path(tmp), settings.gateways)
        if logs is not None:
            stack.log_dir = logs
        try:
            await asyncio.to_thread(stack.start)
            history = await soak(stack, settings)
        finally:
            await asyncio.to_thread(stack.stop)
    return check(history, settings.fault_settle_seconds)
