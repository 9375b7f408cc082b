"""A Sala gateway under tracemalloc: ``python -m bench.memprobe --snapshots DIR`` runs one replica as
``python -m services.gateway`` does (same settings, from the environment). The first SIGUSR1 starts
tracing (tracing from the start would make the imports take minutes) and every SIGUSR1 writes a
tracemalloc snapshot to ``DIR/<n>.snapshot`` (renamed into place once whole). The memory workload
(bench/workloads/memprobe.py) compares two of them to say what one idle socket holds, and where.
"""

import argparse
import itertools
import os
import runpy
import signal
import tracemalloc
from pathlib import Path

# Enough frames to reach Sala's own code from the depths of asyncio, uvicorn and websockets.
FRAMES = 16


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshots", type=Path, required=True)
    args = parser.parse_args()
    numbers = itertools.count()

    def snapshot(signum: int, frame: object) -> None:
        if not tracemalloc.is_tracing():
            tracemalloc.start(FRAMES)
        path = args.snapshots / f"{next(numbers)}.snapshot"
        tracemalloc.take_snapshot().dump(str(path) + ".part")
        os.replace(str(path) + ".part", path)

    signal.signal(signal.SIGUSR1, snapshot)
    runpy.run_module("services.gateway", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
