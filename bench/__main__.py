"""``python -m bench``: see bench/__init__.py and ``--help``."""

import signal
import sys

from bench import options, report, runner


def main() -> None:
    chosen = options.parse()
    # SIGTERM unwinds like Ctrl-C, so the stack's processes are stopped, never orphaned.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    results, out_dir = runner.run(chosen)
    sys.stdout.write(report.render(results))
    sys.stdout.write(f"\nreport: {report.write(results, out_dir)}\n")


# Guarded: the load-generator processes are spawned, and spawning re-imports the main module.
if __name__ == "__main__":
    main()
