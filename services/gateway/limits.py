"""Token buckets: the rate limits of a socket, a user or a connection."""

import time


class TokenBucket:
    """Allows ``rate`` messages per second on average and ``burst`` at once."""

    __slots__ = ("rate", "burst", "_clock", "_tokens", "_updated")

    def __init__(self, rate: float, burst: int, clock=time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()

    def full(self) -> bool:
        """Whether the bucket has refilled to its burst: it remembers nothing of past use."""
        return min(self.burst, self._tokens + (self._clock() - self._updated) * self.rate) >= self.burst

    def allow(self) -> bool:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
