"""Fixed-window rate limits in Redis, shared by every replica."""

from dataclasses import dataclass

from redis.asyncio import Redis

from services.common.redis_schema import Scripts, ratelimit_key


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int


async def hit(scripts: Scripts, scope: str, subject: str, limit: Limit) -> Verdict:
    """Count one attempt against ``limit``; over it, say how long to wait."""
    count, ttl = await scripts.rate_limit_hit(
        keys=[ratelimit_key(scope, subject)], args=[limit.window_seconds, limit.count]
    )
    allowed = int(count) <= limit.count
    return Verdict(allowed=allowed, retry_after=0 if allowed else max(1, int(ttl)))


async def exhausted(redis: Redis, scope: str, subject: str, limit: Limit) -> Verdict:
    """Whether ``limit`` is already used up, without counting an attempt."""
    key = ratelimit_key(scope, subject)
    async with redis.pipeline(transaction=False) as pipe:
        count, ttl = await pipe.get(key).ttl(key).execute()
    if count is not None and int(count) >= limit.count:
        return Verdict(allowed=False, retry_after=max(1, int(ttl)))
    return Verdict(allowed=True, retry_after=0)
