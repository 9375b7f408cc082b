"""The rooms API through the edge."""

import asyncio

from services.common.room_codes import ALPHABET


async def test_create_room_returns_a_readable_code(api, new_user):
    user = await new_user()
    response = await api.post("/api/rooms", json={"name": "Book club"}, headers=user.bearer)
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"code", "name", "created_at", "created_by"}
    assert body["name"] == "Book club" and body["created_by"] == user.username
    assert body["code"].isupper() and all(ch in ALPHABET for ch in body["code"])


async def test_create_room_without_body(api, new_user):
    user = await new_user()
    response = await api.post("/api/rooms", headers=user.bearer)
    assert response.status_code == 201


async def test_room_lookup_is_case_insensitive(api, new_user, new_room):
    user = await new_user()
    code = await new_room(user, "Lookup")
    response = await api.get(f"/api/rooms/{code.lower()}", headers=user.bearer)
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == code and body["occupancy"] == 0 and body["members"] == []


async def test_unknown_code_is_404_with_detail(api, new_user):
    user = await new_user()
    for code in ("ZZZZZZ", "not a code", "0O1I"):
        response = await api.get(f"/api/rooms/{code}", headers=user.bearer)
        assert response.status_code == 404
        assert response.json()["detail"]


async def test_rooms_need_authentication(api):
    assert (await api.post("/api/rooms", json={})).status_code == 401
    assert (await api.get("/api/rooms/ABCDEF")).status_code == 401


async def test_name_over_64_characters_is_422(api, new_user):
    user = await new_user()
    response = await api.post("/api/rooms", json={"name": "x" * 65}, headers=user.bearer)
    assert response.status_code == 422


async def test_a_room_nobody_joins_closes_after_the_grace_period(api, new_user, new_room):
    user = await new_user()
    code = await new_room(user)
    assert (await api.get(f"/api/rooms/{code}", headers=user.bearer)).status_code == 200
    async with asyncio.timeout(15):
        while (await api.get(f"/api/rooms/{code}", headers=user.bearer)).status_code == 200:
            await asyncio.sleep(0.3)
    assert (await api.get(f"/api/rooms/{code}", headers=user.bearer)).status_code == 404
