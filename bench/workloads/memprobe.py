"""What one idle socket holds in a Sala gateway, and who allocated it: tracemalloc, biggest first.

A gateway of its own (bench/memprobe.py: the real one, traced) gets ``warm``
sockets first, so that one-time costs (imports, the first room, pools,
caches) are paid before tracing starts; then ``sockets`` more in rooms of
``room_size``, idle; what was allocated since and is still held, divided by
``sockets``, is what each socket holds. It is grouped three ways: by the
line that allocated it, by the package of that line, and by the innermost
line of Sala's own code on the way there (who asked). tracemalloc sees the
memory of Python objects and of what C extensions allocate through Python's
allocators, not the kernel's socket buffers nor allocator slack, so the
traced figure is below the RSS one; the report gives both.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bench.context import Context
from bench.environment import wait_for_port
from bench.procstat import rss_kib, wait_idle
from tools.devstack import ROOT, free_port

NAME = "gateway-memprobe"
TOP = 15
SNAPSHOT_TIMEOUT_SECONDS = 120.0
# Frames of no interest for attribution: the import machinery and tracemalloc itself.
IGNORED = (tracemalloc.Filter(False, "<frozen importlib._bootstrap>"), tracemalloc.Filter(False, tracemalloc.__file__))


def short(filename: str) -> str:
    """A frame's file as a reader knows it: relative to the repository or to site-packages."""
    for marker in ("site-packages/", str(ROOT) + "/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename.rsplit("/lib/python", 1)[-1].split("/", 1)[-1] if "/lib/python" in filename else filename


def package(filename: str) -> str:
    name = short(filename)
    if name.startswith("services/"):
        return "/".join(name.split("/")[:2])
    return name.split("/", 1)[0].removesuffix(".py") if "/" in name else "stdlib: " + name


def attribute(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot, sockets: int) -> dict:
    """The growth between two snapshots per socket, by allocating line, by package, by Sala's own line."""
    sites, packages, sala = Counter(), Counter(), Counter()
    blocks: Counter = Counter()
    total = 0
    for stat in after.filter_traces(IGNORED).compare_to(before.filter_traces(IGNORED), "traceback"):
        if not stat.size_diff:
            continue
        frames = list(reversed(stat.traceback))  # innermost first
        site = f"{short(frames[0].filename)}:{frames[0].lineno}"
        sites[site] += stat.size_diff
        blocks[site] += stat.count_diff
        packages[package(frames[0].filename)] += stat.size_diff
        own = next((frame for frame in frames if short(frame.filename).startswith("services/")), None)
        sala[f"{short(own.filename)}:{own.lineno}" if own else "(no Sala frame)"] += stat.size_diff
        total += stat.size_diff

    def rows(counter: Counter, with_blocks: bool = False) -> list[dict]:
        return [
            {"where": where, "bytes_per_socket": round(size / sockets)}
            | ({"blocks_per_socket": round(blocks[where] / sockets, 2)} if with_blocks else {})
            for where, size in counter.most_common(TOP)
        ]

    return {
        "traced_kib_per_socket": round(total / sockets / 1024, 2),
        "by_line": rows(sites, with_blocks=True),
        "by_package": rows(packages),
        "by_sala_line": rows(sala),
    }


class ProbedGateway:
    """The traced gateway process, with the stack's settings, pinned where Sala's gateway runs."""

    def __init__(self, ctx: Context, snapshots: Path) -> None:
        stack = ctx.systems.stack
        stack.ports.extra[NAME] = self.port = free_port()
        snapshots.mkdir(parents=True, exist_ok=True)
        self._snapshots = snapshots
        self._taken = 0
        inherited = {key: value for key, value in os.environ.items() if key != "SALA_GATEWAY_ID"}
        self._log = open(ctx.systems.log_dir / f"{NAME}.log", "a")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.memprobe", "--snapshots", str(snapshots)],
            cwd=ROOT,
            env={**inherited, **stack.service_env(NAME)},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for_port(NAME, self.port, self.process, timeout=60)
        ctx.systems.cpus.place(self.process.pid, ctx.systems.cpus.server)

    def snapshot(self) -> tracemalloc.Snapshot:
        path = self._snapshots / f"{self._taken}.snapshot"
        self._taken += 1
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + SNAPSHOT_TIMEOUT_SECONDS
        while not path.exists():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("the traced gateway wrote no snapshot")
            time.sleep(0.2)
        return tracemalloc.Snapshot.load(str(path))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:  # traced, its drain is slow; what it would write is not needed
            self.process.kill()
            self.process.wait()
        self._log.close()


def memprobe(ctx: Context, sockets: int, room_size: int, warm: int, out_dir: Path) -> dict:
    gateway = ProbedGateway(ctx, out_dir / "snapshots")
    sala = ctx.systems.sala
    try:
        counts = []
        for label, count in (("w", warm), ("p", sockets)):
            members = sala.population(max(1, count // room_size), room_size, f"m{label}")
            members = [dataclasses.replace(spec, port=gateway.port) for spec in members]
            if label == "p":
                before, rss_before = gateway.snapshot(), rss_kib(gateway.process.pid)
            counts.append(
                ctx.swarm.connect("127.0.0.1", gateway.port, members, f"traced gateway: {len(members)} sockets").count
            )
            ctx.swarm.quiet(seconds=0.5, timeout=120)
            wait_idle(gateway.process.pid)
        rss_after = rss_kib(gateway.process.pid)
        after = gateway.snapshot()
    finally:
        ctx.swarm.disconnect()
        gateway.stop()
    count = counts[1] - counts[0]  # the load generator counts every socket it holds, the warm ones too
    return {
        "target": "sala",
        "sockets": count,
        "warm_sockets": counts[0],
        "room_size": room_size,
        # tracemalloc's own traces are in it: an upper bound, for scale only.
        "rss_kib_per_socket_while_traced": round((rss_after - rss_before) / count, 2) if count else None,
        **attribute(before, after, count),
    }
