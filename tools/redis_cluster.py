"""What an operator does to a running Redis Cluster, for failure tests and the soak: find, fail over, reshard.

Each call talks to the nodes directly (``127.0.0.1:PORT``) with short
timeouts and does one thing an operator or a crash does: find the primary
that owns a key, wait until a replica has taken over from a dead primary,
move one slot (and its keys) to another primary as ``valkey-cli --cluster
reshard`` would, key batch by key batch while the slot serves traffic.
"""

import time

import redis
from redis.exceptions import RedisError

MIGRATE_BATCH = 100
MIGRATE_TIMEOUT_MS = 5000


def _node(port: int) -> redis.Redis:
    return redis.Redis(port=port, decode_responses=True, socket_timeout=5, socket_connect_timeout=2)


def keyslot(port: int, key: str) -> int:
    with _node(port) as node:
        return int(node.execute_command("CLUSTER", "KEYSLOT", key))


def slot_owner(ports: list[int], slot: int) -> int | None:
    """The port of the primary that serves ``slot``, as the first node that answers sees it."""
    for port in ports:
        try:
            with _node(port) as node:
                for start, end, primary, *_ in node.execute_command("CLUSTER", "SLOTS"):
                    if int(start) <= slot <= int(end):
                        return int(primary[1])
                return None
        except RedisError:
            continue
    return None


def primaries(ports: list[int]) -> list[int]:
    """The ports of the nodes that are primaries now (a failover changes them)."""
    found = []
    for port in ports:
        try:
            with _node(port) as node:
                if node.execute_command("ROLE")[0] == "master":
                    found.append(port)
        except RedisError:
            continue
    return found


def healthy(ports: list[int]) -> bool:
    """Whether every node answers, sees every slot served, and every replica holds its primary's data.

    A replica still on its first sync has nothing: were its primary to die
    then, it would take over empty. A fault test starts only from here.
    """
    for port in ports:
        try:
            with _node(port) as node:
                if "cluster_state:ok" not in node.execute_command("CLUSTER", "INFO"):
                    return False
                replication = node.info("replication")
        except RedisError:
            return False
        if replication["role"] == "slave" and (
            replication.get("master_link_status") != "up" or replication.get("master_sync_in_progress")
        ):
            return False
    return True


def wait_for_new_owner(ports: list[int], slot: int, old: int, timeout: float = 30.0) -> int:
    """After ``old`` died: the port of the replica that took ``slot`` over, once it serves writes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owner = slot_owner([port for port in ports if port != old], slot)
        if owner is not None and owner != old:
            try:
                with _node(owner) as node:
                    if node.execute_command("ROLE")[0] == "master":
                        return owner
            except RedisError:
                pass
        time.sleep(0.1)
    raise TimeoutError(f"no replica took slot {slot} over from {old} within {timeout:.0f} s")


def move_slot(ports: list[int], slot: int, target: int) -> None:
    """Move ``slot`` and its keys to the primary on ``target``, while the slot keeps serving."""
    source = slot_owner(ports, slot)
    if source is None or source == target:
        raise ValueError(f"slot {slot} is served by {source}, not by a node other than {target}")
    with _node(source) as src, _node(target) as dst:
        source_id, target_id = src.execute_command("CLUSTER", "MYID"), dst.execute_command("CLUSTER", "MYID")
        dst.execute_command("CLUSTER", "SETSLOT", slot, "IMPORTING", source_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "MIGRATING", target_id)
        while keys := src.execute_command("CLUSTER", "GETKEYSINSLOT", slot, MIGRATE_BATCH):
            src.execute_command("MIGRATE", "127.0.0.1", target, "", 0, MIGRATE_TIMEOUT_MS, "KEYS", *keys)
        dst.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
        src.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
    for port in primaries(ports):
        if port not in (source, target):
            with _node(port) as node:
                node.execute_command("CLUSTER", "SETSLOT", slot, "NODE", target_id)
