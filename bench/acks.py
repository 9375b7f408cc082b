"""What ``SALA_ACK_REPLICAS=1`` costs a sender: send→ack latency with and without waiting for a replica.

``python -m bench.acks [--messages 400] [--redis server cluster]`` starts a
stack per topology (tools.devstack) with two gateways: gateway0 acks once
the primary stored a message, gateway1 once a replica holds it too. On one
server it attaches a replica of its own, so both gateways write to a
replicated primary and only the waiting differs. Each gateway is measured
with one sender sending one message after another (the latency of one
round), and with 20 senders in 10 rooms at once (rounds shared). Apart
from ``make bench``: it needs stacks of its own, a cluster among them.
"""

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from websockets.asyncio.client import ClientConnection, connect

from bench.environment import BENCH_ENV, SalaTarget
from bench.loadgen import MemberSpec
from bench.stats import latency_summary
from tools.devstack import Ports, Stack, free_port, http_ok, valkey_cli, valkey_server

TIMEOUT_MS = 1000
# (senders, rooms): one sender alone, then many sharing rounds.
LOADS = ((1, 1), (20, 10))
# Messages each sender sends first, unmeasured: connections made, scripts loaded.
WARMUP = 5


async def _join(port: int, member: MemberSpec) -> ClientConnection:
    ws = await connect(f"ws://127.0.0.1:{port}{member.path}", additional_headers=member.headers, max_size=None)
    while orjson.loads(await ws.recv())["type"] != "welcome":
        pass
    return ws


async def _send(ws: ClientConnection, messages: int, samples: list[int]) -> None:
    """Send one message after another, each once the previous one is acked; the send→ack times in µs."""
    for n in range(-WARMUP, messages):
        ref = uuid.uuid4().hex
        started = time.perf_counter_ns()
        await ws.send(orjson.dumps({"type": "message", "text": f"m{n}", "ref": ref}).decode())
        while True:
            frame = orjson.loads(await ws.recv())
            if frame.get("ref") == ref:
                if frame["type"] != "ack":
                    raise RuntimeError(f"not acked: {frame}")
                break
        if n >= 0:
            samples.append((time.perf_counter_ns() - started) // 1000)


async def _measure(members: list[MemberSpec], port: int, messages: int) -> dict:
    # Joined one by one, then all send at once: the figures are the sending's alone.
    sockets = [await _join(port, member) for member in members]
    samples: list[int] = []
    try:
        await asyncio.gather(*(_send(ws, max(1, messages // len(sockets)), samples) for ws in sockets))
    finally:
        for ws in sockets:
            await ws.close()
    return {"messages": len(samples), "senders": len(sockets), "latency_ms": latency_summary(samples)}


def _attach_replica(stack: Stack, folder: Path) -> subprocess.Popen:
    """A replica of the stack's one server, once in sync."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        str(valkey_server()), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder),
        "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(stack.ports.redis),
    ]  # fmt: skip
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        _wait_for_replicas([stack.ports.redis])
    except RuntimeError:
        process.terminate()
        raise
    return process


def _info(port: int) -> str:
    argv = [str(valkey_cli()), "-p", str(port), "info", "replication"]
    return subprocess.run(argv, capture_output=True, text=True, timeout=10).stdout


def _wait_for_replicas(ports: list[int]) -> None:
    """Until every primary among ``ports`` has a replica online (a new cluster attaches them late)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        masters = [info for info in map(_info, ports) if "role:master" in info]
        if masters and all("state=online" in info for info in masters):
            return
        time.sleep(0.2)
    raise RuntimeError("the primaries have no replica online")


def _wait_until_ready(base_url: str) -> None:
    """Until the gateway answers ready: Redis and its pub/sub, which it subscribes to after it listens."""
    deadline = time.monotonic() + 60
    while not http_ok(base_url + "/readyz"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{base_url} is not ready")
        time.sleep(0.2)


def measure_topology(cluster: bool, messages: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="sala-bench-acks-") as tmp:
        stack = Stack(
            data_dir=Path(tmp) / "data",
            ports=Ports.free(2),
            log_dir=Path(tmp) / "logs",
            fast_storage=True,
            extra_env=BENCH_ENV,
            replica_env={
                "gateway1": {"SALA_ACK_REPLICAS": "1", "SALA_ACK_REPLICAS_TIMEOUT_MS": str(TIMEOUT_MS)}
            },
            redis_cluster=cluster,
        )
        replica = None
        try:
            stack.start()
            if cluster:
                _wait_for_replicas(stack.ports.redis_nodes)
            else:
                replica = _attach_replica(stack, Path(tmp) / "replica")
            for index in range(len(stack.ports.gateways)):
                _wait_until_ready(stack.service_url(f"gateway{index}"))
            target = SalaTarget(stack)
            rows = []
            for senders, rooms in LOADS:
                for index, replicas in enumerate((0, 1)):
                    members = target.population(rooms, senders // rooms, f"{'c' if cluster else 's'}{senders}g{index}x")
                    row = asyncio.run(_measure(members, stack.ports.gateways[index], messages))
                    rows.append({"redis": "cluster" if cluster else "server", "ack_replicas": replicas, **row})
            return rows
        finally:
            if replica is not None:
                replica.terminate()
                replica.wait(10)
            stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, help="messages per measurement")
    parser.add_argument("--redis", nargs="+", choices=["server", "cluster"], default=["server", "cluster"])
    args = parser.parse_args()
    rows = [row for topology in args.redis for row in measure_topology(topology == "cluster", args.messages)]
    sys.stdout.write("redis    senders  ack_replicas  messages  p50 ms  p99 ms\n")
    for row in rows:
        latency = row["latency_ms"]
        sys.stdout.write(
            f"{row['redis']:<8} {row['senders']:>7}  {row['ack_replicas']:>12}  {row['messages']:>8}"
            f"  {latency['p50']:>6}  {latency['p99']:>6}\n"
        )
    sys.stdout.write(orjson.dumps(rows).decode() + "\n")


if __name__ == "__main__":
    main()
