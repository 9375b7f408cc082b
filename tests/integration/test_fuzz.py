"""Property-based fuzzing of the auth and rooms HTTP APIs from their own OpenAPI schemas.

Schemathesis generates requests, valid and invalid, for every operation the
services publish (at ``/api/auth/openapi.json`` and ``/api/rooms/openapi.json``
on each service's port), sends them there, and checks: no 5xx, the status is
one the schema documents for that operation, the body conforms to the schema
documented for that status, and invalid input is refused with a 4xx. Rooms
calls, ``/me`` and ``/logout`` carry a real bearer token; the other
operations are fuzzed as an anonymous caller. Rate-limit counters are cleared
before each request so the fuzzer gets past the limiter to the code behind it
(429 must still be documented; the limits have tests of their own).

The normal run is bounded (a few dozen examples per operation, the same ones
each run); set ``SALA_FUZZ_EXAMPLES`` for a longer, random hunt, e.g.
``SALA_FUZZ_EXAMPLES=1000``.

The hostile-Unicode cases at the end are requests the fuzzer cannot send
(JSON with a lone UTF-16 surrogate is not valid UTF-8 once encoded) or finds
only by luck (NUL), pinned as plain tests.
"""

import os
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from tests.integration.conftest import PASSWORD, unique
from tools.devstack import Stack

FUZZ_EXAMPLES = int(os.environ.get("SALA_FUZZ_EXAMPLES") or 0) or 30

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    derandomize=not os.environ.get("SALA_FUZZ_EXAMPLES"),  # the normal run is reproducible
    suppress_health_check=list(HealthCheck),
    database=None,
)


@dataclass
class FuzzIdentity:
    """A real account with two live sessions: one for every call, one that logout may end."""

    token: str
    logout_token: str

    def headers_for(self, case: schemathesis.Case) -> dict[str, str]:
        if case.path == "/api/auth/logout":
            return {"Authorization": f"Bearer {self.logout_token}"}
        if case.path.startswith("/api/rooms") or case.path == "/api/auth/me":
            return {"Authorization": f"Bearer {self.token}"}
        return {}


@pytest.fixture
def fuzz_identity(stack: Stack, clean_slate: None) -> Iterator[FuzzIdentity]:
    username = unique("fuzz_")
    email = f"{username}@example.com"
    with httpx.Client(base_url=stack.edge_url, timeout=10) as client:
        response = client.post("/api/auth/register", json={"email": email, "username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        tokens = []
        for _ in range(2):
            response = client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
            assert response.status_code == 200, response.text
            tokens.append(response.json()["access_token"])
            client.cookies.clear()
    yield FuzzIdentity(*tokens)


SCHEMAS = {"auth": "/api/auth/openapi.json", "rooms": "/api/rooms/openapi.json"}


def fuzz_operation(
    operation: schemathesis.APIOperation, base_url: str, identity: FuzzIdentity, redis_url: str
) -> None:
    """Valid and invalid requests for one operation; raises on the first (shrunk) failure.

    Rate-limit counters are cleared before each request, so the fuzzer reaches the code behind the
    limiter rather than hearing 429 after the first few dozen requests.
    """
    strategy = st.one_of(
        operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
        operation.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )

    redis = Redis.from_url(redis_url)

    @FUZZ_SETTINGS
    @given(case=strategy)
    def fuzz(case: schemathesis.Case) -> None:
        if keys := list(redis.scan_iter("sala:ratelimit:*")):
            redis.delete(*keys)
        case.call_and_validate(base_url=base_url, headers=identity.headers_for(case), checks=CHECKS, timeout=30)

    try:
        fuzz()
    finally:
        redis.close()


@pytest.mark.parametrize("service", SCHEMAS)
def test_api_conforms_to_its_schema(stack: Stack, fuzz_identity: FuzzIdentity, service: str) -> None:
    """Every operation the service publishes, fuzzed; one report naming each failing operation."""
    base_url = stack.service_url(service)
    schema = schemathesis.openapi.from_url(base_url + SCHEMAS[service])
    operations = [result.ok() for result in schema.get_all_operations()]
    assert operations, f"{service} publishes no operation"
    failures = []
    for operation in operations:
        try:
            fuzz_operation(operation, base_url, fuzz_identity, stack.redis_url)
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"--- {operation.label} ---\n{exc}")
    assert not failures, f"{len(failures)} of {len(operations)} operations failed:\n\n" + "\n\n".join(failures)


# Hostile Unicode: what the fuzzer cannot produce. Each must be refused with a 4xx, never a 5xx.

LONE_SURROGATE = "\\ud800"  # as written in JSON text: a valid JSON escape, not an encodable character


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/auth/login", '{"email":"a\\u0000b@example.com","password":"whatever pw"}'),
        ("/api/auth/login", '{"email":"' + LONE_SURROGATE + '@example.com","password":"whatever pw"}'),
        ("/api/auth/login", '{"email":"someone@example.com","password":"' + LONE_SURROGATE + 'whatever"}'),
        ("/api/auth/register", '{"email":"s@example.com","username":"surrogate","password":"' + LONE_SURROGATE + 'whatever"}'),
        ("/api/auth/register", '{"email":"' + LONE_SURROGATE + '@example.com","username":"surrogate","password":"whatever pw"}'),
        ("/api/rooms", '{"name":"' + LONE_SURROGATE + '"}'),
    ],
    ids=[
        "login-nul-in-email",
        "login-surrogate-in-email",
        "login-surrogate-in-password",
        "register-surrogate-in-password",
        "register-surrogate-in-email",
        "rooms-surrogate-in-name",
    ],
)
async def test_hostile_unicode_is_refused_not_a_server_error(api, new_user, path, body):
    headers = {"Content-Type": "application/json"}
    if path.startswith("/api/rooms"):
        headers.update((await new_user()).bearer)
    response = await api.post(path, content=body.encode(), headers=headers)
    assert 400 <= response.status_code < 500, f"{path} {body} -> {response.status_code} {response.text}"
