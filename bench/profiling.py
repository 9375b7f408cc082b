"""Where the gateway's CPU goes under fan-out: py-spy sampled from outside the process.

Two py-spy recorders run side by side: one writes the collapsed stacks,
pausing the gateway for each sample so every stack is whole (only one
recorder may pause a process), and those are summed here into self time per
function and per package, the table the report prints; the other samples
without pausing and writes a flame graph (SVG) to look at. Only samples
where the gateway's thread was busy count (py-spy drops idle ones), so the
shares are shares of its CPU.
"""

import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from bench.context import Context
from bench.environment import Target
from bench.workloads.fanout import Shape, run_figures

SAMPLE_RATE = 100
# The servers' own code: time spent under these frames, callees included, says which duty costs what.
OWN_CODE = ("services/", "bench/baseline.py")
FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
PACKAGES = [
    ("services/gateway", "sala gateway"),
    ("services/", "sala common"),
    ("websockets/", "websockets"),
    ("uvicorn/", "uvicorn"),
    ("starlette/", "starlette"),
    ("fastapi/", "fastapi"),
    ("redis/", "redis-py"),
    ("asyncio/", "asyncio"),
    ("orjson", "orjson"),
]


def py_spy() -> str:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(found).exists():
        raise RuntimeError("py-spy is not installed: make install (the 'bench' extra)")
    return found


def _package(file: str) -> str:
    for marker, name in PACKAGES:
        if marker in file:
            return name
    return "other: " + Path(file).name


def summarize(collapsed: Path, top: int = 15) -> dict:
    """Self time per function and per package, and time under each of the server's own functions."""
    self_time: Counter = Counter()
    packages: Counter = Counter()
    own: Counter = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = [FRAME.match(frame) for frame in stack.split(";")]
        names = [f"{m['function']} ({m['file']})" if m else "?" for m in frames]
        total += count
        self_time[names[-1]] += count
        leaf = frames[-1]
        packages[_package(leaf["file"]) if leaf else "?"] += count
        for name in {
            name for name, m in zip(names, frames, strict=True) if m and any(p in m["file"] for p in OWN_CODE)
        }:
            own[name] += count

    def shares(counter: Counter) -> list[dict]:
        return [{"what": name, "share": round(count / total, 4)} for name, count in counter.most_common(top)]

    return {
        "samples": total,
        "self_by_package": shares(packages),
        "self": shares(self_time),
        # Entry points (the module, serve) are under every sample and say nothing.
        "own_code_inclusive": shares(Counter({name: count for name, count in own.items() if count < total})),
    }


def profile(ctx: Context, target: Target, shape: Shape, duration: float, out_dir: Path) -> dict:
    """One more fan-out run on the connected population, with the gateway sampled throughout."""
    svg, collapsed = out_dir / f"{target.name}-profile.svg", out_dir / f"{target.name}-profile.collapsed"
    common = ["record", "--pid", str(target.pid), "--rate", str(SAMPLE_RATE), "--duration", str(int(duration) + 1)]
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    recorders = [
        subprocess.Popen([py_spy(), *common, "--format", "raw", "-o", str(collapsed)], **quiet),
        subprocess.Popen([py_spy(), *common, "--nonblocking", "--format", "flamegraph", "-o", str(svg)], **quiet),
    ]
    time.sleep(0.5)
    meter = ctx.meter(target).start()
    result = ctx.swarm.run("prof", shape.rate, duration, f"{target.name} profiled fan-out {shape.name}@{shape.rate:g}")
    figures = run_figures(result, meter.stop())
    for recorder in recorders:
        recorder.wait(60)
    return {
        "target": target.name,
        "shape": shape.name,
        "rate_per_member": shape.rate,
        "flamegraph": str(svg.name),
        "collapsed_stacks": str(collapsed.name),
        "run": figures,
        **summarize(collapsed),
    }
