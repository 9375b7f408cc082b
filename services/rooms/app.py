"""Builds the rooms service's FastAPI app."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request

from services.common.background import Duties
from services.common.http import create_api, install_common
from services.common.reaper import ReaperSettings, run_reaper
from services.common.redis_client import create_redis, redis_ready
from services.common.redis_schema import Scripts
from services.common.tokens import TokenVerifier, load_public_keys
from services.rooms.routes import router
from services.rooms.settings import RoomsSettings


def create_app(settings: RoomsSettings) -> FastAPI:
    verifier = TokenVerifier(
        load_public_keys(settings.jwt_verify_keys_file), settings.jwt_issuer, settings.jwt_audience
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.redis = redis = create_redis(settings)
        app.state.scripts = scripts = Scripts.register(redis)
        duties = Duties()
        duties.start(
            "reaper",
            partial(run_reaper, redis, scripts, ReaperSettings.of(settings)),
        )
        try:
            yield
        finally:
            await duties.stop()
            await redis.aclose()

    app = create_api("Sala rooms", "/api/rooms", lifespan)
    app.state.settings = settings
    app.state.verifier = verifier

    async def readiness(request: Request) -> dict[str, bool]:
        return {"redis": await redis_ready(request.app.state.redis)}

    install_common(app, readiness)
    app.include_router(router)
    return app
