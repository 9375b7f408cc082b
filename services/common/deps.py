"""Dependencies every service shares, as ``Annotated`` aliases over ``app.state``."""

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends
from redis.asyncio import Redis
from starlette.requests import HTTPConnection

from services.common.redis_schema import Scripts
from services.common.sessions import request_principal
from services.common.tokens import Principal


def app_state(name: str) -> Callable[[HTTPConnection], Awaitable[object]]:
    """A dependency returning ``app.state.<name>``, a resource the lifespan opened (for requests and sockets)."""

    async def get(connection: HTTPConnection) -> object:
        return getattr(connection.app.state, name)

    return get


RedisDep = Annotated[Redis, Depends(app_state("redis"))]
ScriptsDep = Annotated[Scripts, Depends(app_state("scripts"))]
AuthenticatedUser = Annotated[Principal, Depends(request_principal)]
