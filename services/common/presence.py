"""The presence reaper: heals occupancy after a gateway dies without a word.

Every gateway and the rooms service run it; the work is one Lua script, so
any number of reapers can run at once without removing a connection twice.
"""

import logging
from datetime import UTC, datetime

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.background import Duties
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
        removed = int(
            await scripts.reap(
                keys=[GATEWAYS, LINGERING], args=[int(timeout_seconds * 1000), utc_now_iso(), history_max, REAP_BATCH]
            )
        )
        total += removed
        if removed < REAP_BATCH:
            return total


async def run_reaper(redis: Redis, scripts: Scripts, timeout_seconds: float, history_max: int, duties: Duties) -> None:
    """Reap a few times per timeout until the service stops.

    Right after Redis restarts, every gateway's heartbeat looks old (none
    could be written while it was down), so nothing is reaped until Redis
    has been up for one timeout and live gateways have beaten again.
    """
    interval = min(1.0, timeout_seconds / 5)
    while True:
        try:
            uptime = int((await redis.info("server"))["uptime_in_seconds"])
            if uptime >= timeout_seconds:
                removed = await reap_once(scripts, timeout_seconds, history_max)
                if removed:
                    log.info("reaped connections of dead or drained gateways", extra={"removed": removed})
        except RedisError as exc:
            log.warning("reaper could not reach Redis", extra={"error": str(exc)})
        if not await duties.pause(interval):
            return
