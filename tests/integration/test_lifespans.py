"""Each service's lifespan, run in-process against the stack's real Postgres and Redis."""

import asyncio

import httpx
import pytest

from services.auth.app import create_app as create_auth
from services.auth.settings import AuthSettings
from services.gateway.app import create_app as create_gateway
from services.gateway.settings import GatewaySettings


def duty_tasks() -> set[str]:
    return {task.get_name() for task in asyncio.all_tasks()} & {"revocations", "session-purge", "keep alive", "reaper"}


async def test_auth_stops_its_duties_even_when_serving_fails(stack):
    """Issue 11 defect 6: ``duties.stop()`` after ``yield`` was skipped when the server ended by an error."""
    settings = AuthSettings(
        database_url=stack.database_url,
        redis_url=stack.redis_url,
        redis_cluster=stack.redis_cluster,
        jwt_signing_key_file=stack.signing_key,
        jwt_verify_keys_file=stack.verify_keys,
    )
    app = create_auth(settings)
    with pytest.raises(RuntimeError):
        async with app.router.lifespan_context(app):
            assert {"revocations", "session-purge"} <= duty_tasks()
            raise RuntimeError("the server failed")
    await asyncio.sleep(0)
    assert not duty_tasks() & {"revocations", "session-purge"}


async def test_a_draining_gateway_is_not_ready(stack):
    """Issue 11 defect 3: /readyz reported ``"draining": not draining``; each check is now true when healthy."""
    settings = GatewaySettings(
        redis_url=stack.redis_url, redis_cluster=stack.redis_cluster, jwt_verify_keys_file=stack.verify_keys
    )
    gateway = create_gateway(settings)
    api = gateway.api
    async with api.router.lifespan_context(api):
        transport = httpx.ASGITransport(app=api)
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as client:
            async with asyncio.timeout(10):
                while (await client.get("/readyz")).status_code != 200:
                    await asyncio.sleep(0.1)
            assert (await client.get("/readyz")).json()["checks"]["accepting"] is True
            api.state.context.draining = True
            response = await client.get("/readyz")
            assert response.status_code == 503
            assert response.json()["checks"]["accepting"] is False
