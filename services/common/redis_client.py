"""Redis clients that ride out a server restart on their own."""

import asyncio

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, TimeoutError

# Enough for every command in flight on a busy replica; past it, callers wait for a free connection
# (rather than fail, which redis-py's default pool does).
MAX_CONNECTIONS = 64
POOL_WAIT_SECONDS = 5.0


def create_redis(url: str, retries: int = 5) -> Redis:
    """A pooled client that retries commands with bounded backoff while Redis is away.

    ``retries=0`` is for pub/sub, whose owner must see every lost connection:
    a library retry would re-subscribe silently and lose what was published meanwhile.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=POOL_WAIT_SECONDS,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=retries),
        retry_on_error=[ConnectionError, TimeoutError],
        socket_connect_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=10,
    )
    return Redis.from_pool(pool)


READY_CHECK_SECONDS = 1.0


async def redis_ready(redis: Redis) -> bool:
    """Whether Redis answers now; a probe must not wait out the client's retries."""
    try:
        async with asyncio.timeout(READY_CHECK_SECONDS):
            return bool(await redis.ping())
    except (ConnectionError, TimeoutError, OSError):
        return False

