"""The auth API: register, login, logout, me, JWKS."""

import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status

from services.auth import store
from services.auth.deps import CurrentUser, HasherDep, PoolDep, RedisDep, ScriptsDep, SettingsDep, SignerDep
from services.auth.schemas import LoginRequest, LoginResponse, RegisteredUser, RegisterRequest, UserOut
from services.common import ratelimit
from services.common.ratelimit import Limit
from services.common.redis_schema import REVOCATIONS_CHANNEL, revoked_key
from services.common.sessions import SESSION_COOKIE

router = APIRouter(prefix="/api/auth", tags=["auth"])

INVALID_LOGIN = "Invalid email or password."


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _too_many(retry_after: int, what: str) -> HTTPException:
    return HTTPException(
        status.HTTP_429_TOO_MANY_REQUESTS,
        detail=f"Too many {what}; try again in {retry_after} seconds.",
        headers={"Retry-After": str(retry_after)},
    )


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=RegisteredUser)
async def register(
    body: RegisterRequest, request: Request, pool: PoolDep, scripts: ScriptsDep, settings: SettingsDep, hasher: HasherDep
) -> RegisteredUser:
    limit = Limit(settings.registrations_per_address, settings.rate_limit_window_seconds)
    verdict = await ratelimit.hit(scripts, "register", _client_address(request), limit)
    if not verdict.allowed:
        raise _too_many(verdict.retry_after, "registrations")
    password_hash = await hasher.hash(body.password)
    try:
        user = await store.create_user(pool, body.email, body.username, password_hash)
    except store.EmailTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="An account with this email already exists.") from None
    except store.UsernameTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="This username is already taken.") from None
    return RegisteredUser(id=user.id, email=user.email, username=user.username, created_at=user.created_at)


@router.post("/login", response_model=LoginResponse)
async def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    pool: PoolDep,
    redis: RedisDep,
    scripts: ScriptsDep,
    settings: SettingsDep,
    signer: SignerDep,
    hasher: HasherDep,
) -> LoginResponse:
    window = settings.rate_limit_window_seconds
    account = body.email.strip().lower()
    per_address = await ratelimit.hit(
        scripts, "login-address", _client_address(request), Limit(settings.login_attempts_per_address, window)
    )
    if not per_address.allowed:
        raise _too_many(per_address.retry_after, "login attempts")
    account_limit = Limit(settings.login_failures_per_account, window)
    per_account = await ratelimit.exhausted(redis, "login-account", account, account_limit)
    if not per_account.allowed:
        raise _too_many(per_account.retry_after, "failed logins for this account")

    user = await store.user_by_email(pool, account)
    ok, new_hash = await hasher.verify(body.password, user.password_hash if user else None)
    if user is None or not ok:
        await ratelimit.hit(scripts, "login-account", account, account_limit)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INVALID_LOGIN)
    if new_hash:
        await store.update_password_hash(pool, user.id, new_hash)

    session = await store.create_session(pool, user.id, settings.access_token_ttl_seconds)
    token, expires_at = signer.issue(str(user.id), user.username, str(session.id))
    expires_in = max(0, expires_at - int(time.time()))
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=expires_in,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )
    return LoginResponse(
        access_token=token,
        expires_in=expires_in,
        user=UserOut(id=user.id, email=user.email, username=user.username),
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: CurrentUser, pool: PoolDep, redis: RedisDep, settings: SettingsDep) -> Response:
    """End the session everywhere: Postgres durably, Redis for the other services, sockets by broadcast."""
    await store.revoke_session(pool, principal.session_id)
    ttl = max(1, principal.expires_at - int(time.time()))
    async with redis.pipeline(transaction=True) as pipe:
        await pipe.set(revoked_key(principal.session_id), 1, ex=ttl).publish(
            REVOCATIONS_CHANNEL, principal.session_id
        ).execute()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=settings.cookie_secure)
    return response


@router.get("/me", response_model=UserOut)
async def me(principal: CurrentUser, pool: PoolDep) -> UserOut:
    user = await store.user_by_id(pool, principal.user_id)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="This account no longer exists.")
    return UserOut(id=user.id, email=user.email, username=user.username)


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    return request.app.state.verifier.jwks
