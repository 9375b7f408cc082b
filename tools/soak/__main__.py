"""``python -m tools.soak [--target dev|compose] [--minutes M] [--faults N] [--json PATH]``: the soak; exit status 1 when the checker finds a fault."""

import argparse
import asyncio
import logging
import sys
from pathlib import Path

import orjson
from pydantic import ValidationError

from tools.soak.compose import DockerError
from tools.soak.run import run
from tools.soak.settings import FAULT_KINDS, TARGETS, SoakSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target", choices=TARGETS,
                        help="a dev stack of its own (default), or docker-compose.yml under a compose project of its own")
    parser.add_argument("--ref", help="compose: build the images from this git ref (e.g. HEAD) instead of the working tree")
    parser.add_argument("--minutes", type=float, help="how long members send and faults are injected (default 10)")
    parser.add_argument("--seconds", type=float, help="the same in seconds")
    parser.add_argument("--rooms", type=int)
    parser.add_argument("--members", type=int, help="members per room")
    parser.add_argument("--gateways", type=int, help="gateway replicas (default 2 on a dev stack, 3 on compose)")
    parser.add_argument("--faults", type=int, help="faults to inject, spread over the run (default 30)")
    parser.add_argument("--kinds", help=f"comma-separated fault kinds (default all: {','.join(FAULT_KINDS)})")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--json", type=Path, help="write the report as JSON to this file")
    parser.add_argument("--logs", type=Path, help="keep the target's logs in this folder (default: thrown away)")
    args = parser.parse_args()
    overrides = {
        key: value
        for key, value in {
            "target": args.target,
            "ref": args.ref,
            "seconds": args.seconds if args.minutes is None else args.minutes * 60,
            "rooms": args.rooms,
            "members": args.members,
            "gateways": args.gateways,
            "faults": args.faults,
            "kinds": tuple(args.kinds.split(",")) if args.kinds else None,
            "seed": args.seed,
        }.items()
        if value is not None
    }
    try:
        settings = SoakSettings(**overrides)
    except ValidationError as exc:
        parser.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        report = asyncio.run(run(settings, args.logs))
    except DockerError as exc:
        sys.exit(f"soak: {exc}")
    sys.stdout.write(report.table() + "\n")
    if args.json:
        args.json.write_bytes(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2))
    if report.examples or report.incidents:
        details = {**report.examples, "incidents": report.incidents, "faults": report.fault_log}
        sys.stdout.write(orjson.dumps(details, option=orjson.OPT_INDENT_2).decode() + "\n")
    sys.exit(0 if report.clean else 1)


if __name__ == "__main__":
    main()
