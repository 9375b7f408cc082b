"""Redis clients that ride out a server restart on their own."""

import asyncio

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

from services.common.redis_schema import Scripts


def create_redis(url: str) -> Redis:
    """A pooled client that retries commands with bounded backoff while Redis is away."""
    return Redis.from_url(
        url,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=5),
        retry_on_error=[ConnectionError, TimeoutError],
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=10,
    )


READY_CHECK_SECONDS = 1.0


async def redis_ready(redis: Redis) -> bool:
    """Whether Redis answers now; a probe must not wait out the client's retries."""
    try:
        async with asyncio.timeout(READY_CHECK_SECONDS):
            return bool(await redis.ping())
    except (ConnectionError, TimeoutError, OSError):
        return False


__all__ = ["Scripts", "create_redis", "redis_ready"]
