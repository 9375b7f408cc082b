"""The test stack with Postgres and Redis in containers (testcontainers) instead of embedded servers.

``SALA_TEST_SERVERS=containers`` makes the ``stack`` fixture (tests/conftest.py)
use ``ContainerStack``: the same ``tools.devstack.Stack`` (auth, rooms, gateways
and the edge as local processes), but Postgres and Redis are containers of the
images compose runs, published on the stack's own ports. Stopping and starting
"redis" or "postgres" stops and starts the container, so the failure tests work
unchanged; Redis keeps its data in a folder of the stack's data directory, as
the embedded one does.

Testcontainers' reaper (Ryuk) is off: its image cannot be pulled without a
registry, and ``stop()`` removes the containers itself. Connections go to the
Docker host's published ports (``docker_host`` mode) even when the tests run in
a container themselves.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from dataclasses import dataclass, field

import redis

# Before testcontainers is imported: it reads these at import.
os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("TESTCONTAINERS_CONNECTION_MODE", "docker_host")

from docker.errors import DockerException
from testcontainers.community.postgres import PostgresContainer
from testcontainers.community.redis import RedisContainer
from testcontainers.core.container import DockerContainer

from tests.support import unavailable
from tools.devstack import DevSettings, Stack, StartupError

# The images docker-compose.yml runs (tools/ensure-docker.sh builds local ones when no registry answers).
POSTGRES_IMAGE = os.environ.get("SALA_POSTGRES_IMAGE", "postgres:16")
REDIS_IMAGE = os.environ.get("SALA_REDIS_IMAGE", "redis:7")
READY_SECONDS = 60


@dataclass
class ContainerStack(Stack):
    """A Stack whose Postgres and Redis run in containers."""

    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    containers: dict[str, DockerContainer] = field(default_factory=dict)

    @property
    def database_url(self) -> str:
        return f"postgresql://sala:{self.password}@127.0.0.1:{self.ports.postgres}/sala"

    def _start_container(self, name: str, container: DockerContainer) -> None:
        try:
            container.start()
        except DockerException as error:
            unavailable(f"{name} container did not start (SALA_TEST_SERVERS=containers needs Docker): {error}")
        self.containers[name] = container

    def start_postgres(self) -> None:
        if self._restart("postgres"):
            return
        container = PostgresContainer(POSTGRES_IMAGE, username="sala", password=self.password, dbname="sala", driver=None)
        container.with_bind_ports(5432, self.ports.postgres)
        if self.fast_storage:
            container.with_command(["postgres", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
        self._start_container("postgres", container)

    def start_redis(self) -> None:
        folder = self.data_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        if self._restart("redis"):
            return
        container = RedisContainer(REDIS_IMAGE)
        container.with_bind_ports(6379, self.ports.redis)
        # The data folder belongs to whoever runs the tests, and so do the files Redis writes there.
        container.with_kwargs(user=f"{os.getuid()}:{os.getgid()}")
        container.with_volume_mapping(str(folder), "/data", "rw")
        container.with_command([
            "redis-server",
            "--dir", "/data",
            "--appendonly", "yes",
            "--appendfsync", "no" if self.fast_storage else "always",
            "--save", "",
            "--maxmemory", self.redis_maxmemory or DevSettings().redis_maxmemory,
            "--maxmemory-policy", "noeviction",
        ])  # fmt: skip
        self._start_container("redis", container)

    def _restart(self, name: str) -> bool:
        """Start a stopped container again, on the same ports and data; False if there is none."""
        container = self.containers.get(name)
        if container is None:
            return False
        wrapped = container.get_wrapped_container()
        wrapped.reload()
        if wrapped.status != "running":
            wrapped.start()
        self._wait_ready(name)
        return True

    def _wait_ready(self, name: str) -> None:
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            if self._answers(name):
                return
            time.sleep(0.2)
        raise StartupError(f"{name} container did not answer within {READY_SECONDS} s")

    def _answers(self, name: str) -> bool:
        if name == "redis":
            client = redis.Redis.from_url(self.redis_url, socket_timeout=1, socket_connect_timeout=1)
            try:
                return bool(client.ping())
            except redis.RedisError:
                return False
            finally:
                client.close()
        result = self.containers[name].exec(["pg_isready", "-h", "127.0.0.1", "-U", "sala", "-d", "sala"])
        return result.exit_code == 0

    def stop_child(self, name: str, sig: int = signal.SIGTERM, timeout: float = 15) -> int | None:
        container = self.containers.get(name)
        if container is None:
            return super().stop_child(name, sig, timeout)
        wrapped = container.get_wrapped_container()
        if sig == signal.SIGKILL:
            wrapped.kill()
        else:
            wrapped.stop(timeout=int(timeout))
        wrapped.reload()
        return wrapped.attrs["State"]["ExitCode"]

    def stop(self) -> None:
        try:
            super().stop()
        finally:
            for container in self.containers.values():
                container.stop()
            self.containers.clear()
