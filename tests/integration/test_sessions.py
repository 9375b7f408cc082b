"""Sessions: refresh rotation and replay, logout everywhere, durability of revocation."""

import asyncio
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest

from tests.integration.conftest import PASSWORD, unique


@asynccontextmanager
async def login(stack, email: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client (cookie jar, same-origin Origin) logged in as ``email``."""
    async with httpx.AsyncClient(base_url=stack.edge_url, headers={"Origin": stack.edge_url}, timeout=10) as client:
        response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        yield client


async def test_login_sets_a_refresh_cookie_scoped_to_auth(api, new_user):
    user = await new_user()
    response = await api.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})
    cookies = response.headers.get_list("set-cookie")
    refresh = next(c for c in cookies if c.startswith("chat_refresh="))
    assert "HttpOnly" in refresh and "Path=/api/auth" in refresh and "samesite=strict" in refresh.lower()


async def test_refresh_rotates_and_a_replayed_token_revokes_the_session(stack, new_user):
    user = await new_user()
    async with login(stack, user.email) as browser:
        first_refresh = browser.cookies.get("chat_refresh", path="/api/auth")
        rotated = await browser.post("/api/auth/refresh")
        assert rotated.status_code == 200
        new_token = rotated.json()["access_token"]
        assert browser.cookies.get("chat_refresh", path="/api/auth") != first_refresh
        assert (await browser.get("/api/auth/me")).status_code == 200

        # An attacker replays the old refresh token after the grace window.
        await asyncio.sleep(1.2)
        async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as attacker:
            attacker.cookies.set("chat_refresh", first_refresh, path="/api/auth")
            replay = await attacker.post("/api/auth/refresh")
        assert replay.status_code == 401
        # The whole session is gone: the newest access and refresh tokens too.
        headers = {"Authorization": f"Bearer {new_token}"}
        assert (await browser.get("/api/auth/me", headers=headers)).status_code == 401
        assert (await browser.get("/api/rooms/ABCDEF", headers=headers)).status_code == 401
        assert (await browser.post("/api/auth/refresh")).status_code == 401


async def test_refresh_is_throttled_per_session(stack, new_user):
    """A session refreshing in a loop is cut off with 429 (each refresh costs a Postgres transaction)."""
    user = await new_user()
    async with login(stack, user.email) as browser:
        statuses = [(await browser.post("/api/auth/refresh")).status_code for _ in range(11)]
        assert statuses == [200] * 10 + [429]
        refused = await browser.post("/api/auth/refresh")
        assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
        assert "refreshes" in refused.json()["detail"]
        # Another session of the same user is not affected.
        async with login(stack, user.email) as other:
            assert (await other.post("/api/auth/refresh")).status_code == 200


async def test_expired_sessions_and_old_refresh_tokens_are_purged(stack, new_user):
    """The periodic purge deletes what can no longer be used, and keeps what can."""
    user = await new_user()
    conn = await asyncpg.connect(stack.database_url)
    try:
        sessions = {
            kind: await conn.fetchval(
                f"INSERT INTO sessions (user_id, expires_at, revoked_at) VALUES ($1, {expires}, {revoked}) RETURNING id",
                user.id,
            )
            for kind, expires, revoked in [
                ("expired", "now() - interval '2 days'", "NULL"),
                ("revoked long ago", "now() + interval '20 days'", "now() - interval '2 days'"),
                ("revoked just now", "now() + interval '20 days'", "now()"),
                ("live", "now() + interval '20 days'", "NULL"),
            ]
        }
        tokens = [
            (b"old used token", sessions["live"], "now() - interval '30 days'"),
            (b"recently used token", sessions["live"], "now() - interval '1 hour'"),
            (b"live token", sessions["live"], "NULL"),
            (b"token of expired session", sessions["expired"], "NULL"),
        ]
        for token_hash, session_id, used_at in tokens:
            await conn.execute(
                f"INSERT INTO refresh_tokens (token_hash, session_id, used_at) VALUES ($1, $2, {used_at})",
                token_hash,
                session_id,
            )
        async with asyncio.timeout(15):
            while await conn.fetchval(
                "SELECT (SELECT count(*) FROM sessions WHERE id = $1)"
                " + (SELECT count(*) FROM refresh_tokens WHERE token_hash = 'old used token')",
                sessions["expired"],
            ):
                await asyncio.sleep(0.2)
        remaining = {row["id"] for row in await conn.fetch("SELECT id FROM sessions WHERE user_id = $1", user.id)}
        remaining_tokens = {row["token_hash"] for row in await conn.fetch("SELECT token_hash FROM refresh_tokens")}
    finally:
        await conn.close()
    assert sessions["expired"] not in remaining and sessions["revoked long ago"] not in remaining
    assert {sessions["live"], sessions["revoked just now"]} <= remaining
    assert b"old used token" not in remaining_tokens and b"token of expired session" not in remaining_tokens
    assert {b"recently used token", b"live token"} <= remaining_tokens


async def test_refresh_without_a_cookie_is_401(api):
    response = await api.post("/api/auth/refresh")
    assert response.status_code == 401 and response.json()["detail"]


async def test_logout_answers_clear_site_data_and_clears_both_cookies(stack, new_user):
    user = await new_user()
    async with login(stack, user.email) as browser:
        response = await browser.post("/api/auth/logout")
        assert response.status_code == 204
        assert "storage" in response.headers["clear-site-data"]
        cleared = " ".join(response.headers.get_list("set-cookie"))
        assert 'chat_session=""' in cleared or "chat_session=;" in cleared
        assert "chat_refresh=" in cleared
        assert (await browser.post("/api/auth/refresh")).status_code == 401


async def test_logout_all_ends_every_session(stack, new_user, new_room, open_socket):
    user = await new_user()
    async with login(stack, user.email) as phone, login(stack, user.email) as laptop:
        code = await new_room(user)
        socket = await open_socket(user, code)
        await socket.recv_type("welcome")
        assert (await laptop.post("/api/auth/logout-all")).status_code == 204
        assert (await phone.get("/api/auth/me")).status_code == 401
        assert (await phone.post("/api/auth/refresh")).status_code == 401
        assert await socket.closed_with(timeout=2) == 4001


async def test_cookie_write_from_a_foreign_origin_is_refused(stack, new_user):
    user = await new_user()
    async with login(stack, user.email) as browser:
        response = await browser.post("/api/auth/logout", headers={"Origin": "https://evil.example"})
        assert response.status_code == 403
        assert (await browser.get("/api/auth/me")).status_code == 200


async def test_common_passwords_are_refused(api):
    response = await api.post(
        "/api/auth/register", json={"email": "c@example.com", "username": unique("c_"), "password": "password123"}
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "password"]


async def test_usernames_are_normalised_and_unique_whatever_their_case_or_width(api):
    first = await api.post("/api/auth/register", json={"email": "w1@example.com", "username": "ｗｉｄｅ_name", "password": PASSWORD})
    assert first.status_code == 201 and first.json()["username"] == "wide_name"
    clash = await api.post("/api/auth/register", json={"email": "w2@example.com", "username": "WIDE_NAME", "password": PASSWORD})
    assert clash.status_code == 409


async def test_validation_errors_never_echo_the_password(api):
    secret = "tiny"
    response = await api.post("/api/auth/register", json={"email": "e@example.com", "username": "okname", "password": secret})
    assert response.status_code == 422
    assert secret not in response.text


@pytest.mark.failure
@pytest.mark.single_redis
async def test_revocation_survives_redis_restarting_empty_and_a_gateway_restart(api, stack, new_user, new_room, open_socket):
    user, other = await new_user(), await new_user()
    assert (await api.post("/api/auth/logout", headers=user.bearer)).status_code == 204

    stack.stop_child("redis", signal.SIGTERM)
    shutil.rmtree(stack.data_dir / "redis")
    stack.start_child("redis")
    stack.stop_child("gateway0", signal.SIGTERM)
    stack.start_child("gateway0")

    async with asyncio.timeout(10):
        while (status := (await api.get("/api/rooms/ABCDEF", headers=user.bearer)).status_code) == 503:
            await asyncio.sleep(0.1)
    assert status == 401
    assert (await api.get("/api/auth/me", headers=user.bearer)).status_code == 401
    code = await new_room(other)
    socket = await open_socket(user, code, gateway=0)
    assert await socket.closed_with() == 4401


async def test_a_weaker_hash_is_upgraded_at_login(api, stack, new_user):
    from passlib.context import CryptContext

    user = await new_user()
    weak = CryptContext(schemes=["argon2"], argon2__memory_cost=8192, argon2__rounds=1).hash(PASSWORD)
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute("UPDATE users SET password_hash = $1 WHERE email = $2", weak, user.email)
        assert (await api.post("/api/auth/login", json={"email": user.email, "password": PASSWORD})).status_code == 200
        upgraded = await conn.fetchval("SELECT password_hash FROM users WHERE email = $1", user.email)
    finally:
        await conn.close()
    assert upgraded != weak and "m=19456,t=2,p=1" in upgraded


async def test_room_creation_is_rate_limited_per_user(api, new_user):
    user, other = await new_user(), await new_user()
    statuses = [(await api.post("/api/rooms", json={}, headers=user.bearer)).status_code for _ in range(31)]
    assert statuses[:30] == [201] * 30 and statuses[30] == 429
    assert (await api.post("/api/rooms", json={}, headers=other.bearer)).status_code == 201


async def test_cookies_are_secure_when_the_edge_serves_https(stack, new_user):
    user = await new_user()
    async with httpx.AsyncClient(base_url=stack.service_url("auth"), timeout=10) as client:
        response = await client.post(
            "/api/auth/login",
            json={"email": user.email, "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https"},
        )
    cookies = response.headers.get_list("set-cookie")
    assert cookies and all("Secure" in cookie for cookie in cookies)
