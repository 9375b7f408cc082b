"""Fixed-window rate limits in Redis, shared by every replica."""

from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import HTTPException, status
from redis.asyncio import RedisCluster
from starlette.requests import HTTPConnection

from services.common.redis_schema import Scripts, ratelimit_key
from services.common.settings import ServiceSettings


@dataclass(frozen=True, slots=True)
class Limit:
    count: int
    window_seconds: int


@dataclass(frozen=True, slots=True)
class Budget:
    """One counter of a reservation: ``limit`` attempts of ``subject`` in ``scope``."""

    scope: str
    subject: str
    limit: Limit

    @property
    def key(self) -> str:
        return ratelimit_key(self.scope, self.subject)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: int


def room_miss_budgets(settings: ServiceSettings, user_id: str, address: str) -> list[Budget]:
    """The budgets a lookup of a code that is not live spends, shared by the rooms API and the chat socket."""
    window = settings.rate_limit_window_seconds
    return [
        Budget("room-miss-user", user_id, Limit(settings.room_lookup_misses_per_user, window)),
        Budget("room-miss-address", address, Limit(settings.room_lookup_misses_per_address, window)),
    ]


def client_address(connection: HTTPConnection) -> str:
    """The client as the edge reports it: uvicorn believes X-Forwarded-For only from SALA_TRUSTED_PROXIES."""
    return connection.client.host if connection.client else "unknown"


def too_many(retry_after: int, what: str) -> HTTPException:
    """The answer over a limit: 429, Retry-After, and a detail that says what and for how long."""
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"Too many {what}; try again in {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)},
    )


async def hit(scripts: Scripts, scope: str, subject: str, limit: Limit) -> Verdict:
    """Count one attempt against ``limit``; over it, say how long to wait."""
    count, ttl = await scripts.rate_limit_hit(
        keys=[ratelimit_key(scope, subject)], args=[limit.window_seconds, limit.count]
    )
    allowed = int(count) <= limit.count
    return Verdict(allowed=allowed, retry_after=0 if allowed else max(1, int(ttl)))


async def reserve(scripts: Scripts, budgets: Sequence[Budget]) -> Verdict:
    """Take one attempt from every budget before the costly work, or from none if any is used up.

    One atomic step: N concurrent callers against a budget of K get exactly
    K admissions, unlike a read-only check followed by a hit afterwards. In
    a Redis Cluster the counters live on several nodes, so each is reserved
    atomically on its own, in turn, and those taken are given back if a later
    one is used up: no budget is ever overdrawn, and a refusal may at worst
    have briefly held an attempt of another.
    """
    if not isinstance(scripts.rate_limit_reserve.registered_client, RedisCluster):
        return await _reserve(scripts, budgets)
    for taken, budget in enumerate(budgets):
        verdict = await _reserve(scripts, [budget])
        if not verdict.allowed:
            await refund(scripts, budgets[:taken])
            return verdict
    return Verdict(allowed=True, retry_after=0)


async def _reserve(scripts: Scripts, budgets: Sequence[Budget]) -> Verdict:
    allowed, wait = await scripts.rate_limit_reserve(
        keys=[budget.key for budget in budgets],
        args=[value for budget in budgets for value in (budget.limit.window_seconds, budget.limit.count)],
    )
    return Verdict(allowed=bool(int(allowed)), retry_after=int(wait))


async def refund(scripts: Scripts, budgets: Sequence[Budget]) -> None:
    """Give back an attempt ``reserve`` took, when it turned out not to count (a success)."""
    if not budgets:
        return
    if isinstance(scripts.rate_limit_refund.registered_client, RedisCluster):
        for budget in budgets:
            await scripts.rate_limit_refund(keys=[budget.key], args=[])
    else:
        await scripts.rate_limit_refund(keys=[budget.key for budget in budgets], args=[])
