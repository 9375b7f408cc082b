"""The presence reaper: heals occupancy after a gateway dies without a word.

Every gateway and the rooms service run it; the work is one Lua script, so
any number of reapers can run at once without removing a connection twice.
"""

import asyncio
import logging
import time
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.redis_schema import GATEWAYS, LINGERING, Scripts

log = logging.getLogger(__name__)

REAP_BATCH = 500


def utc_now_iso() -> str:
    """ISO 8601 UTC with milliseconds, the ``ts`` of every event."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def reap_once(scripts: Scripts, timeout_seconds: float, history_max: int) -> int:
    """Remove what is due now; returns how many connections were removed."""
    total = 0
    while True:
        removed = await scripts.reap(
            keys=[GATEWAYS, LINGERING],
            args=[int(time.time() * 1000), int(timeout_seconds * 1000), utc_now_iso(), history_max, REAP_BATCH],
        )
        total += int(removed)
        if int(removed) < REAP_BATCH:
            return total


async def run_reaper(redis: Redis, scripts: Scripts, timeout_seconds: float, history_max: int) -> None:
    """Reap forever, a few times per timeout, until cancelled; Redis outages are waited out."""
    interval = min(1.0, timeout_seconds / 5)
    while True:
        try:
            removed = await reap_once(scripts, timeout_seconds, history_max)
            if removed:
                log.info("reaped connections of dead or drained gateways", extra={"removed": removed})
        except RedisError as exc:
            log.warning("reaper could not reach Redis", extra={"error": str(exc)})
        await asyncio.sleep(interval)
