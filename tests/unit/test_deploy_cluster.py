"""The Redis Cluster selections, checked offline: deploy/compose.cluster.yml and deploy/k8s/components/redis-cluster.

The compose override is merged with docker-compose.yml by `docker compose
config` (the client alone, no engine), as an operator's `-f ... -f ...` would
be, then held to the Compose Specification and to what the cluster needs:
six nodes at fixed addresses, a job that makes them one cluster, and auth,
rooms and the gateways pointed at it instead of the one server. The
Kubernetes component is applied to the base, by this repository's renderer
and by `kubectl kustomize`. The override runs for real in tests/containers/.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from deploy_support import (
    REPO,
    _apply_patches,
    kubectl_kustomize,
    read_env_file,
    render_kustomization,
    resource_id,
)
from test_deploy import _env_example_documented, _schema_errors

from tests.support import unavailable

COMPOSE_FILE = REPO / "docker-compose.yml"
CLUSTER_FILE = REPO / "deploy" / "compose.cluster.yml"
ENV_EXAMPLE = REPO / ".env.example"
K8S_BASE = REPO / "deploy" / "k8s" / "base"
COMPONENT = REPO / "deploy" / "k8s" / "components" / "redis-cluster"

NODES = [f"redis-{index}" for index in range(1, 7)]
SALA_SERVICES = ("auth", "rooms", "gateway")


def merged_compose(tmp_path: Path, **extra: str) -> dict[str, Any]:
    """`docker compose -f docker-compose.yml -f deploy/compose.cluster.yml config`, with .env from .env.example."""
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode != 0:
        unavailable("the docker client with compose v2 is missing (tools/ensure-docker.sh installs it)")
    env_file = tmp_path / "sala.env"
    settings = {**read_env_file(ENV_EXAMPLE), "POSTGRES_PASSWORD": "not-a-real-password", **extra}
    env_file.write_text("".join(f"{name}={value}\n" for name, value in settings.items()))
    argv = [docker, "compose", "-f", str(COMPOSE_FILE), "-f", str(CLUSTER_FILE), "--env-file", str(env_file)]
    env = {key: value for key, value in os.environ.items() if not key.startswith(("COMPOSE_", "SALA_"))}
    out = subprocess.run([*argv, "config", "--format", "json"], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return merged_compose(tmp_path_factory.mktemp("compose"))


def node_addresses(compose: dict[str, Any]) -> list[str]:
    return [compose["services"][node]["networks"]["data"]["ipv4_address"] for node in NODES]


def test_merged_file_matches_the_compose_specification(merged: dict[str, Any]) -> None:
    assert _schema_errors(merged) == []


def test_the_cluster_replaces_the_one_server(merged: dict[str, Any]) -> None:
    base = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert set(merged["services"]) == set(base["services"]) - {"redis"} | {*NODES, "redis-cluster"}
    for name in SALA_SERVICES:
        service = merged["services"][name]
        assert service["environment"]["SALA_REDIS_CLUSTER"] == "true", name
        # Still listed (compose merges depends_on), but not required: the one server is not started.
        assert service["depends_on"]["redis"]["required"] is False, name
        assert service["depends_on"]["redis-cluster"]["condition"] == "service_completed_successfully", name
        seeds = service["environment"]["SALA_REDIS_URL"].split(",")
        assert seeds and all(re.fullmatch(r"redis://redis-[1-6]:6379", seed) for seed in seeds), seeds
    assert merged["services"]["auth"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_nodes_are_redis_cluster_nodes_like_the_one_server(merged: dict[str, Any]) -> None:
    base = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]["redis"]
    for index, node in enumerate(NODES, start=1):
        service = merged["services"][node]
        assert service["image"] == merged["services"]["redis-cluster"]["image"] == "redis:7"
        assert base["image"] == "${SALA_REDIS_IMAGE:-redis:7}"
        command = " ".join(service["command"])
        for setting in (
            "--cluster-enabled yes",
            "--appendonly yes",
            "--maxmemory-policy noeviction",
            "--maxmemory 256mb",
        ):
            assert setting in command, (node, setting)
        assert "redis-cli ping" in " ".join(service["healthcheck"]["test"])
        assert service["restart"] == "unless-stopped"
        [volume] = service["volumes"]
        assert volume["source"] == f"redis-node-{index}"
        assert volume["target"] == "/data"
    job = merged["services"]["redis-cluster"]
    assert job["restart"] == "no"
    assert {name: dep["condition"] for name, dep in job["depends_on"].items()} == dict.fromkeys(
        NODES, "service_healthy"
    )
    script = job["command"][-1]
    # `config` keeps the file's $$ escapes; the container's shell sees one $.
    assert "--cluster create $$NODES --cluster-replicas 1 --cluster-yes" in script
    assert "cluster_state:ok" in script


def test_nodes_keep_fixed_addresses_the_job_and_the_services_reach(merged: dict[str, Any]) -> None:
    [pool] = merged["networks"]["data"]["ipam"]["config"]
    subnet, dynamic = ipaddress.ip_network(pool["subnet"]), ipaddress.ip_network(pool["ip_range"])
    assert merged["networks"]["data"]["internal"] is True
    addresses = [ipaddress.ip_address(a) for a in node_addresses(merged)]
    assert len(set(addresses)) == len(NODES)
    # Inside the network, outside the range Docker hands to the other containers.
    assert all(a in subnet and a not in dynamic for a in addresses)
    assert dynamic.subnet_of(subnet)
    job = merged["services"]["redis-cluster"]["environment"]
    assert job["NODES"].split() == [f"{a}:6379" for a in node_addresses(merged)]
    assert job["FIRST"] == node_addresses(merged)[0]
    for name in ("redis-cluster", *SALA_SERVICES):
        assert "data" in merged["services"][name]["networks"], name


def test_the_subnet_prefix_moves_every_address(tmp_path: Path) -> None:
    moved = merged_compose(tmp_path, SALA_DATA_SUBNET_PREFIX="10.77.3")
    assert all(address.startswith("10.77.3.") for address in node_addresses(moved))
    assert moved["networks"]["data"]["ipam"]["config"][0]["subnet"] == "10.77.3.0/24"
    assert all(
        node.startswith("10.77.3.") for node in moved["services"]["redis-cluster"]["environment"]["NODES"].split()
    )


def test_every_variable_of_the_override_is_in_env_example() -> None:
    used = set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", CLUSTER_FILE.read_text(encoding="utf-8")))
    assert used - set(_env_example_documented()) == set()


# --------------------------------------------------------------- kubernetes ---


def component_patches() -> list[dict[str, Any]]:
    component = yaml.safe_load((COMPONENT / "kustomization.yaml").read_text(encoding="utf-8"))
    assert component["kind"] == "Component"
    assert set(component) == {"apiVersion", "kind", "patches"}
    return component["patches"]


def config_data(docs: list[dict[str, Any]]) -> dict[str, str]:
    [config] = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "sala-config"]
    return config["data"]


def test_component_turns_the_cluster_on_and_nothing_else() -> None:
    base = render_kustomization(K8S_BASE)
    with_component = _apply_patches(render_kustomization(K8S_BASE), component_patches(), COMPONENT)
    assert "SALA_REDIS_CLUSTER" not in config_data(base)
    assert config_data(with_component) == {**config_data(base), "SALA_REDIS_CLUSTER": "true"}
    others = [d for d in with_component if d["kind"] != "ConfigMap"]
    assert others == [d for d in base if d["kind"] != "ConfigMap"]


def test_component_renders_with_kustomize(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S_BASE, overlay)],
                "components": [os.path.relpath(COMPONENT, overlay)],
            }
        )
    )
    real = kubectl_kustomize(overlay)
    if real is None:
        unavailable("kubectl (with its built-in kustomize) is not installed; CI renders the component with it")
    ours = _apply_patches(render_kustomization(K8S_BASE), component_patches(), COMPONENT)
    assert {resource_id(d): d for d in real} == {resource_id(d): d for d in ours}
