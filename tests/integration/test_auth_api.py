"""The auth API through the edge, against real Postgres and Redis."""

import asyncpg
import pytest

from tests.integration.conftest import PASSWORD, unique


async def register(api, email=None, username=None, password=PASSWORD):
    username = username or unique("u_")
    return await api.post(
        "/api/auth/register", json={"email": email or f"{username}@example.com", "username": username, "password": password}
    )


async def test_register_returns_the_account(api):
    response = await register(api, email="Ada@Example.com", username="ada_l")
    assert response.status_code == 201
    body = response.json()
    assert body["username"] == "ada_l"
    assert body["email"].lower() == "ada@example.com"
    assert set(body) == {"id", "email", "username", "created_at"}


async def test_duplicate_email_is_409_whatever_its_case(api):
    assert (await register(api, email="dup@example.com")).status_code == 201
    response = await register(api, email="DUP@example.com")
    assert response.status_code == 409
    assert "email" in response.json()["detail"].lower()


async def test_taken_username_is_409(api):
    assert (await register(api, email="first@example.com", username="same_name")).status_code == 201
    response = await register(api, email="second@example.com", username="SAME_name")
    assert response.status_code == 409
    assert "username" in response.json()["detail"].lower()


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "username": "okname", "password": PASSWORD},
        {"email": "a@example.com", "username": "ab", "password": PASSWORD},
        {"email": "a@example.com", "username": "x" * 33, "password": PASSWORD},
        {"email": "a@example.com", "username": "bad name!", "password": PASSWORD},
        {"email": "a@example.com", "username": "okname", "password": "short"},
        {"email": "a@example.com", "username": "okname", "password": "p" * 129},
        {"email": "a@example.com", "username": "okname"},
    ],
)
async def test_bad_registration_input_is_422(api, body):
    response = await api.post("/api/auth/register", json=body)
    assert response.status_code == 422
    assert isinstance(response.json()["detail"], list)


async def test_malformed_json_is_422_not_500(api):
    response = await api.post(
        "/api/auth/register", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422


async def test_login_sets_an_httponly_cookie_and_me_answers(api):
    username = unique("u_")
    await register(api, username=username)
    response = await api.post("/api/auth/login", json={"email": f"{username.upper()}@EXAMPLE.com", "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    assert body["user"]["username"] == username
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("chat_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax") and "Path=/" in cookie
    assert response.headers["cache-control"] == "no-store"  # it carries a token
    me = await api.get("/api/auth/me")  # by cookie
    assert me.status_code == 200 and me.json()["username"] == username
    assert me.headers["cache-control"] == "no-store"  # personal data: no shared cache may keep it
    api.cookies.clear()
    me = await api.get("/api/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == username


async def test_wrong_password_and_unknown_email_answer_alike(api):
    username = unique("u_")
    await register(api, username=username)
    wrong = await api.post("/api/auth/login", json={"email": f"{username}@example.com", "password": "wrong password"})
    unknown = await api.post("/api/auth/login", json={"email": "nobody@example.com", "password": "wrong password"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_me_without_a_session_is_401(api):
    assert (await api.get("/api/auth/me")).status_code == 401
    assert (await api.get("/api/auth/me", headers={"Authorization": "Bearer nonsense"})).status_code == 401


async def test_logout_kills_the_token_for_every_service(api, new_user, new_room):
    user = await new_user()
    room = await new_room(user)
    response = await api.post("/api/auth/logout", headers=user.bearer)
    assert response.status_code == 204
    assert "chat_session=" in response.headers.get("set-cookie", "")
    assert (await api.get("/api/auth/me", headers=user.bearer)).status_code == 401
    assert (await api.get(f"/api/rooms/{room}", headers=user.bearer)).status_code == 401
    assert (await api.post("/api/rooms", json={}, headers=user.bearer)).status_code == 401
    assert (await api.post("/api/auth/logout", headers=user.bearer)).status_code == 401


async def test_jwks_publishes_the_verification_key(api):
    keys = (await api.get("/api/auth/.well-known/jwks.json")).json()["keys"]
    assert keys and all(key["kty"] == "OKP" and key["crv"] == "Ed25519" and key["kid"] for key in keys)
    assert all("d" not in key for key in keys)


async def test_no_clear_password_is_stored(api, stack):
    username = unique("u_")
    await register(api, username=username)
    conn = await asyncpg.connect(stack.database_url)
    try:
        stored = await conn.fetchval("SELECT password_hash FROM users WHERE username = $1", username)
    finally:
        await conn.close()
    assert stored.startswith("$argon2id$") and PASSWORD not in stored


async def test_failed_logins_are_rate_limited_with_retry_after(api):
    username = unique("u_")
    await register(api, username=username)
    for _ in range(5):
        response = await api.post("/api/auth/login", json={"email": f"{username}@example.com", "password": "nope nope"})
        assert response.status_code == 401
    response = await api.post("/api/auth/login", json={"email": f"{username}@example.com", "password": PASSWORD})
    assert response.status_code == 429
    assert int(response.headers["retry-after"]) > 0


@pytest.mark.parametrize(
    ("username", "email", "password"),
    [
        ("charlotte", "c.w@example.com", "charlotte"),
        ("charlotte", "c.w@example.com", "I am Charlotte!"),
        ("cw_2024", "Charlotte.W@example.com", "charlotte.w rocks"),
        ("cw_2025", "dana@example.com", "xxxxxxxxxxxx"),
    ],
)
async def test_guessable_passwords_are_refused_at_registration(api, username, email, password):
    response = await register(api, email=email, username=username, password=password)
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "password"] and "choose another" in error["msg"]
    assert password not in response.text
