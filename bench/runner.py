"""Runs the selected workloads against a fresh stack and collects one result document.

Order matters: the cluster workload first, on Redis deployments of its own,
before the stack starts (a run of that workload alone starts no stack); then
idle connections, on gateways that have not grown their heap yet (so RSS per connection is not hidden by reused memory): Sala's and
each yardstick's, then the short Redis and login measurements, then fan-out
and saturation for Sala and for the yardsticks, and the reconnect storm last
(it adds two gateways to the stack and kills one). Each fan-out shape is
connected once and reused by the saturation ramp and the profile when they
use the same shape, because connecting large rooms is itself slow (every
join is broadcast to the room).
"""

import datetime
import os
import platform
import resource
import subprocess
from pathlib import Path

from bench.context import Context
from bench.cpus import CpuPlan
from bench.environment import BENCH_ENV, YARDSTICKS, Systems, Target
from bench.options import Options
from bench.profiling import profile
from bench.progress import Progress
from bench.swarm import Swarm
from bench.workloads.cluster import cluster
from bench.workloads.fanout import Shape, connect, fanout
from bench.workloads.idle import idle
from bench.workloads.login import login
from bench.workloads.memprobe import memprobe
from bench.workloads.redis_cost import redis_cost
from bench.workloads.saturation import saturation
from bench.workloads.storm import storm
from tools.devstack import ROOT

RESULTS = Path(__file__).resolve().parent / "results"
SPARE_FILES = 2000


def raise_open_files(needed: int) -> dict[str, int]:
    """Raise the soft limit of open files (inherited by the stack and the workers) toward ``needed``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return {"soft": soft, "hard": hard, "needed": needed}


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def _machine(cpus: CpuPlan) -> dict:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "placement": cpus.describe(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def _targets(systems: Systems, options: Options) -> list[Target]:
    """Sala's gateway and the yardsticks chosen, started when a workload compares them."""
    if not {"idle", "fanout", "saturation"} & set(options.workloads):
        return []
    chosen = [name for name in YARDSTICKS if getattr(options, name)]
    return [systems.sala, *(systems.start_yardstick(name) for name in chosen)]


def _populations(options: Options) -> list[Shape]:
    """The shapes to connect, in order: fan-out shapes, then saturation shapes not among them."""
    shapes = list(options.fanout) if "fanout" in options.workloads else []
    if "saturation" in options.workloads:
        shapes += [s for s in options.saturation if s.name not in {f.name for f in shapes}]
    return shapes


def _load(ctx: Context, target: Target, options: Options, out_dir: Path, report: dict) -> None:
    fanout_names = {shape.name for shape in options.fanout} if "fanout" in options.workloads else set()
    saturation_names = {shape.name for shape in options.saturation} if "saturation" in options.workloads else set()
    for index, shape in enumerate(_populations(options)):
        label = f"{target.name[0]}{index}r"
        report["connect"].append({"target": target.name, "shape": shape.name, **connect(ctx, target, shape, label)})
        if shape.name in fanout_names:
            report["fanout"].append(fanout(ctx, target, shape, options.duration, label))
        if shape.name in saturation_names:
            report["saturation"].append(
                saturation(
                    ctx,
                    target,
                    shape,
                    label,
                    options.saturation_start,
                    options.saturation_factor,
                    options.step_seconds,
                    options.refinements,
                    options.max_steps,
                )
            )
        if options.profile and shape.name in fanout_names and shape == options.fanout[-1]:
            report["profiles"].append(profile(ctx, target, shape, options.duration, out_dir))
        ctx.swarm.disconnect()


def ratios(report: dict) -> list[dict]:
    """Sala's figures over each yardstick's, shape by shape, from the same run."""
    rows = []
    idle = {"idle": report.get("idle") or []}
    for kind, figures in (
        ("fanout", ("server_cpu_us_per_delivery", "latency_p50", "latency_p99")),
        ("saturation", ("max_sustained_deliveries_per_second",)),
        ("idle", ("rss_kib_per_connection", "server_cpu_ms_per_connection", "connect_seconds")),
    ):
        entries = {**report, **idle}[kind]
        by_target = {(entry["target"], entry.get("shape", f"rooms of {entry.get('room_size')}")): entry
                     for entry in entries}  # fmt: skip
        for (target, shape), sala in by_target.items():
            if target != "sala":
                continue
            for yardstick in YARDSTICKS:
                other = by_target.get((yardstick, shape))
                if other is None:
                    continue
                for figure in figures:
                    mine, theirs = _figure(sala, figure), _figure(other, figure)
                    rows.append(
                        {
                            "workload": kind,
                            "shape": shape,
                            "figure": figure,
                            "against": yardstick,
                            "sala": mine,
                            "yardstick": theirs,
                            "ratio": round(mine / theirs, 2) if mine is not None and theirs else None,
                        }
                    )
    return rows


def _figure(entry: dict, name: str) -> float | None:
    if name.startswith("latency_"):
        return entry["latency_ms"][name.removeprefix("latency_")]
    return entry[name]


def run(options: Options) -> tuple[dict, Path]:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = RESULTS / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    open_files = raise_open_files(max(options.idle_connections, options.storm_sockets) + SPARE_FILES)
    cpus = CpuPlan.for_this_machine()
    cpus.place(os.getpid(), cpus.load)
    report: dict = {
        "started_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "commit": _git("rev-parse", "--short", "HEAD"),
        "work_tree_clean": _git("status", "--porcelain", "--untracked-files=no") == "",
        "preset": options.preset,
        "machine": _machine(cpus),
        "open_files": open_files,
        "settings_changed_for_the_bench": BENCH_ENV,
        "connect": [],
        "fanout": [],
        "saturation": [],
        "profiles": [],
    }
    if "cluster" in options.workloads:
        # Redis deployments of its own, measured before the stack starts, so that nothing else runs meanwhile.
        report["cluster"] = cluster(
            cpus,
            out_dir / "logs",
            options.cluster_messages,
            options.cluster_subscribers,
            options.cluster_rooms,
            options.cluster_seconds,
            options.cluster_loaders,
        )
    if not set(options.workloads) - {"cluster"}:
        report["machine"]["load_generator_processes"] = 0
        report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
        return report, out_dir
    systems = Systems(cpus, out_dir / "logs")
    starting = Progress("starting the stack")
    systems.start()
    starting.done()
    swarm = Swarm(options.processes or 2 * len(cpus.load or {0}), cpus.load)
    report["machine"]["load_generator_processes"] = len(swarm.processes)
    ctx = Context(systems, swarm)
    try:
        targets = _targets(systems, options)
        if "idle" in options.workloads:
            report["idle"] = [idle(ctx, target, options.idle_connections, options.idle_room_size) for target in targets]
        if "memprobe" in options.workloads:
            report["memprobe"] = memprobe(
                ctx, options.memprobe_sockets, options.idle_room_size, options.memprobe_warm, out_dir
            )
        if "redis" in options.workloads:
            report["redis"] = redis_cost(ctx, options.redis_events, options.redis_subscribers)
        if "login" in options.workloads:
            report["login"] = login(ctx, options.login_seconds, options.login_concurrency, options.login_users)
        if {"fanout", "saturation"} & set(options.workloads):
            for target in targets:
                _load(ctx, target, options, out_dir, report)
        report["ratios"] = ratios(report)
        if "storm" in options.workloads:
            report["storm"] = storm(
                ctx,
                options.storm_sockets,
                options.storm_room_size,
                options.storm_rate,
                options.storm_before_seconds,
                options.storm_seconds,
                options.storm_give_up_seconds,
                options.storm_handshake_rate,
                options.storm_handshake_burst,
            )
    finally:
        swarm.close()
        systems.stop()
    report["machine"]["loadavg_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    return report, out_dir
