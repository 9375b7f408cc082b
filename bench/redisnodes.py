"""Redis deployments of their own for the cluster workload: one server, one with a replica, a cluster.

They are started with the dev stack's own recipe (``tools.devstack``: the
same Valkey, append-only file on, written but not fsynced as for all bench
and test data; its automatic rewrites off, see ``_settle``), apart from the
stack the other workloads load, so nothing but the workload's own traffic
reaches them.
"""

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from redis import Redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from bench.cpus import CpuPlan
from services.common.redis_schema import room_key
from tools.devstack import Ports, Stack

# Room histories and dedupe refs of a few dozen rooms: far below this, so no write is refused.
MAXMEMORY = "1gb"
SYNC_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class Node:
    port: int
    pid: int
    primary: bool


@dataclass
class Deployment:
    """Running Redis nodes, and which primary owns a room."""

    name: str
    nodes: list[Node]
    owner: Callable[[str], int]  # room code -> port of the primary that owns its slot
    stacks: list[Stack]

    @property
    def primaries(self) -> list[Node]:
        return [node for node in self.nodes if node.primary]

    @property
    def cluster(self) -> bool:
        return len(self.primaries) > 1


class Deployments:
    """Starts the deployments the workload compares, and stops all of them."""

    def __init__(self, cpus: CpuPlan, log_dir: Path) -> None:
        self._cpus = cpus
        self._log_dir = log_dir
        self._tmp = tempfile.TemporaryDirectory(prefix="sala-bench-redis-")
        self._stacks: list[Stack] = []

    def _stack(self, name: str, cluster: bool) -> Stack:
        stack = Stack(
            data_dir=Path(self._tmp.name) / name,
            ports=Ports.free(0),
            log_dir=self._log_dir / name,
            fast_storage=True,
            redis_maxmemory=MAXMEMORY,
            redis_cluster=cluster,
        )
        self._stacks.append(stack)
        stack.log_dir.mkdir(parents=True, exist_ok=True)
        stack.start_redis()
        return stack

    def single(self, with_replica: bool) -> Deployment:
        """One server, alone or followed by a replica (as each primary of the cluster is)."""
        name = "single+replica" if with_replica else "single"
        primary = self._stack(name, cluster=False)
        nodes = [Node(primary.ports.redis, primary.pid("redis"), True)]
        if with_replica:
            replica = self._stack(name + "-replica", cluster=False)
            with Redis(port=replica.ports.redis) as client:
                client.replicaof("127.0.0.1", primary.ports.redis)
            nodes.append(Node(replica.ports.redis, replica.pid("redis"), False))
        _settle(nodes)
        port = primary.ports.redis
        return Deployment(name, nodes, lambda code: port, [primary, replica] if with_replica else [primary])

    def cluster(self) -> Deployment:
        """The dev stack's cluster: three primaries, each with one replica."""
        stack = self._stack("cluster", cluster=True)
        with Redis(port=stack.ports.redis_nodes[0]) as client:
            owners = slot_owners(client.execute_command("CLUSTER SLOTS"))
        primaries = set(owners)
        nodes = [
            Node(port, stack.pid(f"redis-node{index}"), port in primaries)
            for index, port in enumerate(stack.ports.redis_nodes)
        ]
        _settle(nodes)
        return Deployment("cluster", nodes, lambda code: owners[key_slot(room_key(code).encode())], [stack])

    def place(self, deployment: Deployment, cpus: set[int] | None) -> None:
        """Pin the deployment's nodes to ``cpus``."""
        for node in deployment.nodes:
            self._cpus.place(node.pid, cpus)

    def stop(self, deployment: Deployment) -> None:
        """Stop a deployment's nodes, so that their background work stays out of the next measurement."""
        for stack in deployment.stacks:
            stack.stop()

    def stop_all(self) -> None:
        for stack in self._stacks:
            stack.stop()
        self._tmp.cleanup()


def slot_owners(cluster_slots: list) -> list[int]:
    """The port of the primary serving each slot, from a ``CLUSTER SLOTS`` reply (the primary comes first)."""
    owners = [0] * REDIS_CLUSTER_HASH_SLOTS
    for start, end, primary, *_replicas in cluster_slots:
        owners[start : end + 1] = [int(primary[1])] * (end - start + 1)
    return owners


def _settle(nodes: list[Node]) -> None:
    """Wait until every replica has synced, and turn off the append-only file's automatic rewrites.

    A rewrite is a forked child's work, sized by the data held rather than
    the messages, landing in whichever measurement it happens to: on, it
    would blur the comparison (the file is still written and replicated).
    """
    deadline = time.monotonic() + SYNC_TIMEOUT_SECONDS
    for node in nodes:
        with Redis(port=node.port) as client:
            client.config_set("auto-aof-rewrite-percentage", 0)
            while not node.primary and client.info("replication").get("master_link_status") != "up":
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the replica on port {node.port} did not sync with its primary")
                time.sleep(0.1)
