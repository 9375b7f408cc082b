"""Attacks on the HTTP APIs replayed against the real stack: each may cost only the attacker.

Concurrent password guesses get no more checks than the limits allow (the
budget is taken before the password is checked, atomically), a stranger who
knows an email cannot lock its owner out, a login flood cannot grow auth's
memory past the hashing budget, and room codes cannot be guessed quickly.
"""

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import httpx
import pytest

from services.auth.settings import AuthSettings
from services.rooms.settings import RoomsSettings
from tests.integration.conftest import PASSWORD, unique
from tools.devstack import Stack

# The defaults the test stack runs with (only the window is shortened there).
PAIR_LIMIT = AuthSettings.model_fields["login_failures_per_account_address"].default
ACCOUNT_LIMIT = AuthSettings.model_fields["login_failures_per_account"].default
HASH_BUDGET_MIB = AuthSettings.model_fields["password_hash_memory_budget_mib"].default
MISSES_PER_USER = RoomsSettings.model_fields["room_lookup_misses_per_user"].default
MISSES_PER_ADDRESS = RoomsSettings.model_fields["room_lookup_misses_per_address"].default


@pytest.fixture
async def auth_direct(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """Straight to auth from loopback, where X-Forwarded-For is believed: a client at any address we name."""
    async with httpx.AsyncClient(base_url=stack.service_url("auth"), timeout=30) as client:
        yield client


async def _login(client: httpx.AsyncClient, email: str, password: str, address: str) -> httpx.Response:
    return await client.post(
        "/api/auth/login", json={"email": email, "password": password}, headers={"X-Forwarded-For": address}
    )


def _rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS line")


async def test_parallel_guesses_from_many_addresses_get_at_most_the_account_ceiling(auth_direct, new_user):
    user = await new_user()
    guesses = ACCOUNT_LIMIT + 5
    responses = await asyncio.gather(
        *(_login(auth_direct, user.email, f"guess number {i}", f"198.51.100.{i + 1}") for i in range(guesses))
    )
    statuses = Counter(response.status_code for response in responses)
    # 503 (no hashing slot in time) is no check either; then the attempt is given back.
    assert set(statuses) <= {401, 429, 503} and statuses[401] >= 1, statuses
    assert statuses[401] <= ACCOUNT_LIMIT and statuses[429] >= guesses - ACCOUNT_LIMIT, statuses
    refused = next(response for response in responses if response.status_code == 429)
    assert int(refused.headers["retry-after"]) > 0 and "try again" in refused.json()["detail"]
    # Not even the right password gets checked from a new address now...
    assert (await _login(auth_direct, user.email, PASSWORD, "198.51.100.200")).status_code == 429
    # ...but the owner, from the address they logged in from before (the fixture's, through the edge), gets in.
    assert (await _login(auth_direct, user.email, PASSWORD, "127.0.0.1")).status_code == 200


async def test_parallel_guesses_from_one_address_get_the_pair_limit(auth_direct, new_user):
    user = await new_user()
    responses = await asyncio.gather(
        *(_login(auth_direct, user.email, f"guess number {i}", "203.0.113.9") for i in range(PAIR_LIMIT + 10))
    )
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {401, 429, 503} and statuses[401] >= 1, statuses
    assert statuses[401] <= PAIR_LIMIT and statuses[429] >= 10, statuses


async def test_a_strangers_failures_do_not_lock_the_owner_out(auth_direct, new_user):
    user = await new_user()
    for i in range(PAIR_LIMIT):
        assert (await _login(auth_direct, user.email, f"guess {i}", "203.0.113.66")).status_code == 401
    assert (await _login(auth_direct, user.email, f"guess {PAIR_LIMIT}", "203.0.113.66")).status_code == 429
    # The owner, from an address that never logged in (a new network): still below the account's ceiling.
    assert (await _login(auth_direct, user.email, PASSWORD, "192.0.2.10")).status_code == 200
    # The stranger stays throttled, the right password included: the pair's budget is spent.
    assert (await _login(auth_direct, user.email, PASSWORD, "203.0.113.66")).status_code == 429


async def test_a_successful_login_gives_back_its_attempt(auth_direct, new_user):
    user = await new_user()
    for _ in range(PAIR_LIMIT + 3):
        assert (await _login(auth_direct, user.email, PASSWORD, "192.0.2.20")).status_code == 200


async def test_a_login_flood_stays_within_the_hashing_memory_budget(stack, auth_direct):
    """35 concurrent logins took auth from ~90 to ~550 MiB when each ran its argon2 (19 MiB) at once."""
    pid = stack.pid("auth")
    await _login(auth_direct, "warm-up@example.com", "warm up the hasher", "192.0.2.99")
    before = peak = _rss_mib(pid)

    async def sample() -> None:
        nonlocal peak
        while True:
            peak = max(peak, _rss_mib(pid))
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        for wave in range(3):
            responses = await asyncio.gather(
                *(
                    _login(auth_direct, f"{unique('flood_')}@example.com", "not the password", f"10.{wave}.0.{i + 1}")
                    for i in range(35)
                )
            )
            assert {response.status_code for response in responses} <= {401, 503}
    finally:
        sampler.cancel()
    after = _rss_mib(pid)
    # The budget, plus room for the requests themselves; without the bound the peak grew by 450 MiB or more.
    assert peak - before < HASH_BUDGET_MIB + 40, f"RSS {before:.0f} -> peak {peak:.0f} MiB"
    # Memory goes back once the flood is over, instead of staying at the peak.
    assert after - before < 30, f"RSS {before:.0f} -> {after:.0f} MiB after the flood"


@pytest.fixture
async def slow_auth(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """One more auth replica with a single hashing slot and almost no wait for it."""
    name = stack.add_replica(
        "auth", {"SALA_PASSWORD_HASH_MEMORY_BUDGET_MIB": "19", "SALA_PASSWORD_HASH_WAIT_SECONDS": "0.01"}
    )
    try:
        async with httpx.AsyncClient(base_url=stack.service_url(name), timeout=30) as client:
            yield client
    finally:
        stack.stop_child(name)


async def test_logins_beyond_the_hashing_slots_get_503_with_retry_after(slow_auth):
    responses = await asyncio.gather(
        *(_login(slow_auth, f"busy{i}@example.com", "not the password", f"10.9.0.{i + 1}") for i in range(12))
    )
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {401, 503} and statuses[401] >= 1 and statuses[503] >= 1, statuses
    busy = next(response for response in responses if response.status_code == 503)
    assert int(busy.headers["retry-after"]) >= 1
    assert "busy" in busy.json()["detail"]


async def test_registration_beyond_the_hashing_slots_gets_503_not_500(slow_auth):
    responses = await asyncio.gather(
        *(
            slow_auth.post(
                "/api/auth/register",
                json={"email": f"{name}@example.com", "username": name, "password": PASSWORD},
                headers={"X-Forwarded-For": f"10.8.0.{i + 1}"},
            )
            for i, name in enumerate(unique("busy_") for _ in range(12))
        )
    )
    statuses = Counter(response.status_code for response in responses)
    assert set(statuses) <= {201, 503} and statuses[503] >= 1, statuses
