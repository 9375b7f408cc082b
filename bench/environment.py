"""The systems under test: Sala's stack (tools.devstack) and the two yardsticks, pinned to CPUs.

The yardsticks are bench/baseline.py (plain ``websockets``) and
bench/picows_gateway.py (picows and uvloop): the same fan-out job with none
of Sala's duties, the second as cheap as Python gets.

WebSockets go straight to the gateway's own port, not through the edge: the
figures are those of ONE gateway process, and Caddy would otherwise share the
load generator's CPU. HTTP (room creation, login) goes through the edge like
any client's.
"""

import asyncio
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import httpx

from bench.cpus import CpuPlan
from bench.loadgen import MemberSpec
from services.common.settings import ServiceSettings
from services.common.tokens import TokenSigner, load_private_key
from tools.devstack import ROOT, Ports, Stack, free_port

# Settings that differ from the defaults, and why: the per-socket and
# per-user message and frame limits would cap the saturation ramp below what
# the gateway can carry; thousands of sockets come from one address and few
# users, faster than the per-user connect pace, and a storm that outlasts the
# leave grace meets closed rooms from that one address; and the per-address login and
# registration limits would stop the login workload, whose clients all come
# from 127.0.0.1.
BENCH_ENV = {
    "SALA_MESSAGE_RATE_PER_SECOND": "1000",
    "SALA_MESSAGE_BURST": "1000",
    "SALA_MESSAGE_RATE_PER_USER_PER_SECOND": "1000000",
    "SALA_MESSAGE_BURST_PER_USER": "1000000",
    "SALA_FRAME_RATE_PER_SECOND": "2000",
    "SALA_FRAME_BURST": "2000",
    "SALA_MAX_SOCKETS_PER_USER": "1000000",
    "SALA_MAX_SOCKETS_PER_ADDRESS": "1000000",
    "SALA_CONNECTS_PER_USER_PER_MINUTE": "1000000",
    # The connect workloads measure how fast sockets come; the storm gives its own gateways the production gate.
    "SALA_HANDSHAKE_RATE_PER_SECOND": "1000000",
    "SALA_HANDSHAKE_BURST": "1000000",
    "SALA_ROOM_LOOKUP_MISSES_PER_USER": "1000000",
    "SALA_ROOM_LOOKUP_MISSES_PER_ADDRESS": "1000000",
    "SALA_LOGIN_ATTEMPTS_PER_ADDRESS": "1000000",
    "SALA_REGISTRATIONS_PER_ADDRESS": "1000000",
}
TOKEN_TTL_SECONDS = 3600
ROOM_CREATE_CONCURRENCY = 16


@dataclass
class Target(ABC):
    """A gateway to load: where it listens, its process, and how to make rooms and members for it."""

    name: str
    port: int
    pid: int

    @abstractmethod
    def population(self, rooms: int, per_room: int, label: str) -> list[MemberSpec]:
        """``rooms`` rooms of ``per_room`` members; ``label`` keeps names unique across workloads."""


class SalaTarget(Target):
    """Gateway 0 of the stack; members carry tokens minted with the stack's dev signing key."""

    def __init__(self, stack: Stack) -> None:
        super().__init__("sala", stack.ports.gateways[0], stack.pid("gateway0"))
        self._edge_url = stack.edge_url
        settings = ServiceSettings()
        self._signer = TokenSigner(
            load_private_key(stack.signing_key), settings.jwt_issuer, settings.jwt_audience, TOKEN_TTL_SECONDS
        )

    def token(self, username: str) -> str:
        """A valid access token for a synthetic user (the gateway checks only signature and revocation)."""
        return self._signer.issue(uuid.uuid4().hex, username, uuid.uuid4().hex)[0]

    def population(self, rooms: int, per_room: int, label: str) -> list[MemberSpec]:
        """Rooms created through the edge, each by its first member; every member with its own token."""
        names = [[f"{label}{room}x{seat}" for seat in range(per_room)] for room in range(rooms)]
        tokens = {name: self.token(name) for row in names for name in row}
        codes = _create_rooms(self._edge_url, [tokens[row[0]] for row in names])
        return [
            MemberSpec(name, code, f"/ws?room={code}", {"Authorization": f"Bearer {tokens[name]}"})
            for code, row in zip(codes, names, strict=True)
            for name in row
        ]


class BaselineTarget(Target):
    """A yardstick gateway: no auth, the room and the username in the query string."""

    def population(self, rooms: int, per_room: int, label: str) -> list[MemberSpec]:
        return [
            MemberSpec(
                f"{label}{room}x{seat}", f"{label}{room}", f"/ws?room={label}{room}&user={label}{room}x{seat}", {}
            )
            for room in range(rooms)
            for seat in range(per_room)
        ]


def _create_rooms(edge_url: str, creator_tokens: list[str]) -> list[str]:
    async def create_all() -> list[str]:
        gate = asyncio.Semaphore(ROOM_CREATE_CONCURRENCY)
        async with httpx.AsyncClient(base_url=edge_url, timeout=30) as client:

            async def create(token: str) -> str:
                async with gate:
                    response = await client.post("/api/rooms", headers={"Authorization": f"Bearer {token}"}, json={})
                    response.raise_for_status()
                    return response.json()["code"]

            return await asyncio.gather(*(create(token) for token in creator_tokens))

    return asyncio.run(create_all())


def wait_for_port(name: str, port: int, process: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the {name} gateway exited with code {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"the {name} gateway did not start listening")


# The yardsticks by name: the module each runs as.
YARDSTICKS = {"baseline": "bench.baseline", "picows": "bench.picows_gateway"}


class Systems:
    """Starts and stops everything the workloads measure, and knows what runs where."""

    def __init__(self, cpus: CpuPlan, log_dir: Path) -> None:
        self.cpus = cpus
        self.log_dir = log_dir
        self._tmp = tempfile.TemporaryDirectory(prefix="sala-bench-")
        self.stack = Stack(
            data_dir=Path(self._tmp.name) / "data",
            ports=Ports.free(1),
            log_dir=log_dir,
            fast_storage=True,
            extra_env=BENCH_ENV,
        )
        self._yardsticks: list[tuple[subprocess.Popen, IO[str]]] = []
        self.sala: SalaTarget | None = None

    def start(self) -> None:
        self.stack.start()
        for name in self.stack.children:
            self.cpus.place(self.stack.pid(name), self.cpus.server if name.startswith("gateway") else self.cpus.load)
        self.sala = SalaTarget(self.stack)

    def start_yardstick(self, name: str) -> BaselineTarget:
        """Start one of ``YARDSTICKS`` on a free port, pinned like Sala's gateway."""
        port = free_port()
        log = open(self.log_dir / f"{name}.log", "a")  # noqa: SIM115 - closed in stop()
        process = subprocess.Popen(
            [sys.executable, "-m", YARDSTICKS[name], "--port", str(port), "--redis-url", self.stack.redis_url],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self._yardsticks.append((process, log))
        wait_for_port(name, port, process)
        self.cpus.place(process.pid, self.cpus.server)
        return BaselineTarget(name, port, process.pid)

    def pid(self, name: str) -> int:
        return self.stack.pid(name)

    def stop(self) -> None:
        for process, log in self._yardsticks:
            process.terminate()
            process.wait(10)
            log.close()
        self.stack.stop()
        self._tmp.cleanup()
