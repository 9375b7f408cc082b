"""Bring up a target of its own (a dev stack or a compose project), run members and faults, judge the history."""

import asyncio
import logging
import random
import tempfile
import time
import uuid
from pathlib import Path

import httpx

from tools.devstack import Stack
from tools.soak.checker import Report, check
from tools.soak.compose import ComposeDeployment
from tools.soak.dev import DevStackTarget, soak_stack
from tools.soak.faults import Injector, Target
from tools.soak.history import History, parse_id
from tools.soak.member import Member, Phases
from tools.soak.settings import SoakSettings

__all__ = ["run", "soak", "soak_stack", "soak_target"]

log = logging.getLogger("soak")

PASSWORD = "soak: correct horse battery"
SETUP_TIMEOUT_SECONDS = 120.0


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
    """Run members and faults against a started dev stack of the soak (``soak_stack``)."""
    return await soak_target(DevStackTarget(stack), settings)


async def soak_target(target: Target, settings: SoakSettings) -> History:
    """Run members and faults against a running target; the history, with each room's stream at the end."""
    rng = random.Random(settings.seed)
    history = History()
    rooms = await asyncio.wait_for(_accounts(target.edge_url, settings), SETUP_TIMEOUT_SECONDS)
    phases = Phases(asyncio.Event(), asyncio.Event())
    ws_base = target.edge_url.replace("http://", "ws://")
    members = [
        Member(name, token, code, ws_base, settings, history, phases, random.Random(rng.random()))
        for code, people in rooms
        for name, token in people
    ]
    started = time.monotonic()
    hard_deadline = started + settings.seconds + settings.drain_seconds + 60
    tasks = [asyncio.create_task(member.run(hard_deadline)) for member in members]
    injector = Injector(target, settings, history, random.Random(rng.random()))
    try:
        await injector.run(started)
        await asyncio.sleep(max(0.0, started + settings.seconds - time.monotonic()))
        phases.stop_sending.set()
        log.info("sending stopped; draining for up to %.0f s", settings.drain_seconds)
        drain_end = time.monotonic() + settings.drain_seconds
        while time.monotonic() < drain_end and not _caught_up(members, history):
            await asyncio.sleep(0.5)
        history.streams = await target.read_streams([code for code, _ in rooms])
        phases.leave.set()
        await asyncio.wait(tasks, timeout=30)
    finally:
        phases.leave.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        history.incidents += target.incidents
    return history


async def run(settings: SoakSettings, logs: Path | None = None) -> Report:
    """The whole soak on a target of its own, torn down at the end; its logs go to ``logs`` if given."""
    with tempfile.TemporaryDirectory(prefix="sala-soak-") as tmp:
        if settings.target == "compose":
            history = await _on_compose(Path(tmp), settings, logs)
        else:
            history = await _on_dev_stack(Path(tmp), settings, logs)
    return check(history, settings.fault_settle_seconds)


async def _on_dev_stack(folder: Path, settings: SoakSettings, logs: Path | None) -> History:
    stack = soak_stack(folder, settings.gateways)
    if logs is not None:
        stack.log_dir = logs
    try:
        await asyncio.to_thread(stack.start)
        return await soak(stack, settings)
    finally:
        await asyncio.to_thread(stack.stop)


async def _on_compose(folder: Path, settings: SoakSettings, logs: Path | None) -> History:
    deployment = ComposeDeployment(folder, settings.gateways, settings.ref)
    try:
        target = await asyncio.to_thread(deployment.up)
        return await soak_target(target, settings)
    finally:
        await asyncio.to_thread(deployment.down, logs)
