"""Just enough of the Redis protocol (RESP2) to pipeline commands and count their replies.

The cluster workload drives Redis hard from Python on a machine whose other
CPU runs Redis itself, so its load generator skips redis-py: commands are
encoded straight to bytes, and replies are only counted (errors kept), not
turned into Python objects.
"""

CRLF = b"\r\n"


def _bytes(arg: bytes | str | int) -> bytes:
    if isinstance(arg, bytes):
        return arg
    return str(arg).encode()


def bulk(arg: bytes | str | int) -> bytes:
    """One argument as a RESP bulk string."""
    data = _bytes(arg)
    return b"$%d\r\n%s\r\n" % (len(data), data)


def command(*args: bytes | str | int) -> bytes:
    """One command as a RESP array of bulk strings."""
    return b"*%d\r\n" % len(args) + b"".join(bulk(arg) for arg in args)


class ReplyCounter:
    """Counts complete top-level replies in a stream fed in arbitrary pieces.

    ``errors`` counts the replies that are errors (``-ERR ...``) and
    ``first_error`` keeps the first one's text; an error inside an array
    (a script's reply never has one) counts as part of its array.
    """

    def __init__(self) -> None:
        self.replies = 0
        self.errors = 0
        self.first_error: str | None = None
        self._buffer = b""

    def feed(self, data: bytes) -> int:
        """Add received bytes; returns how many replies they completed."""
        buffer = self._buffer + data if self._buffer else data
        position, completed = 0, 0
        while True:
            end = _reply_end(buffer, position)
            if end is None:
                break
            if buffer[position : position + 1] == b"-":
                self.errors += 1
                if self.first_error is None:
                    self.first_error = buffer[position + 1 : end - 2].decode(errors="replace")
            position = end
            completed += 1
        self._buffer = buffer[position:]
        self.replies += completed
        return completed


def _reply_end(buffer: bytes, position: int) -> int | None:
    """Where the reply starting at ``position`` ends, or None if it is not all there yet."""
    line_end = buffer.find(CRLF, position)
    if line_end < 0:
        return None
    kind = buffer[position : position + 1]
    if kind in (b"+", b"-", b":"):
        return line_end + 2
    length = int(buffer[position + 1 : line_end])
    if kind == b"$":
        end = line_end + 2 + max(length, 0) + (2 if length >= 0 else 0)
        return end if end <= len(buffer) else None
    if kind == b"*":
        end = line_end + 2
        for _ in range(max(length, 0)):
            end = _reply_end(buffer, end)
            if end is None:
                return None
        return end
    raise ValueError(f"not a RESP reply: {buffer[position : position + 20]!r}")
