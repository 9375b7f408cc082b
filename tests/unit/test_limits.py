"""The per-connection token bucket."""

from services.gateway.limits import TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_steady_rate():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=20, clock=clock)
    assert sum(bucket.allow() for _ in range(25)) == 20
    clock.now += 0.5
    assert sum(bucket.allow() for _ in range(10)) == 5


def test_tokens_never_exceed_the_burst():
    clock = Clock()
    bucket = TokenBucket(rate=10, burst=3, clock=clock)
    clock.now += 100
    assert sum(bucket.allow() for _ in range(10)) == 3
