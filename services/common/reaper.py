"""The presence reaper: ends the leave grace that ran out, and heals occupancy after a gateway dies.

Every gateway and the rooms service run it; the work is one Lua script, so
any number of reapers can run at once without handling an entry twice.
"""

import logging
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from services.common.background import Duties
from services.common.clock import utc_now_iso
from services.common.redis_schema import GATEWAYS, LINGERING, Scripts
from services.common.settings import ServiceSettings

log = logging.getLogger(__name__)

REAP_BATCH = 500


@dataclass(frozen=True, slots=True)
class ReaperSettings:
    presence_timeout_seconds: float
    leave_grace_seconds: float
    history_max: int

    @classmethod
    def of(cls, settings: ServiceSettings) -> "ReaperSettings":
        return cls(settings.presence_timeout_seconds, settings.leave_grace_seconds, settings.room_history_max)


async def reap_once(scripts: Scripts, settings: ReaperSettings) -> int:
    """Handle what is due now; returns how many entries were handled."""
    total = 0
    while True:
        handled = int(
            await scripts.reap(
                keys=[GATEWAYS, LINGERING],
                args=[
                    int(settings.presence_timeout_seconds * 1000),
                    utc_now_iso(),
                    settings.history_max,
                    REAP_BATCH,
                    int(settings.leave_grace_seconds * 1000),
                ],
            )
        )
        total += handled
        if handled < REAP_BATCH:
            return total


async def run_reaper(redis: Redis, scripts: Scripts, settings: ReaperSettings, duties: Duties) -> None:
    """Reap a few times per timeout until the service stops.

    Right after Redis restarts, every gateway's heartbeat looks old (none
    could be written while it was down), so nothing is reaped until Redis
    has been up for one timeout and live gateways have beaten again.
    """
    interval = min(1.0, settings.presence_timeout_seconds / 5, settings.leave_grace_seconds / 5)
    while True:
        try:
            uptime = int((await redis.info("server"))["uptime_in_seconds"])
            if uptime >= settings.presence_timeout_seconds:
                handled = await reap_once(scripts, settings)
                if handled:
                    log.info("reaped dead gateways' sockets and ended leave graces", extra={"handled": handled})
        except RedisError as exc:
            log.warning("reaper could not reach Redis", extra={"error": str(exc)})
        if not await duties.pause(interval):
            return
