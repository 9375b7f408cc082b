"""A one-line progress bar on stderr: the bench runs for minutes and should show it is alive."""

import sys
import time

WIDTH = 30


class Progress:
    """Fills over ``expected_seconds`` (never past 99% until done); without an estimate, counts seconds."""

    def __init__(self, label: str, expected_seconds: float | None = None) -> None:
        self.label = label
        self.expected = expected_seconds
        self.started = time.monotonic()
        self._interactive = sys.stderr.isatty()
        self._last_line = 0.0
        self.update()

    def update(self) -> None:
        elapsed = time.monotonic() - self.started
        if not self._interactive and elapsed - self._last_line < 5 and elapsed > 0:
            return
        self._last_line = elapsed
        self._write(self._bar(elapsed, done=False), "")

    def done(self, note: str = "") -> None:
        self._write(self._bar(time.monotonic() - self.started, done=True), note, end="\n")

    def _bar(self, elapsed: float, done: bool) -> str:
        if self.expected:
            fraction = 1.0 if done else min(0.99, elapsed / self.expected)
            filled = int(fraction * WIDTH)
            return f"[{'#' * filled}{'.' * (WIDTH - filled)}] {fraction:4.0%} {elapsed:5.1f}s"
        return f"[{'done' if done else 'busy':^{WIDTH}}] {elapsed:5.1f}s"

    def _write(self, bar: str, note: str, end: str = "") -> None:
        line = f"{self.label:<34} {bar} {note}"
        if self._interactive:
            sys.stderr.write("\r\033[K" + line + end)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()
