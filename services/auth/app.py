"""Builds the auth service's FastAPI app."""

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
from fastapi import FastAPI, Request

from services.auth.migrate import apply_migrations
from services.auth.passwords import PasswordHasher
from services.auth.routes import router
from services.auth.settings import AuthSettings
from services.auth.store import revoked_unexpired_sessions
from services.common.http import install_common
from services.common.redis_client import create_redis, redis_ready
from services.common.redis_schema import Scripts, revoked_key
from services.common.tokens import TokenSigner, TokenVerifier, load_private_key, load_public_keys

log = logging.getLogger(__name__)


async def restore_revocations(app: FastAPI) -> int:
    """Copy Postgres's revoked, unexpired sessions into Redis (which may have restarted empty)."""
    now = datetime.now(UTC)
    rows = await revoked_unexpired_sessions(app.state.pool)
    if rows:
        async with app.state.redis.pipeline(transaction=False) as pipe:
            for session_id, expires_at in rows:
                pipe.set(revoked_key(str(session_id)), 1, ex=max(1, int((expires_at - now).total_seconds())))
            await pipe.execute()
    return len(rows)


def create_app(settings: AuthSettings) -> FastAPI:
    signing_key = load_private_key(settings.jwt_signing_key_file)
    verify_keys = (
        load_public_keys(settings.jwt_verify_keys_file) if settings.jwt_verify_keys_file else [signing_key.public_key()]
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=settings.database_pool_max)
        app.state.redis = create_redis(settings.redis_url)
        try:
            await apply_migrations(app.state.pool)
            app.state.scripts = Scripts.register(app.state.redis)
            restored = await restore_revocations(app)
            log.info("auth ready", extra={"revocations_restored": restored})
            yield
        finally:
            await app.state.redis.aclose()
            await asyncio.wait_for(app.state.pool.close(), timeout=5)

    app = FastAPI(title="Sala auth", lifespan=lifespan, docs_url="/api/auth/docs", openapi_url="/api/auth/openapi.json")
    app.state.settings = settings
    app.state.signer = TokenSigner(
        signing_key, settings.jwt_issuer, settings.jwt_audience, settings.access_token_ttl_seconds
    )
    app.state.verifier = TokenVerifier(verify_keys, settings.jwt_issuer, settings.jwt_audience)
    app.state.hasher = PasswordHasher(settings.argon2_memory_kib, settings.argon2_time_cost, settings.argon2_parallelism)

    async def readiness(request: Request) -> dict[str, bool]:
        try:
            postgres = await request.app.state.pool.fetchval("SELECT 1") == 1
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError):
            postgres = False
        return {"postgres": postgres, "redis": await redis_ready(request.app.state.redis)}

    install_common(app, readiness)
    app.include_router(router)
    return app
