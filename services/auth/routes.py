"""The auth API: register, login, refresh, logout, logout-all, me, JWKS."""

import hashlib
import secrets
import time
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status

from services.auth import store
from services.auth.cookies import (
    REFRESH_COOKIE,
    clear_session_cookies,
    set_session_cookies,
)
from services.auth.deps import (
    CommonPasswordsDep,
    CurrentUser,
    HasherDep,
    MetricsDep,
    PoolDep,
    RedisDep,
    ScriptsDep,
    SettingsDep,
    SignerDep,
)
from services.auth.passwords import HasherBusy, password_problem
from services.auth.schemas import (
    LoginRequest,
    LoginResponse,
    RegisteredUser,
    RegisterRequest,
    UserOut,
)
from services.auth.settings import AuthSettings
from services.common import ratelimit
from services.common.http import error_responses
from services.common.ratelimit import Budget, Limit
from services.common.redis_schema import ratelimit_key
from services.common.sessions import origin_allowed, publish_revocations
from services.common.tokens import TokenSigner

router = APIRouter(prefix="/api/auth", tags=["auth"])

INVALID_LOGIN = "Invalid email or password."
SESSION_ERRORS = error_responses(401, 403, 503)
NO_STORE = {"Cache-Control": "no-store"}
# Seconds a caller turned away by busy password hashing is asked to wait.
BUSY_RETRY_AFTER = 1


def _busy() -> HTTPException:
    return HTTPException(
        status.HTTP_503_SERVICE_UNAVAILABLE,
        detail=f"The server is busy checking other passwords; try again in {BUSY_RETRY_AFTER} second.",
        headers={"Retry-After": str(BUSY_RETRY_AFTER)},
    )


def _weak_password(kind: str, message: str) -> HTTPException:
    """A refused password as invalid input, in FastAPI's validation format like every other 422."""
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        detail=[{"type": kind, "loc": ["body", "password"], "msg": message}],
    )


def _hash_refresh_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _session_response(
    request: Request,
    response: Response,
    settings: AuthSettings,
    signer: TokenSigner,
    user: store.User,
    session_id: str,
    refresh_token: str,
) -> LoginResponse:
    """Issue an access token and set both cookies."""
    token, expires_at = signer.issue(str(user.id), user.username, session_id)
    expires_in = max(0, expires_at - int(time.time()))
    set_session_cookies(response, request, settings, token, expires_in, refresh_token)
    return LoginResponse(
        access_token=token, expires_in=expires_in, user=UserOut(id=user.id, email=user.email, username=user.username)
    )


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=RegisteredUser,
    responses=error_responses(409, 413, 429, 503),
)
async def register(
    body: RegisterRequest,
    request: Request,
    pool: PoolDep,
    scripts: ScriptsDep,
    settings: SettingsDep,
    hasher: HasherDep,
    common_passwords: CommonPasswordsDep,
    metrics: MetricsDep,
) -> RegisteredUser:
    limit = Limit(settings.registrations_per_address, settings.rate_limit_window_seconds)
    verdict = await ratelimit.hit(scripts, "register", ratelimit.client_address(request), limit)
    if not verdict.allowed:
        raise ratelimit.too_many(verdict.retry_after, "registrations")
    if body.password in common_passwords:
        raise _weak_password("common_password", "This password is one of the most common ones; choose another.")
    problem = password_problem(body.password, body.username, body.email)
    if problem:
        raise _weak_password("guessable_password", problem)
    try:
        password_hash = await hasher.hash(body.password)
    except HasherBusy:
        raise _busy() from None
    try:
        user = await store.create_user(pool, body.email, body.username, password_hash)
    except store.EmailTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="An account with this email already exists.") from None
    except store.UsernameTaken:
        raise HTTPException(status.HTTP_409_CONFLICT, detail="This username is already taken.") from None
    metrics.registrations.inc()
    return RegisteredUser(id=user.id, email=user.email, username=user.username, created_at=user.created_at)


def _login_budgets(settings: AuthSettings, account: str, address: str, known_address: bool) -> list[Budget]:
    """What a login attempt spends before its password is checked.

    Failures are throttled tightly per (account, address), so a stranger
    spends only their own budget; per account, whatever the address, only a
    higher ceiling over a longer window, which an address the account logged
    in from before does not count against, so its owner is never locked out.
    """
    budgets = [
        Budget(
            "login-pair",
            f"{address}|{account}",
            Limit(settings.login_failures_per_account_address, settings.rate_limit_window_seconds),
        )
    ]
    if not known_address:
        budgets.append(
            Budget(
                "login-account",
                account,
                Limit(settings.login_failures_per_account, settings.login_account_window_seconds),
            )
        )
    return budgets


@router.post("/login", response_model=LoginResponse, responses=error_responses(401, 413, 429, 503))
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
    metrics: MetricsDep,
) -> LoginResponse:
    address = ratelimit.client_address(request)
    account = body.email.strip().lower()
    per_address = await ratelimit.hit(
        scripts,
        "login-address",
        address,
        Limit(settings.login_attempts_per_address, settings.rate_limit_window_seconds),
    )
    if not per_address.allowed:
        metrics.logins.labels("rate_limited").inc()
        raise ratelimit.too_many(per_address.retry_after, "login attempts")
    known_key = ratelimit_key("login-known", f"{address}|{account}")
    budgets = _login_budgets(settings, account, address, bool(await redis.exists(known_key)))
    reserved = await ratelimit.reserve(scripts, budgets)
    if not reserved.allowed:
        metrics.logins.labels("rate_limited").inc()
        raise ratelimit.too_many(reserved.retry_after, "failed logins for this account")

    user = await store.user_by_email(pool, account)
    try:
        ok, new_hash = await hasher.verify(body.password, user.password_hash if user else None)
    except HasherBusy:
        await ratelimit.refund(scripts, budgets)
        metrics.logins.labels("busy").inc()
        raise _busy() from None
    if user is None or not ok:
        metrics.logins.labels("invalid").inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INVALID_LOGIN)
    await ratelimit.refund(scripts, budgets)
    await redis.set(known_key, 1, ex=settings.login_known_address_seconds)
    if new_hash:
        await store.update_password_hash(pool, user.id, new_hash)

    session = await store.create_session(pool, user.id, settings.session_ttl_seconds)
    refresh_token = secrets.token_urlsafe(32)
    await store.add_refresh_token(pool, session.id, _hash_refresh_token(refresh_token))
    metrics.logins.labels("success").inc()
    response.headers.update(NO_STORE)
    return _session_response(request, response, settings, signer, user, str(session.id), refresh_token)


@router.post(
    "/refresh",
    response_model=LoginResponse,
    responses=error_responses(401, 403, 429),
)
async def refresh(
    request: Request,
    response: Response,
    pool: PoolDep,
    redis: RedisDep,
    scripts: ScriptsDep,
    settings: SettingsDep,
    signer: SignerDep,
    metrics: MetricsDep,
) -> LoginResponse:
    """Swap the refresh cookie for a new access token and a new refresh cookie."""
    if not origin_allowed(request.headers.get("origin"), settings.allowed_origins):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="Cross-site request refused.")
    presented = request.cookies.get(REFRESH_COOKIE)
    if not presented:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="No session to refresh: log in.")
    presented_hash = _hash_refresh_token(presented)
    session_id = await store.refresh_token_session(pool, presented_hash)
    if session_id is None:
        metrics.refreshes.labels("rejected").inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Session ended: log in again.")
    limit = Limit(settings.refreshes_per_session, settings.rate_limit_window_seconds)
    verdict = await ratelimit.hit(scripts, "refresh", str(session_id), limit)
    if not verdict.allowed:
        metrics.refreshes.labels("rate_limited").inc()
        raise ratelimit.too_many(verdict.retry_after, "refreshes of this session")
    replacement = secrets.token_urlsafe(32)
    try:
        session, user = await store.rotate_refresh_token(
            pool, presented_hash, _hash_refresh_token(replacement), settings.refresh_reuse_grace_seconds
        )
    except store.RefreshReused as reused:
        metrics.refreshes.labels("reused").inc()
        await publish_revocations(redis, [str(reused.session_id)], settings.access_token_ttl_seconds)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Session ended: log in again.") from None
    except store.RefreshRejected:
        metrics.refreshes.labels("rejected").inc()
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="Session ended: log in again.") from None
    metrics.refreshes.labels("success").inc()
    response.headers.update(NO_STORE)
    return _session_response(request, response, settings, signer, user, str(session.id), replacement)


def _logged_out(request: Request, settings: AuthSettings) -> Response:
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookies(response, request, settings)
    response.headers["Clear-Site-Data"] = '"cache", "storage"'
    return response


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=SESSION_ERRORS)
async def logout(
    principal: CurrentUser, request: Request, pool: PoolDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    """End this session everywhere: Postgres durably, Redis for the other services, sockets by broadcast."""
    await store.revoke_session(pool, principal.session_id)
    await publish_revocations(redis, [principal.session_id], settings.access_token_ttl_seconds)
    return _logged_out(request, settings)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=SESSION_ERRORS)
async def logout_all(
    principal: CurrentUser, request: Request, pool: PoolDep, redis: RedisDep, settings: SettingsDep
) -> Response:
    """End every session of this user, on every device."""
    revoked = await store.revoke_user_sessions(pool, principal.user_id)
    session_ids = {str(session_id) for session_id in revoked} | {principal.session_id}
    await publish_revocations(redis, sorted(session_ids), settings.access_token_ttl_seconds)
    return _logged_out(request, settings)


@router.get("/me", response_model=UserOut, responses=SESSION_ERRORS)
async def me(principal: CurrentUser, pool: PoolDep, response: Response) -> UserOut:
    """Who is logged in: personal data, so no cache along the way may keep it."""
    response.headers.update(NO_STORE)
    user = await store.user_by_id(pool, principal.user_id)
    if user is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="This account no longer exists.", headers=NO_STORE)
    return UserOut(id=user.id, email=user.email, username=user.username)


@router.get("/.well-known/jwks.json")
async def jwks(request: Request) -> dict[str, Any]:
    return request.app.state.verifier.jwks
