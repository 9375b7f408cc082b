"""Builds the auth service's FastAPI app."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import asyncpg
from fastapi import FastAPI, Request
from redis.exceptions import RedisError

from services.auth.metrics import AuthMetrics
from services.auth.migrate import apply_migrations
from services.auth.passwords import CommonPasswords, PasswordHasher, return_freed_hash_memory
from services.auth.routes import router
from services.auth.settings import AuthSettings
from services.auth.store import purge_sessions, recently_revoked_sessions
from services.common.background import Duties
from services.common.http import create_api, install_common
from services.common.redis_client import create_redis, redis_ready
from services.common.redis_schema import REVOCATIONS_LOADED, Scripts
from services.common.sessions import publish_revocations
from services.common.tokens import (
    TokenSigner,
    TokenVerifier,
    load_private_key,
    load_public_keys,
)

log = logging.getLogger(__name__)

REVOCATIONS_CHECK_SECONDS = 0.5


async def keep_revocations_loaded(app: FastAPI, duties: Duties) -> None:
    """Whenever Redis has lost the revocation list (it restarted empty), rebuild it from Postgres.

    Until this is done, rooms and gateways trust no token (see sessions.session_revoked).
    """
    settings, redis = app.state.settings, app.state.redis
    while True:
        try:
            if not await redis.exists(REVOCATIONS_LOADED):
                sessions = await recently_revoked_sessions(app.state.pool, settings.access_token_ttl_seconds)
                await publish_revocations(redis, [str(s) for s in sessions], settings.access_token_ttl_seconds)
                await redis.set(REVOCATIONS_LOADED, 1)
                log.info("revocations loaded into Redis", extra={"sessions": len(sessions)})
        except (RedisError, OSError, asyncpg.PostgresError) as exc:
            log.warning("could not load revocations", extra={"error": str(exc)})
        if not await duties.pause(REVOCATIONS_CHECK_SECONDS):
            return


async def purge_expired_sessions(app: FastAPI, duties: Duties) -> None:
    """Every so often, delete sessions and refresh tokens that can no longer be used, so the tables stay bounded."""
    settings = app.state.settings
    while await duties.pause(settings.session_purge_interval_seconds):
        try:
            sessions, tokens = await purge_sessions(
                app.state.pool, settings.access_token_ttl_seconds, settings.used_refresh_token_keep_seconds
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("could not purge sessions", extra={"error": str(exc)})
            continue
        if sessions or tokens:
            log.info("purged sessions", extra={"sessions": sessions, "refresh_tokens": tokens})


def create_app(settings: AuthSettings) -> FastAPI:
    signing_key = load_private_key(settings.jwt_signing_key_file)
    verify_keys = (
        load_public_keys(settings.jwt_verify_keys_file) if settings.jwt_verify_keys_file else [signing_key.public_key()]
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(
            settings.database_url, min_size=1, max_size=settings.database_pool_max
        )
        app.state.redis = create_redis(settings)
        return_freed_hash_memory()
        app.state.hasher = PasswordHasher(
            settings.argon2_memory_kib,
            settings.argon2_time_cost,
            settings.argon2_parallelism,
            settings.password_hash_concurrency,
            settings.password_hash_wait_seconds,
        )
        duties = Duties()
        try:
            await apply_migrations(app.state.pool)
            app.state.scripts = Scripts.register(app.state.redis)
            duties.start("revocations", partial(keep_revocations_loaded, app))
            duties.start("session-purge", partial(purge_expired_sessions, app))
            yield
        finally:
            await duties.stop()
            app.state.hasher.close()
            await app.state.redis.aclose()
            await asyncio.wait_for(app.state.pool.close(), timeout=5)

    app = create_api("Sala auth", "/api/auth", lifespan)
    app.state.settings = settings
    app.state.signer = TokenSigner(
        signing_key, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds
    )
    app.state.verifier = TokenVerifier(verify_keys, settings.jwt_issuer, settings.jwt_audience)
    app.state.common_passwords = CommonPasswords()

    async def readiness(request: Request) -> dict[str, bool]:
        try:
            postgres = await request.app.state.pool.fetchval("SELECT 1", timeout=1) == 1
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            postgres = False
        return {"postgres": postgres, "redis": await redis_ready(request.app.state.redis)}

    app.state.metrics = AuthMetrics(install_common(app, readiness))
    app.include_router(router)
    return app
