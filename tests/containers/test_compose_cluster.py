"""deploy/compose.cluster.yml run for real: the stack on a Redis Cluster of six nodes.

One deployment for the module: `up --build --wait` with docker-compose.yml and
the override, on subnets of its own (so a stack already up on the default ones
is left alone), then everything through the edge. The tests run in file
order; the last takes it down with `down -v` and checks nothing is left.
70 to 90 s with the image layers cached (tests/containers/test_compose.py
builds them first). Needs a Docker engine with compose v2: a failure under
CI, a skip elsewhere.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.containers.test_compose import (
    COMPOSE_FILE,
    Deployment,
    _build_ca_certificates,
    _docker_ready,
    _free_port,
    _pair,
)
from tests.support import unavailable

CLUSTER_FILE = COMPOSE_FILE.parent / "deploy" / "compose.cluster.yml"
# Not the defaults, so this runs beside a stack on them; also proves the prefix moves the nodes.
FRONT_SUBNET = "172.30.91.0/24"
DATA_PREFIX = "172.30.92"
NODES = [f"redis-{index}" for index in range(1, 7)]


class ClusterDeployment(Deployment):
    def compose(self, *args: str, timeout: float = 300, check: bool = True) -> subprocess.CompletedProcess[str]:
        files = ["-f", str(COMPOSE_FILE), "-f", str(CLUSTER_FILE)]
        argv = ["docker", "compose", "-p", self.project, *files, "--env-file", self.env["SALA_ENV_FILE"]]
        return subprocess.run(
            [*argv, *args], env=self.env, check=check, capture_output=True, text=True, timeout=timeout
        )

    def redis_cli(self, *args: str) -> str:
        """redis-cli on the first node, following redirects (-c) to the node that owns a key."""
        return self.compose("exec", "-T", "redis-1", "redis-cli", "-c", *args).stdout

    def up(self) -> None:
        started = time.monotonic()
        up = self.compose("up", "-d", "--build", "--wait", timeout=1200, check=False)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        print(f"compose up --wait with the cluster: {time.monotonic() - started:.0f} s")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterDeployment]:
    problem = _docker_ready()
    if problem:
        unavailable(problem)
    folder = tmp_path_factory.mktemp("compose-cluster")
    env_file = folder / "sala.env"
    password = secrets.token_urlsafe(24)
    env_file.write_text(f"POSTGRES_PASSWORD={password}\n")
    port = _free_port()
    project = f"sala-cluster-test-{secrets.token_hex(4)}"
    images = {"SALA_IMAGE": f"{project}-sala:test", "SALA_EDGE_IMAGE": f"{project}-edge:test"}
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith("COMPOSE_")},
        **images,
        "CHAT_PORT": str(port),
        "SALA_ENV_FILE": str(env_file),
        "POSTGRES_PASSWORD": password,
        "SALA_FRONT_SUBNET": FRONT_SUBNET,
        "SALA_DATA_SUBNET_PREFIX": DATA_PREFIX,
    }
    ca = _build_ca_certificates()
    if ca:
        env["SALA_BUILD_CA_CERTIFICATES"] = ca
    running = ClusterDeployment(project, port, env)
    try:
        running.up()
        yield running
    finally:
        running.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300, check=False)
        built = running.docker("image", "ls", "--quiet", "--filter", f"label=com.docker.compose.project={project}")
        running.docker("image", "rm", "--force", *images.values(), *built.stdout.split())


async def _chat_then_logout(cluster: ClusterDeployment) -> str:
    """Two members chat through the edge; the second logs out and its socket is closed with 4001. The room code."""
    alice, bob = await _pair(cluster)
    try:
        sent = [await alice.say(f"hello {i}") for i in range(3)]
        await bob.read_until(sent)
        assert bob.seen == sent
        # The room's keys are in the cluster, on the node that owns the room's slot.
        assert cluster.redis_cli("exists", f"sala:room:{{{bob.room}}}").strip() == "1"
        async with httpx.AsyncClient(base_url=cluster.edge, timeout=10) as api:
            response = await api.post("/api/auth/logout", headers=bob.headers)
            assert response.status_code == 204, response.text
        # The revocation travels over classic pub/sub, which the cluster carries to every node.
        assert await bob.dropped(timeout=10) == 4001
        return bob.room
    finally:
        await alice.close()
        await bob.close()


def _cluster_nodes(cluster: ClusterDeployment) -> list[tuple[str, str, bool]]:
    """(address, role, serves slots) of every node, as the first node sees them."""
    nodes = []
    for line in cluster.redis_cli("cluster", "nodes").splitlines():
        fields = line.split()
        address = fields[1].split("@")[0]
        role = "master" if "master" in fields[2].split(",") else "replica"
        nodes.append((address, role, len(fields) > 8))
    return sorted(nodes)


def test_the_job_made_one_cluster_of_three_masters_and_three_replicas(cluster: ClusterDeployment) -> None:
    [job] = cluster.containers("redis-cluster")
    state = cluster.inspect(job)["State"]
    assert (state["Status"], state["ExitCode"]) == ("exited", 0)
    assert "cluster_state:ok" in cluster.redis_cli("cluster", "info")
    nodes = _cluster_nodes(cluster)
    assert [address for address, _, _ in nodes] == [f"{DATA_PREFIX}.{11 + i}:6379" for i in range(6)]
    assert sorted(role for _, role, _ in nodes) == ["master"] * 3 + ["replica"] * 3
    assert all(serves == (role == "master") for _, role, serves in nodes)
    # The one server is not started.
    assert cluster.containers("redis") == []
    for service in ("auth", "rooms", "gateway"):
        for container in cluster.containers(service):
            env = dict(e.split("=", 1) for e in cluster.inspect(container)["Config"]["Env"])
            assert env["SALA_REDIS_CLUSTER"] == "true", container


async def test_two_users_chat_and_a_logout_closes_the_socket(cluster: ClusterDeployment) -> None:
    await _chat_then_logout(cluster)


async def test_down_and_up_finds_the_cluster_made(cluster: ClusterDeployment) -> None:
    cluster.compose("down", "--timeout", "10", timeout=300)
    cluster.up()
    [job] = cluster.containers("redis-cluster")
    log = cluster.docker("logs", job).stdout
    assert "cluster ok" in log and not re.search(r"Performing hash slots allocation", log), log[-2000:]
    assert sorted(role for _, role, _ in _cluster_nodes(cluster)) == ["master"] * 3 + ["replica"] * 3
    await _chat_then_logout(cluster)


def test_down_v_leaves_nothing(cluster: ClusterDeployment) -> None:
    cluster.compose("down", "-v", "--remove-orphans", "--timeout", "10", timeout=300)
    label = f"label=com.docker.compose.project={cluster.project}"
    for kind in ("container", "volume", "network"):
        listed = cluster.docker(kind, "ls", *(["--all"] if kind == "container" else []), "--quiet", "--filter", label)
        assert listed.returncode == 0, listed.stderr
        assert listed.stdout.split() == [], f"{kind}s left: {listed.stdout}"
