"""Command-line options and the three presets: default (about 8 minutes), --quick (about 3), --full."""

import argparse
from dataclasses import dataclass, field

from bench.workloads.fanout import Shape

WORKLOADS = ("idle", "redis", "login", "fanout", "saturation", "storm", "cluster", "memprobe")
# memprobe runs a traced gateway (slow, for looking into): only when asked for, or with --full.
DEFAULT_WORKLOADS = WORKLOADS[:-1]


@dataclass
class Options:
    workloads: list[str] = field(default_factory=lambda: list(DEFAULT_WORKLOADS))
    # Rooms of 10, 50 and 100: the sizes the delivery bound is checked in.
    fanout: list[Shape] = field(
        default_factory=lambda: [Shape(50, 10, 1.0), Shape(10, 50, 0.4), Shape(10, 100, 0.1)]
    )
    # At light load a gateway uses a fifth of its core or less: with 10 s of sends the ratio to the
    # yardsticks moved by up to 40% between runs, with 30 s by about 10%.
    duration: float = 20.0
    saturation: list[Shape] = field(default_factory=lambda: [Shape(10, 100, 0.0)])
    saturation_start: float = 2500.0
    saturation_factor: float = 1.5
    step_seconds: float = 3.0
    refinements: int = 2
    max_steps: int = 12
    idle_connections: int = 5000
    idle_room_size: int = 10
    login_seconds: float = 10.0
    login_concurrency: int = 8
    login_users: int = 8
    redis_events: int = 20000
    redis_subscribers: list[int] = field(default_factory=lambda: [1, 4, 16, 64])
    storm_sockets: int = 5000
    storm_room_size: int = 10
    storm_rate: float = 0.1
    storm_before_seconds: float = 5.0
    storm_seconds: float = 20.0
    storm_give_up_seconds: float = 45.0
    storm_handshake_rate: float | None = None  # None: the gateway's default
    storm_handshake_burst: int | None = None
    memprobe_sockets: int = 1000
    cluster_messages: int = 40000
    cluster_subscribers: list[int] = field(default_factory=lambda: [1, 4])
    cluster_rooms: int = 16
    cluster_seconds: float = 8.0
    cluster_loaders: int = 2
    memprobe_warm: int = 100
    processes: int = 0  # 0: two per load-generator CPU
    baseline: bool = True
    picows: bool = True
    profile: bool = False
    preset: str = "default"


QUICK = {
    "fanout": [Shape(20, 10, 1.0), Shape(5, 50, 0.4)],
    "duration": 3.0,
    "saturation": [Shape(5, 50, 0.0)],
    "saturation_start": 5000.0,
    "saturation_factor": 2.0,
    "step_seconds": 2.0,
    "refinements": 0,
    "idle_connections": 1000,
    "login_seconds": 3.0,
    "redis_events": 4000,
    "redis_subscribers": [1, 16],
    "storm_sockets": 600,
    "storm_rate": 0.2,
    "storm_before_seconds": 3.0,
    "storm_seconds": 10.0,
    "cluster_messages": 10000,
    "cluster_seconds": 4.0,
}
FULL = {
    "duration": 30.0,
    "saturation": [Shape(50, 10, 0.0), Shape(10, 100, 0.0)],
    "step_seconds": 5.0,
    "saturation_factor": 1.3,
    "refinements": 3,
    "max_steps": 20,
    "idle_connections": 10000,
    "login_seconds": 20.0,
    "redis_events": 50000,
    "redis_subscribers": [1, 4, 16, 64, 256],
    "cluster_messages": 60000,
    "cluster_subscribers": [1, 4, 16],
    "cluster_seconds": 15.0,
    "profile": True,
    "workloads": list(WORKLOADS),
}


def _shapes(text: str) -> list[Shape]:
    return [Shape.parse(part) for part in text.split(",") if part.strip()]


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse(argv: list[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark Sala on this machine: fan-out, saturation, idle connections, login, Redis cost "
        "(one server and a Redis Cluster), against a minimal baseline gateway. Prints a table and writes "
        "bench/results/<time>/report.json.",
    )
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="smaller sizes, about three minutes")
    preset.add_argument("--full", action="store_true", help="longer runs, more sizes, profile included")
    parser.add_argument("--workload", action="append", choices=WORKLOADS, help="run only this one (repeatable)")
    parser.add_argument(
        "--fanout", type=_shapes, help="fan-out shapes ROOMSxMEMBERS@RATE, comma-separated (50x10@1,10x50@0.4,10x100@0.1)"
    )
    parser.add_argument("--duration", type=float, help="seconds each fan-out run sends (20)")
    parser.add_argument("--saturation", type=_shapes, help="shapes whose rate is ramped (10x100)")
    parser.add_argument("--saturation-start", type=float, help="offered deliveries/s of the first step (2500)")
    parser.add_argument("--saturation-factor", type=float, help="rate multiplier between steps (1.5)")
    parser.add_argument("--step-seconds", type=float, help="seconds each saturation step sends (3)")
    parser.add_argument("--idle-connections", type=int, help="sockets held open on one gateway (5000)")
    parser.add_argument("--idle-room-size", type=int, help="members per room for the idle sockets (10)")
    parser.add_argument("--login-seconds", type=float, help="seconds of back-to-back logins (10)")
    parser.add_argument("--login-concurrency", type=int, help="clients logging in at once (8)")
    parser.add_argument("--redis-events", type=int, help="events per Redis cost point (20000)")
    parser.add_argument("--redis-subscribers", type=_counts, help="subscriber counts for the Redis cost (1,4,16,64)")
    parser.add_argument("--storm-sockets", type=int, help="sockets over three gateways in the reconnect storm (5000)")
    parser.add_argument("--storm-room-size", type=int, help="members per room in the reconnect storm (10)")
    parser.add_argument("--storm-rate", type=float, help="messages/s each member sends through the storm (0.1)")
    parser.add_argument("--storm-seconds", type=float, help="seconds the chat goes on after the kill (20)")
    parser.add_argument(
        "--storm-handshake-rate",
        type=float,
        help="the storm gateways' SALA_HANDSHAKE_RATE_PER_SECOND (its default, halved: two share a core)",
    )
    parser.add_argument(
        "--storm-handshake-burst", type=int, help="the storm gateways' SALA_HANDSHAKE_BURST (its default)"
    )
    parser.add_argument(
        "--cluster-messages", type=int, help="messages per point of Redis CPU, one server against a cluster (40000)"
    )
    parser.add_argument(
        "--cluster-subscribers", type=_counts, help="stand-in gateways subscribed, one server against a cluster (1,4)"
    )
    parser.add_argument("--cluster-rooms", type=int, help="rooms per cluster primary (16)")
    parser.add_argument("--cluster-seconds", type=float, help="seconds of each cluster throughput run (8)")
    parser.add_argument("--cluster-loaders", type=int, help="load-generator processes of the cluster throughput (2)")
    parser.add_argument("--memprobe-sockets", type=int, help="idle sockets the traced gateway gets (1000)")
    parser.add_argument("--processes", type=int, help="load-generator processes (two per load CPU)")
    parser.add_argument(
        "--no-baseline", dest="baseline", action="store_false", default=None, help="skip the websockets yardstick"
    )
    parser.add_argument(
        "--no-picows", dest="picows", action="store_false", default=None, help="skip the picows + uvloop yardstick"
    )
    parser.add_argument("--profile", action="store_true", default=None, help="also profile the gateway with py-spy")
    args = parser.parse_args(argv)

    options = Options()
    if args.quick or args.full:
        options.preset = "quick" if args.quick else "full"
        for name, value in (QUICK if args.quick else FULL).items():
            setattr(options, name, value)
    for name in vars(options):
        value = getattr(args, name, None)
        if value is not None:
            setattr(options, name, value)
    if args.workload:
        options.workloads = list(dict.fromkeys(args.workload))
    return options
