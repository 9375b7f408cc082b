"""The rooms API through the edge."""

import asyncio
from collections import Counter

import httpx

from services.common.room_codes import ALPHABET
from services.rooms.settings import RoomsSettings

MISSES_PER_USER = RoomsSettings.model_fields["room_lookup_misses_per_user"].default
MISSES_PER_ADDRESS = RoomsSettings.model_fields["room_lookup_misses_per_address"].default
LOOKUPS_PER_USER = RoomsSettings.model_fields["room_lookups_per_user"].default


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


def _guesses(count: int) -> list[str]:
    """Well-formed codes that no live room has (6 characters; rooms in tests are fresh random ones)."""
    return [f"{ALPHABET[i // len(ALPHABET)]}{ALPHABET[i % len(ALPHABET)]}YYYY" for i in range(count)]


async def test_guessing_codes_is_cut_off_per_user_even_in_parallel(api, new_user, new_room):
    user, other = await new_user(), await new_user()
    code = await new_room(other)
    guesses = MISSES_PER_USER + 5
    responses = await asyncio.gather(*(api.get(f"/api/rooms/{g}", headers=user.bearer) for g in _guesses(guesses)))
    assert Counter(r.status_code for r in responses) == {404: MISSES_PER_USER, 429: 5}
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused.headers["retry-after"]) > 0 and "room lookups" in refused.json()["detail"]
    # Until the window passes, even a live code answers 429 to the guesser (a hit must not tell them to go on)...
    assert (await api.get(f"/api/rooms/{code}", headers=user.bearer)).status_code == 429
    # ...and only to them.
    assert (await api.get(f"/api/rooms/{code}", headers=other.bearer)).status_code == 200


async def test_found_rooms_do_not_count_as_misses(api, new_user, new_room):
    user = await new_user()
    code = await new_room(user)
    for _ in range(MISSES_PER_USER + 5):
        assert (await api.get(f"/api/rooms/{code}", headers=user.bearer)).status_code == 200
    assert (await api.get(f"/api/rooms/{_guesses(1)[0]}", headers=user.bearer)).status_code == 404


async def test_lookups_are_limited_per_user_even_when_found(api, new_user, new_room):
    user = await new_user()
    code = await new_room(user)
    # One after the other: a lookup in flight holds one of the user's few miss slots until the room is found.
    statuses = [(await api.get(f"/api/rooms/{code}", headers=user.bearer)).status_code for _ in range(LOOKUPS_PER_USER + 3)]
    assert statuses == [200] * LOOKUPS_PER_USER + [429] * 3


async def test_guessing_from_many_accounts_is_cut_off_per_address(stack, new_user):
    """Fresh accounts do not buy fresh guesses: misses also count per client address."""
    users = [await new_user() for _ in range(MISSES_PER_ADDRESS // MISSES_PER_USER + 1)]
    guesses = iter(_guesses(len(users) * MISSES_PER_USER + 1))
    async with httpx.AsyncClient(base_url=stack.service_url("rooms"), timeout=10) as direct:

        async def guess(user, address: str) -> int:
            headers = {**user.bearer, "X-Forwarded-For": address}
            return (await direct.get(f"/api/rooms/{next(guesses)}", headers=headers)).status_code

        statuses = Counter(
            await asyncio.gather(
                *(guess(user, "203.0.113.77") for user in users for _ in range(MISSES_PER_USER))
            )
        )
        assert statuses == {404: MISSES_PER_ADDRESS, 429: len(users) * MISSES_PER_USER - MISSES_PER_ADDRESS}
        # Another address is not affected (a fresh account: any of the others may have spent its own misses).
        assert await guess(await new_user(), "203.0.113.78") == 404
