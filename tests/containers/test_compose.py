"""docker-compose.yml run for real, as an operator would, and broken on purpose.

One deployment for the whole module: `up --build --wait --scale gateway=3`,
then everything through the edge's one published port. The tests run in
file order; each leaves three gateways running for the next. The last one
takes the deployment down with `down -v` and checks nothing is left.
Needs a Docker engine with compose v2 (tools/ensure-docker.sh, run by
`make test`): a failure under CI, a skip elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tests.integration.conftest import PASSWORD, Socket, ws_url
from tests.support import unavailable

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
GATEWAYS = 3
SALA = ("auth", "rooms", "gateway")
# The stated bound for a gateway cut from Redis: its health check (/readyz every
# 5 s, unhealthy after two failures) turns unhealthy, a member who sends is
# closed with 1013, and (once the gateway gap is closed) its users chat again on
# another replica, all within this (docs/operations.md, "When something dies").
MOVED_WITHIN_SECONDS = 30
# A setting passed only through the env file: proof that env_file reaches the services.
ENV_FILE_SETTING = ("SALA_HISTORY_ON_JOIN", "37")


def _docker_ready() -> str | None:
    """Why Docker cannot run the deployment here, or None."""
    if shutil.which("docker") is None:
        return "no docker command (tools/ensure-docker.sh installs the engine)"
    try:
        if subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode != 0:
            return "`docker info` fails: no engine running (tools/ensure-docker.sh starts one)"
        version = subprocess.run(["docker", "compose", "version", "--short"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as error:
        return f"docker does not answer: {error}"
    if version.returncode != 0 or not version.stdout.strip().lstrip("v").startswith("2."):
        return "docker compose v2 is missing (tools/ensure-docker.sh installs it)"
    return None


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


@dataclass
class Deployment:
    project: str
    port: int
    env: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)

    @property
    def edge(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["docker", "compose", "-p", self.project, "-f", str(COMPOSE_FILE), "--env-file", self.env["SALA_ENV_FILE"]]
        return subprocess.run([*argv, *args], env=self.env, check=check, capture_output=True, text=True, timeout=timeout)

    def containers(self, service: str) -> list[str]:
        """Running and stopped containers of a service, by name."""
        out = self.compose("ps", "--all", "--format", "{{.Name}}", service).stdout
        return sorted(out.split())

    def inspect(self, container: str) -> dict:
        out = subprocess.run(["docker", "inspect", container], check=True, capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout)[0]

    def docker(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)

    def probe(self, container: str, path: str) -> tuple[int, str]:
        """GET a path on a Sala container's own port, from inside it."""
        code = (
            "import sys, urllib.request, urllib.error\n"
            "try:\n"
            f"    r = urllib.request.urlopen('http://127.0.0.1:8000{path}', timeout=3)\n"
            "    print(r.status); print(r.read().decode())\n"
            "except urllib.error.HTTPError as e:\n"
            "    print(e.code); print(e.read().decode())\n"
        )
        out = self.docker("exec", container, "python", "-c", code).stdout
        status, _, body = out.partition("\n")
        return int(status or 0), body

    def gateway_holding(self, sockets: int) -> str:
        """The gateway replica with at least this many open client sockets."""
        for name in self.containers("gateway"):
            if self.inspect(name)["State"]["Running"]:
                _, metrics = self.probe(name, "/metrics")
                match = re.search(r"^sala_gateway_connections (\S+)$", metrics, re.M)
                if match and float(match.group(1)) >= sockets:
                    return name
        raise AssertionError(f"no gateway holds {sockets} sockets")

    def health(self, container: str) -> str:
        return self.inspect(container)["State"].get("Health", {}).get("Status", "none")

    def scale_back(self) -> None:
        self.compose("up", "-d", "--wait", "--scale", f"gateway={GATEWAYS}", timeout=300)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    problem = _docker_ready()
    if problem:
        unavailable(problem)
    folder = tmp_path_factory.mktemp("compose")
    env_file = folder / "sala.env"
    password = secrets.token_urlsafe(24)
    env_file.write_text(f"POSTGRES_PASSWORD={password}\n{ENV_FILE_SETTING[0]}={ENV_FILE_SETTING[1]}\n")
    port = _free_port()
    project = f"sala-test-{secrets.token_hex(4)}"
    # Images of its own, removed at the end: a developer's sala:dev is left alone.
    images = {"SALA_IMAGE": f"{project}-sala:test", "SALA_EDGE_IMAGE": f"{project}-edge:test"}
    env = {**os.environ, **images, "CHAT_PORT": str(port), "SALA_ENV_FILE": str(env_file), "POSTGRES_PASSWORD": password}
    ca = _build_ca_certificates()
    if ca:
        env["SALA_BUILD_CA_CERTIFICATES"] = ca
    running = Deployment(project, port, env)
    try:
        started = time.monotonic()
        up = running.compose("up", "-d", "--build", "--wait", "--scale", f"gateway={GATEWAYS}", timeout=1200, check=False)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        print(f"compose up --build --wait: {time.monotonic() - started:.0f} s")
        yield running
    finally:
        running.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300, check=False)
        # Each service that builds leaves an image of its own build, labelled with the project.
        built = running.docker("image", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={project}")
        running.docker("image", "rm", "--force", *images.values(), *built.stdout.split())


# ------------------------------------------------------------------ clients ---


async def _user(api: httpx.AsyncClient) -> tuple[str, dict[str, str]]:
    username = f"user_{uuid.uuid4().hex[:8]}"
    email = f"{username}@example.com"
    response = await api.post("/api/auth/register", json={"email": email, "username": username, "password": PASSWORD})
    assert response.status_code == 201, response.text
    response = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    api.cookies.clear()
    return username, {"Authorization": f"Bearer {response.json()['access_token']}"}


@dataclass
class Member:
    """A member as the web client behaves: it remembers the last id it saw and resumes with `since`."""

    edge: str
    room: str
    headers: dict[str, str]
    socket: Socket | None = None
    seen: list[str] = field(default_factory=list)

    def note(self, frame: dict) -> None:
        if frame.get("type") == "message" and frame["id"] not in self.seen:
            self.seen.append(frame["id"])
        elif frame.get("type") == "message":
            raise AssertionError(f"delivered twice: {frame}")

    async def join(self, within: float = 60) -> dict:
        """Connect (again) through the edge with `since`, retrying as the web client does; the welcome."""
        deadline = time.monotonic() + within
        since = self.seen[-1] if self.seen else None
        while True:
            try:
                ws = await connect(ws_url(self.edge, self.room, since), additional_headers=self.headers, open_timeout=5)
                self.socket = Socket(ws)
                welcome = await self.socket.recv_type("welcome", timeout=5)
                for event in welcome["history"]:
                    if since is None or event["type"] != "message" or event["id"] not in self.seen:
                        self.note(event)
                return welcome
            except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError) as error:
                if time.monotonic() > deadline:
                    raise AssertionError(f"could not rejoin within {within} s: {error!r}") from error
                await asyncio.sleep(0.5)

    async def say(self, text: str) -> str:
        assert self.socket is not None
        event_id = await self.socket.say(text)
        return event_id

    async def read_until(self, wanted: list[str], timeout: float = 20) -> None:
        """Read messages until every wanted id has been seen."""
        assert self.socket is not None
        async with asyncio.timeout(timeout):
            while not set(wanted) <= set(self.seen):
                self.note(await self.socket.recv(timeout))

    async def dropped(self, timeout: float) -> int:
        """Read until the server closes the socket; the close code."""
        assert self.socket is not None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    self.note(await self.socket.recv(timeout))
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else 1006

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()


async def _pair(deployment: Deployment) -> tuple[Member, Member]:
    async with httpx.AsyncClient(base_url=deployment.edge, timeout=10) as api:
        (_, alice), (_, bob) = await _user(api), await _user(api)
        response = await api.post("/api/rooms", json={}, headers=alice)
        assert response.status_code == 201, response.text
        room = response.json()["code"]
    a, b = Member(deployment.edge, room, alice), Member(deployment.edge, room, bob)
    await a.join()
    await b.join()
    return a, b


def _sala_containers(deployment: Deployment) -> list[str]:
    return [name for service in (*SALA, "edge") for name in deployment.containers(service)]


# -------------------------------------------------------------------- tests ---


def test_only_the_edge_publishes_a_port(deployment: Deployment) -> None:
    published = {}
    for service in ("postgres", "redis", *SALA, "edge"):
        for name in deployment.containers(service):
            ports = deployment.inspect(name)["NetworkSettings"]["Ports"] or {}
            published[name] = sorted(p for p, bindings in ports.items() if bindings)
    assert {name: ports for name, ports in published.items() if ports} == {f"{deployment.project}-edge-1": ["8080/tcp"]}
    assert len(deployment.containers("gateway")) == GATEWAYS


def test_images_run_unprivileged_on_a_read_only_root(deployment: Deployment) -> None:
    for name in _sala_containers(deployment):
        config = deployment.inspect(name)
        assert config["HostConfig"]["ReadonlyRootfs"] is True, name
        assert config["HostConfig"]["CapDrop"] == ["ALL"], name
        uid = deployment.docker("exec", name, "id", "-u").stdout.strip()
        assert uid and uid != "0", f"{name} runs as uid {uid!r}"
        written = deployment.docker("exec", name, "touch", "/probe")
        assert written.returncode != 0 and "Read-only file system" in written.stderr, name


def test_the_signing_key_reaches_auth_only(deployment: Deployment) -> None:
    [auth] = deployment.containers("auth")
    assert deployment.docker("exec", auth, "test", "-s", "/keys/signing.pem").returncode == 0
    for name in [*deployment.containers("rooms"), *deployment.containers("gateway"), *deployment.containers("edge")]:
        mounts = {m.get("Name", "") for m in deployment.inspect(name)["Mounts"]}
        assert f"{deployment.project}_jwt-keys" not in mounts, f"{name} mounts the signing key pair"
        found = deployment.docker("exec", name, "sh", "-c", "grep -rl 'PRIVATE KEY' / --include=*.pem 2>/dev/null")
        assert found.stdout.strip() == "", f"{name} can read a private key: {found.stdout}"


def test_settings_come_from_the_env_file(deployment: Deployment) -> None:
    name, value = ENV_FILE_SETTING
    for service in SALA:
        for container in deployment.containers(service):
            env = dict(e.split("=", 1) for e in deployment.inspect(container)["Config"]["Env"])
            assert env.get(name) == value, f"{container} did not get {name} from the env file"
            if service != "auth":
                assert env.get("POSTGRES_PASSWORD", "") == "", f"{container} sees the Postgres password"


async def test_two_users_chat_through_the_edge(deployment: Deployment) -> None:
    alice, bob = await _pair(deployment)
    try:
        sent = [await alice.say(f"hello {i}") for i in range(3)]
        sent.append(await bob.say("hi alice"))
        await bob.read_until(sent[:3])
        await alice.read_until(sent[3:])
        assert bob.seen == sent[:3] and alice.seen == sent
    finally:
        await alice.close()
        await bob.close()


async def test_a_killed_gateway_loses_nothing_and_compose_up_brings_it_back(deployment: Deployment) -> None:
    alice, bob = await _pair(deployment)
    try:
        victim = deployment.gateway_holding(2)
        sent = [await alice.say(f"before {i}") for i in range(3)]
        assert deployment.docker("kill", victim).returncode == 0
        # The last acked messages may not have reached bob before the kill: `since` brings them.
        for member in (alice, bob):
            await member.dropped(timeout=30)
        await alice.join()
        await bob.join()
        sent += [await alice.say(f"after {i}") for i in range(2)]
        await bob.read_until(sent)
        assert bob.seen == sent, "bob's messages are not every acked one, once, in order"
    finally:
        await alice.close()
        await bob.close()
    # `docker kill` is a manual stop to Docker under every restart policy: the
    # container stays down until compose is asked again.
    state = deployment.inspect(victim)["State"]
    assert state["Status"] == "exited", state
    deployment.scale_back()
    assert deployment.inspect(victim)["State"]["Running"]


def test_a_crashed_gateway_is_restarted(deployment: Deployment) -> None:
    victim = deployment.containers("gateway")[0]
    before = deployment.inspect(victim)["RestartCount"]
    # The service process is the init's child; SIGKILL it as the kernel's OOM killer would.
    killed = deployment.docker("exec", victim, "sh", "-c", "kill -9 $(cat /proc/1/task/1/children)")
    assert killed.returncode == 0, killed.stderr
    deadline = time.monotonic() + 90
    while True:
        state = deployment.inspect(victim)
        if state["RestartCount"] > before and deployment.health(victim) == "healthy":
            break
        assert time.monotonic() < deadline, f"not restarted: {state['State']}"
        time.sleep(1)


async def test_chat_resumes_after_redis_restarts_and_no_sala_container_restarts(deployment: Deployment) -> None:
    started = {name: deployment.inspect(name)["State"]["StartedAt"] for name in _sala_containers(deployment)}
    alice, bob = await _pair(deployment)
    try:
        sent = [await alice.say("before the restart")]
        deployment.compose("restart", "redis", timeout=120)
        deadline = time.monotonic() + 60
        while True:
            try:
                sent.append(await alice.say("after the restart"))
                break
            except (ConnectionClosed, AssertionError, TimeoutError):
                assert time.monotonic() < deadline, "no message acked within 60 s of Redis restarting"
                if alice.socket is not None and alice.socket.ws.close_code is not None:
                    await alice.join()
                await asyncio.sleep(1)
        try:
            await bob.read_until(sent, timeout=20)
        except (ConnectionClosed, TimeoutError):
            await bob.join()
            await bob.read_until(sent, timeout=20)
        assert bob.seen == sent
    finally:
        await alice.close()
        await bob.close()
    after = {name: deployment.inspect(name)["State"]["StartedAt"] for name in _sala_containers(deployment)}
    assert after == started, "a Sala container was restarted"


async def test_a_gateway_cut_from_redis_turns_unready_and_closes_a_sender(deployment: Deployment) -> None:
    alice, bob = await _pair(deployment)
    network = f"{deployment.project}_data"
    victim = deployment.gateway_holding(2)
    try:
        await alice.say("before the cut")
        cut = time.monotonic()
        assert deployment.docker("network", "disconnect", network, victim).returncode == 0
        await alice.socket.send({"type": "message", "text": "during the cut", "ref": "cut"})
        assert await alice.dropped(MOVED_WITHIN_SECONDS) == 1013, "a message that cannot be stored must close with 1013"
        while deployment.health(victim) != "unhealthy":
            assert time.monotonic() - cut < MOVED_WITHIN_SECONDS, "the health check still passes"
            await asyncio.sleep(1)
        status, body = deployment.probe(victim, "/readyz")
        assert status == 503 and json.loads(body)["checks"]["redis"] is False, (status, body)
        print(f"gateway unhealthy {time.monotonic() - cut:.1f} s after the cut")
    finally:
        await alice.close()
        await bob.close()
        deployment.docker("network", "connect", network, victim)
    deadline = time.monotonic() + 60
    while deployment.health(victim) != "healthy":
        assert time.monotonic() < deadline, "the gateway did not become ready again after the network came back"
        await asyncio.sleep(1)


async def test_users_of_a_gateway_cut_from_redis_move_to_another(deployment: Deployment) -> None:
    # The edge leaves a replica out for 10 s after it refused a handshake (the previous test's cut): until it
    # takes it back, two members of a room may land on two replicas. Pair them up again until they meet.
    deadline = time.monotonic() + 30
    while True:
        alice, bob = await _pair(deployment)
        try:
            victim = deployment.gateway_holding(2)
            break
        except AssertionError:
            await alice.close()
            await bob.close()
            assert time.monotonic() < deadline, "two members of one room never met on one gateway"
            await asyncio.sleep(2)
    network = f"{deployment.project}_data"
    try:
        cut = time.monotonic()
        assert deployment.docker("network", "disconnect", network, victim).returncode == 0
        for member in (alice, bob):
            await member.dropped(MOVED_WITHIN_SECONDS)
            await member.join(within=MOVED_WITHIN_SECONDS - (time.monotonic() - cut))
        sent = [await alice.say("on another gateway")]
        await bob.read_until(sent)
        assert time.monotonic() - cut < MOVED_WITHIN_SECONDS
        assert deployment.gateway_holding(2) != victim
    finally:
        await alice.close()
        await bob.close()
        deployment.docker("network", "connect", network, victim)
        deadline = time.monotonic() + 60
        while deployment.health(victim) != "healthy" and time.monotonic() < deadline:
            await asyncio.sleep(1)


def test_down_v_leaves_nothing(deployment: Deployment) -> None:
    deployment.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)
    label = f"label=com.docker.compose.project={deployment.project}"
    for kind in ("container", "volume", "network"):
        listed = deployment.docker(kind, "ls", *(["--all"] if kind == "container" else []), "--quiet", "--filter", label)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [], f"{kind}s left: {listed.stdout}"

