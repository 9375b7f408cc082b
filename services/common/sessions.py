"""Authenticating a request or a WebSocket handshake: find the token, verify it, check revocation."""

from collections.abc import Mapping

from fastapi import HTTPException, Request, status
from redis.asyncio import Redis

from services.common.redis_schema import (
    REVOCATIONS_CHANNEL,
    REVOCATIONS_LOADED,
    revoked_key,
)
from services.common.tokens import InvalidToken, Principal, TokenVerifier

SESSION_COOKIE = "chat_session"


def token_from(headers: Mapping[str, str], cookies: Mapping[str, str]) -> tuple[str | None, bool]:
    """The access token and whether it came from the cookie (which needs an Origin check)."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), False
    cookie = cookies.get(SESSION_COOKIE)
    return (cookie, True) if cookie else (None, False)


async def authenticate(token: str | None, verifier: TokenVerifier, redis: Redis) -> Principal:
    """The principal of a valid, unrevoked token; raises InvalidToken otherwise."""
    if not token:
        raise InvalidToken("not authenticated")
    principal = verifier.verify(token)
    if await session_revoked(redis, principal.session_id):
        raise InvalidToken("session ended")
    return principal


class RevocationsUnknown(Exception):
    """Redis lost the revocation list (it restarted empty) and auth has not restored it yet."""


def revocation_lookups(session_id: str) -> list[tuple[str, str]]:
    """The two reads a session check makes, for a batch of the caller's: the session's mark, and whether
    the marks are loaded at all."""
    return [("EXISTS", revoked_key(session_id)), ("EXISTS", REVOCATIONS_LOADED)]


def revoked_by(marked: object, loaded: object) -> bool:
    """The verdict of the two lookups' replies; RevocationsUnknown rather than trust a token Redis may have
    forgotten revoking."""
    if not loaded:
        raise RevocationsUnknown
    return bool(marked)


async def session_revoked(redis: Redis, session_id: str) -> bool:
    """Whether the session was revoked; a Redis lookup, never a call to auth."""
    async with redis.pipeline(transaction=False) as pipe:
        for command in revocation_lookups(session_id):
            pipe.execute_command(*command)
        marked, loaded = await pipe.execute()
    return revoked_by(marked, loaded)


async def publish_revocations(redis: Redis, session_ids: list[str], ttl_seconds: int) -> None:
    """Mark sessions revoked for every service, then tell every gateway to close their sockets.

    In that order, and in two steps (the marks may live on several cluster
    nodes): a socket opened between the two is still closed by the message,
    since the gateway watches a session before it checks the mark.
    """
    if not session_ids:
        return
    async with redis.pipeline(transaction=False) as pipe:
        for session_id in session_ids:
            pipe.set(revoked_key(session_id), 1, ex=max(1, ttl_seconds))
        await pipe.execute()
    for session_id in session_ids:
        await redis.publish(REVOCATIONS_CHANNEL, session_id)


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_allowed(origin: str | None, allowed: list[str]) -> bool:
    """A cookie-authenticated write must come from one of our pages.

    Browsers send ``Origin`` on every cross-site write; a request without one
    comes from a non-browser client, which cannot ride a user's cookie.
    """
    return origin is None or origin.rstrip("/") in allowed


async def request_principal(request: Request) -> Principal:
    """The caller of an HTTP request, or a 401 (403 for a cross-site write)."""
    token, from_cookie = token_from(request.headers, request.cookies)
    if (
        from_cookie
        and request.method not in SAFE_METHODS
        and not origin_allowed(request.headers.get("origin"), request.app.state.settings.allowed_origins)
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Cross-site request refused.")
    try:
        return await authenticate(token, request.app.state.verifier, request.app.state.redis)
    except RevocationsUnknown as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="Sessions cannot be checked right now; try again in a moment.",
            headers={"Retry-After": "1"},
        ) from exc
    except InvalidToken as exc:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Not authenticated: log in first.",
            headers={"WWW-Authenticate": "Bearer"},
        ) from exc
