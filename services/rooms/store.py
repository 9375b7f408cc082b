"""Rooms in Redis (see services.common.redis_schema for the keys)."""

from redis.asyncio import Redis

from services.common.redis_schema import (
    Scripts,
    room_key,
    room_names_key,
)
from services.common.room_codes import new_code

CODE_ATTEMPTS = 20


class NoFreeCode(Exception):
    """Every code tried was taken: the code space is too full."""


async def create_room(
    scripts: Scripts, name: str | None, created_at: str, created_by: str, grace_seconds: int, code_length: int
) -> str:
    """Allocate a fresh code atomically and create the room; returns the code."""
    for _ in range(CODE_ATTEMPTS):
        code = new_code(code_length)
        created = await scripts.create_room(
            keys=[room_key(code)], args=[code, name or "", created_at, created_by, grace_seconds]
        )
        if created:
            return code
    raise NoFreeCode


async def get_room(redis: Redis, code: str) -> dict[str, object] | None:
    """The room with its present users (within their leave grace too): three reads of its slot, in a row."""
    async with redis.pipeline(transaction=False) as pipe:
        room, occupancy, names = (
            await pipe.hgetall(room_key(code)).hlen(room_names_key(code)).hvals(room_names_key(code)).execute()
        )
    if not room:
        return None
    return {
        "code": room["code"],
        "name": room["name"] or None,
        "created_at": room["created_at"],
        "created_by": room["created_by"],
        "occupancy": occupancy,
        "members": sorted(names),
    }
