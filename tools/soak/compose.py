"""The soak's compose target: docker-compose.yml under a project of its own, faulted with Docker.

``ComposeDeployment`` brings the project up as an operator would
(``up --build --wait --scale gateway=N``), built from the working tree or,
given a git ref, from a snapshot of that commit (``git archive``: the
compose file, Dockerfiles and sources all of it), with everything of its own: a
project name (``sala-soak-<hex>``), an env file (a fresh Postgres password and
the soak's ``PRODUCT_ENV``), image tags, a free edge port and a free subnet for
the ``front`` network, so it never touches another deployment on the host. It
takes it all down at the end (``down -v`` and its images), after saving each
service's log when asked.

``ComposeTarget`` faults it:

- ``gateway_kill``: ``docker kill`` of a gateway container (a manual stop, which
  no restart policy undoes), then ``docker start`` once it is dead;
- ``gateway_freeze``: ``docker pause``, then ``docker unpause``;
- ``gateway_cut``: ``docker network disconnect`` of the gateway from the network
  Redis is on (``data``), then ``connect`` again with the same aliases;
- ``redis_restart``, ``auth_restart``, ``rooms_restart``: ``docker compose restart``;
- ``redis_kill``: ``docker kill`` of Redis, then ``docker start``; its data is on
  its volume (append-only file).

A kill or a restart lasts until the container passes its own health check
(the compose file's ``healthcheck`` command, run with ``docker exec``).

Redis publishes no port and sits on an internal network: the checker's
``XRANGE`` runs inside the rooms container (``docker compose exec rooms python``),
so the soak reads the streams over the services' own network and the
deployment under test is exactly the one operators run.
"""

import asyncio
import io
import ipaddress
import json
import logging
import os
import secrets
import socket
import ssl
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tools.soak.faults import wait_until
from tools.soak.history import decode_stream
from tools.soak.settings import PRODUCT_ENV

log = logging.getLogger("soak.compose")

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
UP_TIMEOUT_SECONDS = 1200.0  # a first build of the images included
DOWN_TIMEOUT_SECONDS = 300.0
COMMAND_TIMEOUT_SECONDS = 120.0  # one docker command; a clean stop takes at most the 30 s grace period
PROBE_TIMEOUT_SECONDS = 10.0
# Candidates for the ``front`` network's subnet (SALA_FRONT_SUBNET): the first one
# no network of this host overlaps.
SUBNET_CANDIDATES = tuple(f"172.30.{third}.0/24" for third in range(120, 256))
SERVICES = ("postgres", "redis", "keygen", "auth", "rooms", "gateway", "edge")
DATA_NETWORK = "data"  # the compose network Redis is on
READ_STREAMS = """\
import json, os, sys
import redis
from services.common.redis_schema import room_events_key
client = redis.Redis.from_url(os.environ["SALA_REDIS_URL"], decode_responses=True)
json.dump({code: client.xrange(room_events_key(code)) for code in sys.argv[1:]}, sys.stdout)
"""


class DockerError(RuntimeError):
    pass


class Docker:
    """Runs docker commands: the one place the compose target touches Docker (the unit tests replace it)."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def run(self, *args: str, timeout: float = COMMAND_TIMEOUT_SECONDS, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise DockerError(f"docker {' '.join(args[:4])} ...: exit {result.returncode}: {result.stderr.strip()[-2000:]}")
        return result


def docker_problem(docker: Docker) -> str | None:
    """Why Docker cannot run the deployment here, or None."""
    try:
        if docker.run("info", timeout=30, check=False).returncode != 0:
            return "`docker info` fails: no engine runs (`make docker` starts one)"
        version = docker.run("compose", "version", "--short", timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker does not answer: {error}"
    if version.returncode != 0 or not version.stdout.strip().lstrip("v").startswith("2."):
        return "docker compose v2 is missing (`make docker` installs it)"
    return None


def exec_argv(test: list[str]) -> list[str]:
    """A compose healthcheck ``test`` as the argv to run it with ``docker exec``."""
    if len(test) >= 2 and test[0] == "CMD":
        return test[1:]
    if len(test) == 2 and test[0] == "CMD-SHELL":
        return ["sh", "-c", test[1]]
    raise ValueError(f"not a runnable health check: {test}")


def free_subnet(used: list[str]) -> str:
    """The first candidate subnet that overlaps none of the host's networks."""
    taken = [ipaddress.ip_network(subnet, strict=False) for subnet in used]
    for candidate in SUBNET_CANDIDATES:
        network = ipaddress.ip_network(candidate)
        if not any(network.overlaps(other) for other in taken if other.version == network.version):
            return candidate
    raise DockerError("no free subnet for the front network")


def host_subnets(docker: Docker) -> list[str]:
    ids = docker.run("network", "ls", "--quiet").stdout.split()
    if not ids:
        return []
    out = docker.run("network", "inspect", "--format", "{{range .IPAM.Config}}{{.Subnet}} {{end}}", *ids).stdout
    return out.split()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _build_ca_certificates() -> str | None:
    """Extra CA certificates for the image build: the ones given, else what this machine trusts."""
    given = os.environ.get("SALA_BUILD_CA_CERTIFICATES")
    if given:
        return given
    cafile = os.environ.get("SSL_CERT_FILE") or ssl.get_default_verify_paths().cafile
    return cafile if cafile and Path(cafile).is_file() else None


def env_file_text(password: str, product_env: dict[str, str]) -> str:
    """The deployment's env file: read for docker-compose.yml's ``${...}`` and by the services (env_file)."""
    lines = [f"POSTGRES_PASSWORD={password}", *(f"{name}={value}" for name, value in product_env.items())]
    return "\n".join(lines) + "\n"


@dataclass
class Project:
    """One compose project: ``docker compose -p NAME -f docker-compose.yml --env-file FILE``."""

    name: str
    env_file: Path
    docker: Docker
    compose_file: Path = COMPOSE_FILE

    def compose(self, *args: str, timeout: float = COMMAND_TIMEOUT_SECONDS, check: bool = True) -> subprocess.CompletedProcess[str]:
        prefix = ("compose", "-p", self.name, "-f", str(self.compose_file), "--env-file", str(self.env_file))
        return self.docker.run(*prefix, *args, timeout=timeout, check=check)

    def containers(self, service: str) -> list[str]:
        """The service's containers, running or not, by name."""
        return sorted(self.compose("ps", "--all", "--format", "{{.Name}}", service).stdout.split())

    def network(self, name: str) -> str:
        return f"{self.name}_{name}"


class ComposeTarget:
    def __init__(self, project: Project, edge_url: str) -> None:
        self.project = project
        self.docker = project.docker
        self.edge_url = edge_url
        self.incidents: list[str] = []
        self.gateways = project.containers("gateway")
        self.singles = {service: project.containers(service)[0] for service in ("redis", "auth", "rooms")}
        self._health_tests: dict[str, list[str]] = {}

    def gateway_names(self) -> list[str]:
        return list(self.gateways)

    async def read_streams(self, codes: list[str]) -> dict[str, list[tuple[str, dict]]]:
        result = await asyncio.to_thread(self.project.compose, "exec", "-T", "rooms", "python", "-c", READ_STREAMS, *codes)
        return {code: decode_stream(entries) for code, entries in json.loads(result.stdout).items()}

    async def gateway_kill(self, gateway: str) -> None:
        await self._killed_and_started(gateway)

    async def gateway_freeze(self, gateway: str, seconds: float) -> None:
        await self._docker("pause", gateway)
        try:
            await asyncio.sleep(seconds)
        finally:
            await self._docker("unpause", gateway)

    async def gateway_cut(self, gateway: str, seconds: float) -> None:
        network = self.project.network(DATA_NETWORK)
        aliases = await asyncio.to_thread(self._aliases, gateway, network)
        await self._docker("network", "disconnect", network, gateway)
        try:
            await asyncio.sleep(seconds)
        finally:
            alias_args = [arg for alias in aliases for arg in ("--alias", alias)]
            await self._docker("network", "connect", *alias_args, network, gateway)

    async def redis_restart(self) -> None:
        await self._restarted("redis")

    async def redis_kill(self) -> None:
        await self._killed_and_started(self.singles["redis"])

    async def auth_restart(self) -> None:
        await self._restarted("auth")

    async def rooms_restart(self) -> None:
        await self._restarted("rooms")

    async def _docker(self, *args: str) -> None:
        await asyncio.to_thread(self.docker.run, *args)

    async def _killed_and_started(self, container: str) -> None:
        """SIGKILL; once it is dead (a start before would do nothing), start the same container again."""
        await self._docker("kill", container)
        await self._docker("wait", container)
        await self._docker("start", container)
        await wait_until(lambda: self.healthy(container), container)

    async def _restarted(self, service: str) -> None:
        await asyncio.to_thread(self.project.compose, "restart", "--no-deps", service)
        container = self.singles[service]
        await wait_until(lambda: self.healthy(container), container)

    def _aliases(self, container: str, network: str) -> list[str]:
        networks = json.loads(self.docker.run("inspect", "--format", "{{json .NetworkSettings.Networks}}", container).stdout)
        return list(networks.get(network, {}).get("Aliases") or [])

    def healthy(self, container: str) -> bool:
        """Whether the container passes its health check now (run at once, not at the next interval)."""
        if container not in self._health_tests:
            test = self.docker.run("inspect", "--format", "{{json .Config.Healthcheck.Test}}", container).stdout
            self._health_tests[container] = exec_argv(json.loads(test))
        argv = self._health_tests[container]
        try:
            result = self.docker.run("exec", container, *argv, timeout=PROBE_TIMEOUT_SECONDS, check=False)
        except subprocess.TimeoutExpired:
            return False
        return result.returncode == 0


def snapshot(ref: str, folder: Path) -> Path:
    """The repository's files at a git ref, written into ``folder``; its compose file."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref], capture_output=True, timeout=120)
    if archive.returncode != 0:
        raise DockerError(f"git archive {ref}: {archive.stderr.decode(errors='replace').strip()}")
    folder.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(folder, filter="data")
    return folder / COMPOSE_FILE.name


class ComposeDeployment:
    """docker-compose.yml under a project of its own, in a folder of its own (its env file, a snapshot)."""

    def __init__(self, folder: Path, gateways: int, ref: str | None = None) -> None:
        compose_file = snapshot(ref, folder / "src") if ref else COMPOSE_FILE
        self.gateways = gateways
        self.port = _free_port()
        self.name = f"sala-soak-{secrets.token_hex(4)}"
        self.images = {"SALA_IMAGE": f"{self.name}-sala:soak", "SALA_EDGE_IMAGE": f"{self.name}-edge:soak"}
        password = secrets.token_urlsafe(24)
        env_file = folder / "sala.env"
        env_file.write_text(env_file_text(password, PRODUCT_ENV))
        env_file.chmod(0o600)
        env = {**os.environ, **self.images, "CHAT_PORT": str(self.port), "SALA_ENV_FILE": str(env_file),
               "POSTGRES_PASSWORD": password}
        ca = _build_ca_certificates()
        if ca:
            env["SALA_BUILD_CA_CERTIFICATES"] = ca
        self.docker = Docker(env)
        self.project = Project(self.name, env_file, self.docker, compose_file)
        self.created = False  # compose was asked to create something: down has work to do

    @property
    def edge_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> ComposeTarget:
        problem = docker_problem(self.docker)
        if problem:
            raise DockerError(problem)
        subnet = free_subnet(host_subnets(self.docker))
        self.docker.env["SALA_FRONT_SUBNET"] = subnet
        self.created = True
        log.info("compose project %s: building and starting %d gateways (front %s, edge %s)",
                 self.name, self.gateways, subnet, self.edge_url)
        self.project.compose("up", "--detach", "--build", "--wait", "--scale", f"gateway={self.gateways}",
                             timeout=UP_TIMEOUT_SECONDS)
        return ComposeTarget(self.project, self.edge_url)

    def down(self, logs: Path | None) -> None:
        """Save the logs if asked, then remove the project with its volumes, networks and images."""
        if not self.created:
            return
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            for service in SERVICES:
                out = self.project.compose("logs", "--no-color", "--timestamps", service, check=False)
                (logs / f"{service}.log").write_text(out.stdout + out.stderr)
        down = self.project.compose("down", "--volumes", "--remove-orphans", "--timeout", "10",
                                    timeout=DOWN_TIMEOUT_SECONDS, check=False)
        if down.returncode != 0:
            log.warning("compose project %s was not removed (`docker compose -p %s down -v` removes it): %s",
                        self.name, self.name, down.stderr.strip()[-2000:])
        # Each service that builds leaves an image of its own build, labelled with the project.
        built = self.docker.run("image", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={self.name}",
                                check=False).stdout.split()
        self.docker.run("image", "rm", "--force", *self.images.values(), *built, check=False)
