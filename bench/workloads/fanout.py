"""Fan-out: R rooms of M members, every member sending r messages/s for T seconds.

Each message is delivered to all M members of its room (its sender
included, as the gateway does the same work for it), so the offered load is
R·M·r messages/s and R·M²·r deliveries/s. Latency is measured at every
member but the sender.
"""

import re
from dataclasses import dataclass

from bench.context import Context
from bench.environment import Target
from bench.procstat import Usage, wait_idle
from bench.swarm import Connected, RunResult


@dataclass(frozen=True)
class Shape:
    """``RxM@r``: R rooms of M members, each member sending r messages/s."""

    rooms: int
    members: int
    rate: float

    @classmethod
    def parse(cls, text: str) -> "Shape":
        match = re.fullmatch(r"(\d+)x(\d+)(?:@([\d.]+))?", text.strip())
        if not match:
            raise ValueError(f"not a shape (ROOMSxMEMBERS@RATE): {text!r}")
        return cls(int(match[1]), int(match[2]), float(match[3] or 1.0))

    @property
    def name(self) -> str:
        return f"{self.rooms}x{self.members}"

    def deliveries_per_second(self, rate: float) -> float:
        return self.rooms * self.members * self.members * rate


# A server that waited this share of the run for its CPU was disturbed by other work on the machine.
CONTENDED_WAIT_SHARE = 0.10


def run_figures(result: RunResult, usage: dict[str, Usage]) -> dict:
    """A run's result with what it cost: per delivery on the server, per message in Redis."""
    server, redis, loadgen = usage["server"], usage["redis"], usage["loadgen"]
    return {
        "contended": server.runqueue_wait > CONTENDED_WAIT_SHARE * server.wall,
        "sent": result.sent,
        "acked": result.acked,
        "expected_deliveries": result.expected,
        "delivered": result.delivered,
        "lost": result.lost,
        "duplicated": result.duplicated,
        "errors": dict(result.errors),
        "closes": {str(code): count for code, count in result.closes.items()},
        "deliveries_per_second": round(result.deliveries_per_second),
        "latency_ms": result.latency_ms,
        "server": server.as_dict(),
        "server_cpu_us_per_delivery": round(server.cpu * 1e6 / result.delivered, 2) if result.delivered else None,
        "deliveries_per_server_cpu_second": round(result.delivered / server.cpu) if server.cpu else None,
        "redis_cpu_us_per_message": round(redis.cpu * 1e6 / result.acked, 1) if result.acked else None,
        "loadgen_cpu_utilization": round(loadgen.utilization, 3),
        "max_send_lag_ms": result.max_send_lag_ms,
    }


def connect(ctx: Context, target: Target, shape: Shape, label: str) -> dict:
    """Connect the shape's members and wait for the join storm to settle; returns what it cost."""
    members = target.population(shape.rooms, shape.members, label)
    wait_idle(target.pid)
    meter = ctx.meter(target).start()
    connected: Connected = ctx.swarm.connect("127.0.0.1", target.port, members, f"{target.name} connect {shape.name}")
    settled = ctx.swarm.quiet(seconds=0.5, timeout=120)
    usage = meter.stop()["server"]
    return {
        "connections": connected.count,
        "failures": dict(connected.failures),
        "seconds": round(connected.seconds, 2),
        "settled": settled,
        "welcome_ms_p50": connected.welcome_ms_p50,
        "welcome_ms_p99": connected.welcome_ms_p99,
        "server_cpu_ms_per_connection": round(usage.cpu * 1000 / connected.count, 3) if connected.count else None,
    }


def fanout(ctx: Context, target: Target, shape: Shape, duration: float, label: str) -> dict:
    """One run at the shape's rate on members already connected."""
    wait_idle(target.pid)
    meter = ctx.meter(target).start()
    result = ctx.swarm.run(f"{label}f", shape.rate, duration, f"{target.name} fan-out {shape.name}@{shape.rate:g}")
    return {
        "target": target.name,
        "shape": shape.name,
        "rate_per_member": shape.rate,
        "duration_seconds": duration,
        "offered_deliveries_per_second": round(shape.deliveries_per_second(shape.rate)),
        **run_figures(result, meter.stop()),
    }
