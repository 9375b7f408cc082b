"""Saturation: raise the message rate on one connected population until the gateway gives.

Steps are short runs at a rising rate (×``factor`` each), each drained before
the next so backlogs do not carry over. A step is sustained if p99 stays at
or under 200 ms, at least 99% of its messages are acked and 99% of the
deliveries they owe (to the members connected) arrive, and no socket is
dropped. After the first failing step, ``refinements``
bisections between the last sustained rate and the failing one narrow the
answer. A step that fails while the server waited for its CPU (another
process on the machine took it) is tried again, up to ``CONTENDED_RETRIES``
times, so that a neighbour's burst does not pass for the gateway's limit.
The figure is the highest sustained deliveries/s of ONE gateway process; the
steps, retries included, are all reported.
"""

from bench.context import Context
from bench.environment import Target
from bench.procstat import wait_idle
from bench.progress import Progress
from bench.workloads.fanout import Shape, run_figures

MAX_P99_MS = 200.0
MIN_COMPLETE = 0.99
CONTENDED_RETRIES = 2


def sustained(figures: dict) -> bool:
    """p99 within bounds, 99% of the messages sent acked and 99% of what they owe delivered, no socket dropped."""
    p99 = figures["latency_ms"]["p99"]
    acked = figures["acked"] >= MIN_COMPLETE * figures["sent"]
    delivered = figures["delivered"] >= MIN_COMPLETE * figures["expected_deliveries"]
    return p99 is not None and p99 <= MAX_P99_MS and acked and delivered and not figures["closes"]


def saturation(
    ctx: Context,
    target: Target,
    shape: Shape,
    label: str,
    start_deliveries: float,
    factor: float,
    step_seconds: float,
    refinements: int,
    max_steps: int,
) -> dict:
    steps: list[dict] = []

    def step(rate: float) -> bool:
        for _ in range(1 + CONTENDED_RETRIES):
            wait_idle(target.pid)
            meter = ctx.meter(target).start()
            result = ctx.swarm.run(
                f"{label}s{len(steps)}",
                rate,
                step_seconds,
                f"{target.name} saturation {shape.name}@{rate:.3g}",
                drain_max=3.0,
            )
            figures = {"rate_per_member": round(rate, 4), **run_figures(result, meter.stop())}
            figures["sustained"] = sustained(figures)
            steps.append(figures)
            if figures["sustained"] or not figures["contended"]:
                break
        return figures["sustained"]

    rate = start_deliveries / shape.deliveries_per_second(1.0)
    good, bad = 0.0, None
    while len(steps) < max_steps:
        if not step(rate):
            bad = rate
            break
        good, rate = rate, rate * factor
    for _ in range(refinements if bad is not None else 0):
        middle = (good + bad) / 2 if good else bad / factor
        if step(middle):
            good = middle
        else:
            bad = middle
    best = max((s for s in steps if s["sustained"]), key=lambda s: s["deliveries_per_second"], default=None)
    summary = "no step sustained" if best is None else f"best {best['deliveries_per_second']:,} deliveries/s"
    Progress(f"{target.name} saturation {shape.name}").done(summary)
    return {
        "target": target.name,
        "shape": shape.name,
        "step_seconds": step_seconds,
        "criteria": f"p99 <= {MAX_P99_MS:g} ms, >= {MIN_COMPLETE:.0%} delivered, no socket dropped",
        "max_sustained_deliveries_per_second": best["deliveries_per_second"] if best else 0,
        "at_rate_per_member": best["rate_per_member"] if best else None,
        "p99_ms_at_max": best["latency_ms"]["p99"] if best else None,
        "server_cpu_utilization_at_max": best["server"]["cpu_utilization"] if best else None,
        "loadgen_cpu_utilization_at_max": best["loadgen_cpu_utilization"] if best else None,
        "ceiling_reached": bad is not None,
        "steps": steps,
    }
