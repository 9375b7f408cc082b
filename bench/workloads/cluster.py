"""Redis on one server against a Redis Cluster: CPU per message, and throughput with 1 and 3 primaries.

Measured on deployments of its own (``bench.redisnodes``), not the stack's
Redis, with Sala's real append script driven straight at the primaries
(``bench.redisdrive``) and stand-ins reading the published frames as
gateways' hubs would.

CPU per message (the primary figure): the CPU time of every Valkey process
(replicas included: they pay for replication too, and for the cluster's
copies of pub/sub), from the scheduler's counters in /proc, summed, less
what the same nodes use idle over as long, divided by the messages appended
and published. Four deployments, each with k stand-in gateways subscribed
to every room: one server; one server and its replica; the cluster with
``SPUBLISH`` (Sala on a cluster: each stand-in reads one connection per
primary); the cluster with classic ``PUBLISH`` (which a cluster copies to
every node; each stand-in reads one node). Each is driven in pipelined
batches, and once with one message per round trip on many connections (a
gateway's appender sends that when an event-loop tick holds one message,
as it does at a few hundred messages/s). Redis is pinned to the server
CPU, the load generator (this process) to the others.

Throughput (secondary): load-generator processes drive the cluster as hard
as they can for a few seconds, first only rooms of one primary (that
primary alone on the server CPU, everything else on the others: its
messages per CPU-second is the per-shard ceiling), then rooms of all three
primaries with nothing pinned (what the whole machine gives). On a machine
of two CPUs the load generator competes with the servers for them, so the
messages/s say what this machine carries, while CPU per message is what
scales.
"""

import asyncio
import math
import os
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from redis import Redis

from bench.cpus import CpuPlan
from bench.procstat import cpu_seconds, run_seconds, runqueue_wait_seconds
from bench.progress import Progress
from bench.redisdrive import BATCH, Lane, Loaders, StandIns, load_script, message_body, pump_lanes
from bench.redisnodes import Deployment, Deployments, Node
from services.common.redis_schema import APPEND_MESSAGE, room_key, with_room_publish
from tools.devstack import CLUSTER_MASTERS

IDLE_SECONDS = 1.0
# The unbatched points: one message per round trip (a gateway's tick with one message in it), on this many
# connections in all, with this share of the pipelined points' messages (round trips are slow from Python).
UNBATCHED_CONNECTIONS = 24
UNBATCHED_SHARE = 4
SETTLE_SECONDS = 0.3
LOADER_TIMEOUT_SECONDS = 60.0
# The load model of docs/capacity.md: one message every 20 s per connected user, a shard planned at 50% of its core.
MESSAGES_PER_USER_PER_SECOND = 0.05
PLANNED_UTILIZATION = 0.5
USERS = (1_000_000, 10_000_000)


def balanced_codes(owner: Callable[[str], int], primaries: list[int], per_primary: int) -> list[str]:
    """Room codes, ``per_primary`` owned by each primary, in the order found."""
    owned: dict[int, list[str]] = {port: [] for port in primaries}
    number = 0
    while any(len(codes) < per_primary for codes in owned.values()):
        code = f"BENCHCL{number}"
        number += 1
        codes = owned[owner(code)]
        if len(codes) < per_primary:
            codes.append(code)
    return [code for codes in owned.values() for code in codes]


def lanes(deployment: Deployment, codes: list[str], primaries: list[Node] | None = None) -> list[Lane]:
    """One lane per primary (of ``primaries``, default all) with the rooms it owns."""
    chosen = deployment.primaries if primaries is None else primaries
    return [Lane(node.port, tuple(code for code in codes if deployment.owner(code) == node.port)) for node in chosen]


def marginal_us_per_message(used_cpu: float, idle_cpu_per_second: float, wall: float, messages: int) -> float:
    """CPU µs per message once the idle background (cron, cluster bus pings) over the same time is taken off."""
    return max(0.0, used_cpu - idle_cpu_per_second * wall) * 1e6 / messages if messages else 0.0


def shards_needed(users: int, messages_per_shard_cpu_second: float) -> int:
    """Primaries for ``users`` under docs/capacity.md's load model, each planned at PLANNED_UTILIZATION."""
    messages = users * MESSAGES_PER_USER_PER_SECOND
    return max(1, math.ceil(messages / (messages_per_shard_cpu_second * PLANNED_UTILIZATION)))


def _cpu(nodes: list[Node]) -> dict[int, float]:
    # A node's reaped children count too: an append-only file rewrite runs in a forked child.
    return {node.port: run_seconds(node.pid, children=True) for node in nodes}


def _waits(nodes: list[Node]) -> dict[int, float]:
    """Time each node waited for a CPU so far: what other work on the machine took from it."""
    return {node.port: runqueue_wait_seconds(node.pid) for node in nodes}


def _idle_rates(nodes: list[Node]) -> dict[int, float]:
    before = _cpu(nodes)
    time.sleep(IDLE_SECONDS)
    after = _cpu(nodes)
    return {port: (after[port] - before[port]) / IDLE_SECONDS for port in before}


def _register(deployment: Deployment, codes: list[str], sharded: bool) -> str:
    """The rooms exist (the script appends only to a live room) and the script is loaded; returns its SHA."""
    for code in codes:
        with Redis(port=deployment.owner(code)) as client:
            client.hset(room_key(code), mapping={"code": code, "name": ""})
    return load_script(deployment, with_room_publish(APPEND_MESSAGE, sharded))


async def _cost_point(
    deployment: Deployment, codes: list[str], sharded: bool, subscribers: int, messages: int, batch: int
) -> dict:
    # One message per round trip is spread over as many connections in every deployment, as gateways' would be.
    connections = 1 if batch > 1 else max(1, UNBATCHED_CONNECTIONS // len(deployment.primaries))
    sha = _register(deployment, codes, sharded)
    body = message_body()
    stand_ins = StandIns()
    await stand_ins.open(deployment, codes, subscribers, sharded, counting=True)
    try:
        warm = len(codes) * 4
        # Authors new to the rooms: a ref stored by an earlier point would be answered without a publish.
        author = uuid.uuid4().hex[:8]
        warmed = await pump_lanes(lanes(deployment, codes), sha, body, f"w{author}", warm, None)
        if warmed.errors:
            raise RuntimeError(f"the append script failed on {deployment.name}: {warmed.first_error}")
        await stand_ins.wait_for(warm * subscribers)
        idle = _idle_rates(deployment.nodes)
        waited = sum(_waits(deployment.nodes).values())
        before, started = _cpu(deployment.nodes), time.monotonic()
        chosen = lanes(deployment, codes)
        pumped = await pump_lanes(chosen, sha, body, f"c{author}", messages, None, batch, connections)
        delivered = await stand_ins.wait_for((warm + messages) * subscribers)
        await asyncio.sleep(SETTLE_SECONDS)  # replicas and the cluster bus catch up
        after, wall = _cpu(deployment.nodes), time.monotonic() - started
        waited = sum(_waits(deployment.nodes).values()) - waited
        received = stand_ins.received() - warm * subscribers
    finally:
        stand_ins.close()
    by_node = {
        node.port: marginal_us_per_message(after[node.port] - before[node.port], idle[node.port], wall, messages)
        for node in deployment.nodes
    }
    primaries = sum(by_node[node.port] for node in deployment.primaries)
    return {
        "deployment": deployment.name,
        "publish": "SPUBLISH" if sharded else "PUBLISH",
        "subscribers": subscribers,
        "batch": batch,
        "connections": connections * len(deployment.primaries),
        "messages": messages,
        "errors": pumped.errors,
        "first_error": pumped.first_error,
        "deliveries_received": received,
        "deliveries_expected": messages * subscribers,
        "all_delivered": delivered,
        "seconds": round(wall, 2),
        "redis_runqueue_wait_seconds": round(waited, 3),
        "redis_us_per_message": round(sum(by_node.values()), 2),
        "primaries_us_per_message": round(primaries, 2),
        "replicas_us_per_message": round(sum(by_node.values()) - primaries, 2),
        "idle_cpu_per_second": round(sum(idle.values()), 4),
        "by_node": [
            {"port": node.port, "primary": node.primary, "us_per_message": round(by_node[node.port], 2)}
            for node in deployment.nodes
        ],
    }


async def _throughput_point(
    deployment: Deployment,
    codes: list[str],
    loaded: list[Node],
    cpus: CpuPlan,
    placement: str,
    subscribers: int,
    loaders: int,
    seconds: float,
) -> dict:
    sha = _register(deployment, codes, sharded=True)
    chosen = lanes(deployment, codes, loaded)
    stand_ins = StandIns()
    await stand_ins.open(deployment, codes, subscribers, sharded=True, counting=False)
    pool = Loaders(loaders, chosen, sha, message_body(), f"t{uuid.uuid4().hex[:8]}", seconds)
    try:
        # Pinned: the loaded primary alone on the server CPU. Unpinned: everything anywhere.
        rest = cpus.load if placement == "pinned" else cpus.everything
        for node in deployment.nodes:
            cpus.place(node.pid, cpus.server if placement == "pinned" and node in loaded else rest)
        pool.place(cpus, rest)
        cpus.place(os.getpid(), rest)
        await pool.ready(LOADER_TIMEOUT_SECONDS)
        groups = {"loaders": pool.pids, "subscribers": [os.getpid()]}
        before_nodes, waited = _cpu(deployment.nodes), _waits(deployment.nodes)
        before = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}
        received_before, started = stand_ins.received_bytes(), time.monotonic()
        pool.go()
        pumped = await pool.results(seconds + LOADER_TIMEOUT_SECONDS)
        wall = time.monotonic() - started
        after_nodes, waited_after = _cpu(deployment.nodes), _waits(deployment.nodes)
        after = {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}
        received = stand_ins.received_bytes() - received_before
    finally:
        pool.stop()
        stand_ins.close()
        cpus.place(os.getpid(), cpus.load)
    # Rates over the loaders' own clock (from "go" to their deadline); utilization over the time measured here.
    rate = pumped.messages / seconds
    nodes = []
    for node in deployment.nodes:
        used = after_nodes[node.port] - before_nodes[node.port]
        messages = pumped.by_port.get(node.port, 0)
        nodes.append(
            {
                "port": node.port,
                "primary": node.primary,
                "loaded": node in loaded,
                "cpu_utilization": round(used / wall, 3),
                "runqueue_wait_seconds": round(waited_after[node.port] - waited[node.port], 3),
                "messages_per_second": round(messages / seconds),
                "messages_per_cpu_second": round(messages / used) if node in loaded and used else None,
            }
        )
    redis_cpu = sum(after_nodes.values()) - sum(before_nodes.values())
    return {
        "primaries_loaded": len(loaded),
        "placement": placement,
        "subscribers": subscribers,
        "loaders": loaders,
        "seconds": seconds,
        "wall_seconds": round(wall, 3),
        "messages": pumped.messages,
        "errors": pumped.errors,
        "first_error": pumped.first_error,
        "messages_per_second": round(rate),
        "redis_us_per_message": round(redis_cpu * 1e6 / pumped.messages, 2) if pumped.messages else None,
        "received_mib": round(received / 2**20, 1),
        "redis_runqueue_wait_seconds": round(sum(waited_after.values()) - sum(waited.values()), 3),
        "loaders_cpu_utilization": round((after["loaders"] - before["loaders"]) / wall, 3),
        "subscribers_cpu_utilization": round((after["subscribers"] - before["subscribers"]) / wall, 3),
        "nodes": nodes,
    }


def cluster(
    cpus: CpuPlan,
    log_dir: Path,
    messages: int,
    subscriber_counts: list[int],
    rooms_per_primary: int,
    seconds: float,
    loaders: int,
) -> dict:
    started = time.monotonic()
    deployments = Deployments(cpus, log_dir)
    cost: list[dict] = []
    throughput: list[dict] = []
    try:
        progress = Progress("cluster: Redis CPU per message", None)

        def measure(deployment: Deployment, codes: list[str], sharded: bool) -> None:
            points = [(count, BATCH, messages) for count in subscriber_counts]
            points.append((max(subscriber_counts), 1, messages // UNBATCHED_SHARE))
            for count, batch, total in points:
                cost.append(asyncio.run(_cost_point(deployment, codes, sharded, count, total, batch)))
                progress.update()

        for with_replica in (False, True):
            single = deployments.single(with_replica)
            deployments.place(single, cpus.server)
            # As many rooms as the cluster has.
            measure(single, [f"BENCHCL{number}" for number in range(CLUSTER_MASTERS * rooms_per_primary)], False)
            deployments.stop(single)
        spread = deployments.cluster()
        deployments.place(spread, cpus.server)
        codes = balanced_codes(spread.owner, [node.port for node in spread.primaries], rooms_per_primary)
        for sharded in (True, False):
            measure(spread, codes, sharded)
        progress.done(_cost_summary(cost, max(subscriber_counts)))
        progress = Progress("cluster: throughput, 1 and 3 primaries", 2 * seconds + 10)
        for loaded, placement in ((spread.primaries[:1], "pinned"), (spread.primaries, "unpinned")):
            throughput.append(
                asyncio.run(
                    _throughput_point(spread, codes, loaded, cpus, placement, max(subscriber_counts), loaders, seconds)
                )
            )
            progress.update()
        progress.done(" / ".join(f"{t['primaries_loaded']}: {t['messages_per_second']:,}/s" for t in throughput))
    finally:
        deployments.stop_all()
    return {
        "messages_per_point": messages,
        "rooms_per_primary": rooms_per_primary,
        "body_bytes": len(message_body()),
        "cost": cost,
        "throughput": throughput,
        "per_shard": per_shard(throughput, cost),
        "seconds": round(time.monotonic() - started, 1),
    }


def per_shard(throughput: list[dict], cost: list[dict]) -> dict | None:
    """What one primary carries (messages per CPU-second while it was the bottleneck), and the shards it implies.

    Also from one message per round trip: the primaries' CPU per message at the cluster's unbatched sharded point.
    """
    one = next((t for t in throughput if t["primaries_loaded"] == 1), None)
    if one is None:
        return None
    node = next(n for n in one["nodes"] if n["loaded"])
    ceiling = node["messages_per_cpu_second"]
    if not ceiling:
        return None
    unbatched = next(
        (c for c in cost if c["deployment"] == "cluster" and c["publish"] == "SPUBLISH" and c["batch"] == 1), None
    )
    unbatched_ceiling = round(1e6 / unbatched["primaries_us_per_message"]) if unbatched else None
    return {
        "messages_per_cpu_second": ceiling,
        "cpu_utilization": node["cpu_utilization"],
        "runqueue_wait_share": round(node["runqueue_wait_seconds"] / one["wall_seconds"], 3),
        "messages_per_cpu_second_unbatched": unbatched_ceiling,
        "planned_utilization": PLANNED_UTILIZATION,
        "messages_per_user_per_second": MESSAGES_PER_USER_PER_SECOND,
        "shards_needed": {
            str(users): [shards_needed(users, rate) if rate else None for rate in (ceiling, unbatched_ceiling)]
            for users in USERS
        },
    }


def _cost_summary(cost: list[dict], subscribers: int) -> str:
    return ", ".join(
        f"{c['deployment']} {c['publish']} {c['redis_us_per_message']} µs"
        for c in cost
        if c["subscribers"] == subscribers and c["batch"] > 1
    )
