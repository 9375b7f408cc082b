"""The presence reaper: hands a dead gateway's sockets to the leave grace, and ends the graces that ran out.

Every gateway and the rooms service run it. Each step is a script on one
room's keys or on one index, idempotent, so any number of reapers can run at
once without removing a socket twice or emitting a leave twice.
"""

import logging
from dataclasses import dataclass

from redis.exceptions import RedisError

from services.common.background import Duties
from services.common.clock import utc_now_iso
from services.common.redis_client import RedisClient
from services.common.redis_schema import (
    DEAD_GATEWAYS,
    GATEWAYS,
    GRACE_VERSIONS,
    GRACES,
    Scripts,
    gateway_rooms_key,
    room_key,
)
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


async def index_grace(scripts: Scripts, code: str, next_due: int, version: int) -> None:
    """Point the reaper at a room whose grace state a script just answered."""
    if next_due > 0:
        await scripts.index_grace(keys=[GRACES, GRACE_VERSIONS], args=[code, next_due, version])


async def _reap_dead_gateways(redis: RedisClient, scripts: Scripts, settings: ReaperSettings) -> int:
    """Hand the sockets of gateways silent for the timeout to the leave grace, room by room."""
    handled = 0
    grace_ms = int(settings.leave_grace_seconds * 1000)
    for gateway_id in await scripts.mark_dead(
        keys=[GATEWAYS, DEAD_GATEWAYS], args=[int(settings.presence_timeout_seconds * 1000)]
    ):
        rooms = gateway_rooms_key(gateway_id)
        codes = await redis.srandmember(rooms, REAP_BATCH)
        for code in codes:
            next_due, version, _ = await scripts.drop_gateway(
                keys=[room_key(code)], args=[gateway_id, grace_ms, utc_now_iso(), settings.history_max]
            )
            await index_grace(scripts, code, int(next_due), int(version))
            await redis.srem(rooms, code)
        handled += len(codes)
        if len(codes) < REAP_BATCH:
            await redis.srem(DEAD_GATEWAYS, gateway_id)
    return handled


async def _expire_graces(redis: RedisClient, scripts: Scripts, settings: ReaperSettings) -> int:
    """Make the users whose grace ran out leave, in every room the index says is due."""
    seconds, micros = await redis.time()
    now_ms = seconds * 1000 + micros // 1000
    due = await redis.zrangebyscore(GRACES, "-inf", now_ms, start=0, num=REAP_BATCH)
    for code in due:
        next_due, version, live = await scripts.expire_graces(
            keys=[room_key(code)], args=[utc_now_iso(), settings.history_max, REAP_BATCH]
        )
        await scripts.settle_grace(keys=[GRACES, GRACE_VERSIONS], args=[code, next_due, version, live])
    return len(due)


async def reap_once(redis: RedisClient, scripts: Scripts, settings: ReaperSettings) -> int:
    """Handle what is due now; returns how many rooms were handled."""
    total = 0
    while True:
        handled = await _reap_dead_gateways(redis, scripts, settings) + await _expire_graces(redis, scripts, settings)
        total += handled
        if handled < REAP_BATCH:
            return total


async def redis_uptime(redis: RedisClient) -> int:
    """Seconds Redis has been up: in a cluster, the youngest node's."""
    info = await redis.info("server")
    if "uptime_in_seconds" in info:
        return int(info["uptime_in_seconds"])
    return min(int(node["uptime_in_seconds"]) for node in info.values())


async def run_reaper(redis: RedisClient, scripts: Scripts, settings: ReaperSettings, duties: Duties) -> None:
    """Reap a few times per timeout until the service stops.

    Right after Redis restarts, every gateway's heartbeat looks old (none
    could be written while it was down), so no gateway is presumed dead until
    Redis has been up for one timeout and live gateways have beaten again.
    """
    interval = min(1.0, settings.presence_timeout_seconds / 5, settings.leave_grace_seconds / 5)
    while True:
        try:
            uptime = await redis_uptime(redis)
            if uptime >= settings.presence_timeout_seconds:
                handled = await reap_once(redis, scripts, settings)
                if handled:
                    log.info("reaped dead gateways' sockets and ended leave graces", extra={"rooms": handled})
        except RedisError as exc:
            log.warning("reaper could not reach Redis", extra={"error": str(exc)})
        if not await duties.pause(interval):
            return
