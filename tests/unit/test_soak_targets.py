"""The soak's targets without Docker: settings per target, the injector's calls, and the compose target's commands."""

import asyncio
import json
import random
import subprocess
from pathlib import Path

import pytest

from tools.soak import compose
from tools.soak.compose import ComposeTarget, Docker, Project, docker_problem, env_file_text, exec_argv, free_subnet
from tools.soak.faults import Injector
from tools.soak.history import History
from tools.soak.settings import FAULT_KINDS, PRODUCT_ENV, SoakSettings

PROJECT = "sala-soak-test"
GATEWAYS = [f"{PROJECT}-gateway-{n}" for n in (1, 2, 3)]
REDIS, ROOMS = f"{PROJECT}-redis-1", f"{PROJECT}-rooms-1"


# ------------------------------------------------------------------ settings ---


def test_compose_soaks_three_gateways_unless_told_otherwise(monkeypatch):
    assert SoakSettings().gateways == 2
    assert SoakSettings(target="compose").gateways == 3
    assert SoakSettings(target="compose", gateways=4).gateways == 4
    monkeypatch.setenv("SALA_SOAK_GATEWAYS", "2")
    assert SoakSettings(target="compose").gateways == 2
    monkeypatch.setenv("SALA_SOAK_TARGET", "compose")
    monkeypatch.delenv("SALA_SOAK_GATEWAYS")
    assert SoakSettings().gateways == 3


def test_an_unknown_target_is_refused():
    with pytest.raises(ValueError, match="target"):
        SoakSettings(target="kubernetes")


# ------------------------------------------------------------------ injector ---


class RecordingTarget:
    """Records each fault call; ``fails`` makes one kind raise."""

    edge_url = "http://127.0.0.1:1"

    def __init__(self, fails: str | None = None) -> None:
        self.calls: list[tuple] = []
        self.incidents: list[str] = []
        self.fails = fails

    def gateway_names(self) -> list[str]:
        return ["gw-a", "gw-b", "gw-c"]

    async def read_streams(self, codes):
        return {}

    def _record(self, kind: str, *args) -> None:
        self.calls.append((kind, *args))
        if kind == self.fails:
            raise RuntimeError(f"{kind} broke")

    async def gateway_kill(self, gateway):
        self._record("gateway_kill", gateway)

    async def gateway_freeze(self, gateway, seconds):
        self._record("gateway_freeze", gateway, seconds)

    async def gateway_cut(self, gateway, seconds):
        self._record("gateway_cut", gateway, seconds)

    async def redis_restart(self):
        self._record("redis_restart")

    async def redis_kill(self):
        self._record("redis_kill")

    async def auth_restart(self):
        self._record("auth_restart")

    async def rooms_restart(self):
        self._record("rooms_restart")


async def test_each_kind_reaches_its_target_method_and_is_recorded_as_a_window():
    settings = SoakSettings(freeze_min_seconds=8, freeze_max_seconds=15, cut_min_seconds=9, cut_max_seconds=12)
    target, history = RecordingTarget(), History()
    injector = Injector(target, settings, history, random.Random(5))
    for kind in FAULT_KINDS:
        await injector.inject(kind)
    calls = {call[0]: call[1:] for call in target.calls}
    assert [call[0] for call in target.calls] == list(FAULT_KINDS)
    assert calls["gateway_kill"][0] in target.gateway_names()
    gateway, seconds = calls["gateway_freeze"]
    assert gateway in target.gateway_names() and 8 <= seconds <= 15
    gateway, seconds = calls["gateway_cut"]
    assert gateway in target.gateway_names() and 9 <= seconds <= 12
    assert calls["redis_kill"] == calls["auth_restart"] == ()
    assert [fault.kind for fault in history.faults] == list(FAULT_KINDS)
    assert [fault.target for fault in history.faults][3:] == ["redis", "redis", "auth", "rooms"]
    assert all(fault.end >= fault.start > 0 for fault in history.faults)


async def test_a_fault_that_fails_is_still_recorded_with_its_end():
    history = History()
    injector = Injector(RecordingTarget(fails="redis_kill"), SoakSettings(), history, random.Random(1))
    with pytest.raises(RuntimeError, match="redis_kill broke"):
        await injector.inject("redis_kill")
    [fault] = history.faults
    assert (fault.kind, fault.target) == ("redis_kill", "redis") and fault.end >= fault.start


async def test_the_injector_spreads_its_gateway_faults_over_every_gateway():
    target = RecordingTarget()
    injector = Injector(target, SoakSettings(freeze_min_seconds=0, freeze_max_seconds=0), History(), random.Random(2))
    for _ in range(30):
        await injector.inject("gateway_kill")
    assert {call[1] for call in target.calls} == set(target.gateway_names())


# ------------------------------------------------------------ compose: pure ---


def test_a_health_check_becomes_the_argv_docker_exec_runs():
    assert exec_argv(["CMD", "python", "-c", "x"]) == ["python", "-c", "x"]
    assert exec_argv(["CMD-SHELL", "redis-cli ping | grep -q PONG"]) == ["sh", "-c", "redis-cli ping | grep -q PONG"]
    with pytest.raises(ValueError):
        exec_argv(["NONE"])


def test_the_front_subnet_is_one_no_host_network_overlaps():
    assert free_subnet([]) == compose.SUBNET_CANDIDATES[0]
    assert free_subnet(["172.17.0.0/16", "172.30.120.0/24", "fd00::/64"]) == "172.30.121.0/24"
    assert free_subnet(["172.30.120.0/23"]) == "172.30.122.0/24"
    with pytest.raises(compose.DockerError):
        free_subnet(["172.30.0.0/16"])


def test_the_env_file_holds_the_password_and_every_product_setting_of_the_soak():
    lines = env_file_text("s3cret", PRODUCT_ENV).splitlines()
    assert lines[0] == "POSTGRES_PASSWORD=s3cret"
    assert {line.split("=", 1)[0]: line.split("=", 1)[1] for line in lines[1:]} == PRODUCT_ENV


def test_a_deployment_is_a_project_of_its_own_and_creates_nothing_before_up(tmp_path: Path):
    first, second = compose.ComposeDeployment(tmp_path, 3), compose.ComposeDeployment(tmp_path, 3)
    assert first.name.startswith("sala-soak-") and first.name != second.name
    assert set(first.images.values()) == {f"{first.name}-sala:soak", f"{first.name}-edge:soak"}
    assert first.docker.env["CHAT_PORT"] == str(first.port) and first.edge_url.endswith(f":{first.port}")
    assert (tmp_path / "sala.env").stat().st_mode & 0o077 == 0
    fake = FakeDocker()
    first.docker = first.project.docker = fake
    first.down(logs=tmp_path / "logs")
    assert fake.commands == [] and not (tmp_path / "logs").exists()


# ------------------------------------------------------------ compose: fake ---


class FakeDocker(Docker):
    """Answers the commands the compose target sends, and records them."""

    def __init__(self, probes: list[int] | None = None) -> None:
        super().__init__({})
        self.commands: list[tuple[str, ...]] = []
        self.probes = list(probes or [])  # exit codes of successive health probes; then 0

    def run(self, *args: str, timeout: float = 0, check: bool = True) -> subprocess.CompletedProcess[str]:
        self.commands.append(args)
        out, code = "", 0
        if args[0] == "compose":
            sub = args[7:]
            if sub[:1] == ("ps",):
                out = "\n".join({"gateway": GATEWAYS[::-1], "redis": [REDIS], "rooms": [ROOMS]}.get(sub[-1], [f"{PROJECT}-{sub[-1]}-1"]))
            elif sub[:2] == ("exec", "-T"):
                codes = sub[sub.index("-c") + 2:]
                out = json.dumps({code: [["1-0", {"e": json.dumps({"type": "message", "text": code})}]] for code in codes})
        elif args[:3] == ("inspect", "--format", "{{json .Config.Healthcheck.Test}}"):
            out = json.dumps(["CMD-SHELL", "probe"])
        elif args[:3] == ("inspect", "--format", "{{json .NetworkSettings.Networks}}"):
            out = json.dumps({f"{PROJECT}_data": {"Aliases": [args[3], "gateway"]}, f"{PROJECT}_front": {"Aliases": ["x"]}})
        elif args[0] == "exec":
            code = self.probes.pop(0) if self.probes else 0
        return subprocess.CompletedProcess(["docker", *args], code, out, "")

    def sent(self) -> list[tuple[str, ...]]:
        """The commands sent, health-check inspections left out."""
        return [c for c in self.commands if c[:3] != ("inspect", "--format", "{{json .Config.Healthcheck.Test}}")]


def compose_target(probes: list[int] | None = None) -> tuple[ComposeTarget, FakeDocker]:
    docker = FakeDocker(probes)
    target = ComposeTarget(Project(PROJECT, Path("sala.env"), docker), "http://127.0.0.1:9")
    docker.commands.clear()  # finding the containers
    return target, docker


def test_the_compose_target_finds_its_containers_and_speaks_to_its_own_project():
    docker = FakeDocker()
    target = ComposeTarget(Project(PROJECT, Path("sala.env"), docker), "http://127.0.0.1:9")
    assert target.gateway_names() == GATEWAYS
    assert target.singles == {"redis": REDIS, "auth": f"{PROJECT}-auth-1", "rooms": ROOMS}
    prefix = ("compose", "-p", PROJECT, "-f", str(compose.COMPOSE_FILE), "--env-file", "sala.env")
    assert [c[:7] for c in docker.commands] == [prefix] * 4


async def test_a_killed_gateway_is_started_again_once_dead_and_the_fault_lasts_until_it_is_healthy():
    target, docker = compose_target(probes=[1, 1])
    await target.gateway_kill(GATEWAYS[1])
    gateway = GATEWAYS[1]
    assert docker.sent() == [
        ("kill", gateway), ("wait", gateway), ("start", gateway),
        ("exec", gateway, "sh", "-c", "probe"), ("exec", gateway, "sh", "-c", "probe"), ("exec", gateway, "sh", "-c", "probe"),
    ]


async def test_a_frozen_gateway_is_unpaused_even_when_the_soak_is_interrupted():
    target, docker = compose_target()
    await target.gateway_freeze(GATEWAYS[0], 0.01)
    task = asyncio.create_task(target.gateway_freeze(GATEWAYS[2], 60))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert docker.sent() == [
        ("pause", GATEWAYS[0]), ("unpause", GATEWAYS[0]), ("pause", GATEWAYS[2]), ("unpause", GATEWAYS[2]),
    ]


async def test_a_cut_gateway_leaves_the_redis_network_and_comes_back_with_its_aliases():
    target, docker = compose_target()
    gateway = GATEWAYS[0]
    await target.gateway_cut(gateway, 0.01)
    network = f"{PROJECT}_data"
    assert docker.sent() == [
        ("inspect", "--format", "{{json .NetworkSettings.Networks}}", gateway),
        ("network", "disconnect", network, gateway),
        ("network", "connect", "--alias", gateway, "--alias", "gateway", network, gateway),
    ]


async def test_redis_auth_and_rooms_restart_through_compose_and_redis_is_killed_with_docker():
    target, docker = compose_target()
    await target.redis_restart()
    await target.auth_restart()
    await target.rooms_restart()
    await target.redis_kill()
    commands = docker.sent()
    restarts = [c[7:] for c in commands if c[0] == "compose"]
    assert restarts == [("restart", "--no-deps", "redis"), ("restart", "--no-deps", "auth"), ("restart", "--no-deps", "rooms")]
    assert [c for c in commands if c[0] in ("kill", "wait", "start")] == [("kill", REDIS), ("wait", REDIS), ("start", REDIS)]
    probed = [c[1] for c in commands if c[0] == "exec"]
    assert probed == [REDIS, f"{PROJECT}-auth-1", ROOMS, REDIS]


async def test_streams_are_read_inside_the_rooms_container_and_decoded():
    target, docker = compose_target()
    streams = await target.read_streams(["ABCDEF", "GHJKLM"])
    assert streams == {"ABCDEF": [("1-0", {"type": "message", "text": "ABCDEF"})],
                       "GHJKLM": [("1-0", {"type": "message", "text": "GHJKLM"})]}
    command = docker.commands[-1]
    assert command[7:11] == ("exec", "-T", "rooms", "python") and command[-2:] == ("ABCDEF", "GHJKLM")


def test_docker_without_an_engine_or_compose_v2_is_named():
    class Answers(FakeDocker):
        def __init__(self, info: int, version: str) -> None:
            super().__init__()
            self.info, self.version = info, version

        def run(self, *args, timeout=0, check=True):
            if args[0] == "info":
                return subprocess.CompletedProcess(args, self.info, "", "")
            return subprocess.CompletedProcess(args, 0, self.version, "")

    assert "docker info" in docker_problem(Answers(1, "2.26.1"))
    assert "compose v2" in docker_problem(Answers(0, "1.29.2"))
    assert docker_problem(Answers(0, "v2.26.1")) is None


def test_a_git_ref_is_for_compose_and_snapshots_the_commit(tmp_path: Path):
    with pytest.raises(ValueError, match="git ref"):
        SoakSettings(ref="HEAD")
    assert SoakSettings(target="compose", ref="HEAD").ref == "HEAD"
    deployment = compose.ComposeDeployment(tmp_path, 3, ref="HEAD")
    compose_file = deployment.project.compose_file
    assert compose_file == tmp_path / "src" / "docker-compose.yml"
    assert compose_file.read_text() == subprocess.run(
        ["git", "-C", str(compose.REPO), "show", "HEAD:docker-compose.yml"], capture_output=True, text=True, check=True
    ).stdout
    assert (tmp_path / "src" / "deploy" / "docker" / "Dockerfile").is_file()
    with pytest.raises(compose.DockerError, match="git archive"):
        compose.ComposeDeployment(tmp_path / "other", 3, ref="no-such-ref-anywhere")


def test_a_deployment_that_could_not_be_removed_is_named_in_the_log(tmp_path: Path, caplog):
    class DownFails(FakeDocker):
        def run(self, *args, timeout=0, check=True):
            self.commands.append(args)
            failed = args[0] == "compose" and args[7] == "down"
            return subprocess.CompletedProcess(args, 1 if failed else 0, "", "Cannot connect to the Docker daemon")

    deployment = compose.ComposeDeployment(tmp_path, 3)
    deployment.docker = deployment.project.docker = DownFails()
    deployment.created = True
    deployment.down(logs=tmp_path / "logs")
    assert sorted(path.name for path in (tmp_path / "logs").iterdir()) == sorted(f"{s}.log" for s in compose.SERVICES)
    assert f"compose project {deployment.name} was not removed" in caplog.text
    assert "Cannot connect to the Docker daemon" in caplog.text
    assert deployment.docker.commands[-1][:3] == ("image", "rm", "--force")
