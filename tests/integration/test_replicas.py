"""What must hold across replicas of one service."""

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from services.auth.migrate import apply_migrations, migration_files
from tests.integration.conftest import PASSWORD


@pytest.fixture(scope="module")
def second_auth(stack):
    name = stack.add_replica("auth")
    yield stack.service_url(name)
    stack.stop_child(name)


async def test_login_rate_limit_is_shared_by_auth_replicas_and_releases(api, second_auth, new_user):
    user = await new_user()
    async with httpx.AsyncClient(base_url=second_auth, timeout=10) as replica:
        for attempt in range(5):
            client = api if attempt % 2 else replica  # failures spread over both replicas
            response = await client.post("/api/auth/login", json={"email": user.email, "password": "wrong password"})
            assert response.status_code == 401
        tripped = await replica.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert tripped.status_code == 429
        assert (await api.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})).status_code == 429
        await asyncio.sleep(int(tripped.headers["retry-after"]) + 0.5)
        released = await replica.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
        assert released.status_code == 200


async def test_replicas_starting_together_apply_each_migration_once(stack):
    database = f"migrate_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(stack.database_url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    url = stack.database_url.rsplit("/", 1)[0] + "/" + database
    pools = [await asyncpg.create_pool(url, min_size=1, max_size=2) for _ in range(3)]
    try:
        applied = await asyncio.gather(*(apply_migrations(pool) for pool in pools))
        everything = [version for version, _ in migration_files()]
        assert sorted(v for versions in applied for v in versions) == everything
        async with pools[0].acquire() as conn:
            assert [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")] == everything
    finally:
        for pool in pools:
            await pool.close()
        await admin.execute(f'DROP DATABASE "{database}"')
        await admin.close()
