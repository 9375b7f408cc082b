"""Forged access tokens against the running services: auth, rooms and the gateway each refuse every one.

Forgeries that need a valid signature (wrong iss, expired, a ``jku`` header...)
are signed with the stack's REAL private key, so the only thing wrong with
them is the attack itself; each starts from the claims of a real user's real
token. A control test re-signs those claims unchanged and checks every
service accepts the result, so a refusal below is never an accident of the
helper.
"""

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from websockets.exceptions import ConnectionClosed

from services.common.tokens import (
    ALGORITHM,
    TOKEN_TYPE,
    load_private_key,
    load_public_keys,
    public_jwk,
)
from tools.devstack import Stack


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


@dataclass
class Minter:
    """Builds tokens for one real user, signed by the stack's real key unless the attack says otherwise."""

    key: Ed25519PrivateKey
    kid: str
    public_pem: bytes
    claims: dict[str, object]

    def header(self, **overrides: object) -> dict[str, object]:
        head: dict[str, object] = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": self.kid, **overrides}
        return {name: value for name, value in head.items() if value is not None}

    def body(self, **overrides: object) -> dict[str, object]:
        body = {**self.claims, **overrides}
        return {name: value for name, value in body.items() if value is not None}

    def sign(self, header: dict[str, object] | None = None, key: Ed25519PrivateKey | None = None, **claims: object) -> str:
        """``jwt.encode`` with the real key (or ``key``), any header fields and any claims."""
        head = header if header is not None else self.header()
        extra = {name: value for name, value in head.items() if name != "alg"}
        extra.setdefault("typ", None)  # without a typ field, PyJWT would add "typ": "JWT"
        return jwt.encode(self.body(**claims), key or self.key, algorithm=ALGORITHM, headers=extra)

    def unsigned(self, alg: str) -> str:
        return f"{b64url_json(self.header(alg=alg))}.{b64url_json(self.body())}."

    def hs256(self, secret: bytes) -> str:
        # PyJWT refuses to sign HS256 with a PEM public key, so the token is built by hand.
        signing_input = f"{b64url_json(self.header(alg='HS256'))}.{b64url_json(self.body())}"
        signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        return f"{signing_input}.{b64url(signature)}"


@pytest.fixture
async def victim(new_user) -> object:
    return await new_user()


@pytest.fixture
def minter(stack: Stack, victim) -> Minter:
    key = load_private_key(stack.signing_key)
    # The stack's verifiers must know this key, or every test here would pass for the wrong reason.
    assert public_jwk(key.public_key())["kid"] in {public_jwk(k)["kid"] for k in load_public_keys(stack.verify_keys)}
    claims = jwt.decode(victim.token, options={"verify_signature": False})
    pem = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Minter(key, public_jwk(key.public_key())["kid"], pem, claims)


NOW = int(time.time())


def _tampered(m: Minter) -> str:
    head, _, signature = m.sign().split(".")
    return f"{head}.{b64url_json(m.body(username='admin', sub=str(uuid.uuid4())))}.{signature}"


def _embedded_attacker_jwk(m: Minter) -> str:
    attacker = Ed25519PrivateKey.generate()
    jwk = public_jwk(attacker.public_key())
    return m.sign(m.header(kid=jwk["kid"], jwk=jwk), key=attacker)


def _jwks_of(m: Minter) -> bytes:
    return json.dumps(public_jwk(m.key.public_key())).encode()


ATTACKS: dict[str, Callable[[Minter], str]] = {
    "alg-none": lambda m: m.unsigned("none"),
    "alg-None": lambda m: m.unsigned("None"),
    "hs256-public-key-pem": lambda m: m.hs256(m.public_pem),
    "hs256-public-key-jwk-json": lambda m: m.hs256(_jwks_of(m)),
    "hs256-public-key-raw": lambda m: m.hs256(
        m.key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    ),
    "wrong-iss": lambda m: m.sign(iss="evil"),
    "iss-prefix-sala-evil": lambda m: m.sign(iss="sala-evil"),
    "iss-prefix-sal": lambda m: m.sign(iss="sal"),
    "wrong-aud": lambda m: m.sign(aud="other-service"),
    "aud-prefix-sala-evil": lambda m: m.sign(aud="sala-evil"),
    "aud-missing": lambda m: m.sign(aud=None),
    "expired": lambda m: m.sign(exp=NOW - 30),
    "exp-missing": lambda m: m.sign(exp=None),
    "not-yet-valid": lambda m: m.sign(nbf=NOW + 3600),
    "sid-missing": lambda m: m.sign(sid=None),
    "kid-unknown": lambda m: m.sign(m.header(kid="not-a-key-we-know")),
    "kid-missing": lambda m: m.sign(m.header(kid=None)),
    "jku-header": lambda m: m.sign(m.header(jku="https://evil.example/jwks.json")),
    "x5u-header": lambda m: m.sign(m.header(x5u="https://evil.example/cert.pem")),
    "jwk-header": lambda m: m.sign(m.header(jwk=public_jwk(m.key.public_key()))),
    "embedded-attacker-jwk": _embedded_attacker_jwk,
    "typ-JWT": lambda m: m.sign(m.header(typ="JWT")),
    "typ-missing": lambda m: m.sign(m.header(typ=None)),
    "signed-by-another-key-same-kid": lambda m: m.sign(key=Ed25519PrivateKey.generate()),
    "tampered-payload": _tampered,
    "signature-stripped": lambda m: m.sign().rsplit(".", 1)[0] + ".",
    "garbage": lambda m: "not.a.token",
}

TARGETS = ["auth-me", "rooms-get", "rooms-create", "gateway-socket"]


async def _http_status(stack: Stack, target: str, token: str, room: str) -> int:
    headers = {"Authorization": f"Bearer {token}"}
    service = "auth" if target.startswith("auth") else "rooms"
    async with httpx.AsyncClient(base_url=stack.service_url(service), timeout=10) as client:
        if target == "auth-me":
            response = await client.get("/api/auth/me", headers=headers)
        elif target == "rooms-get":
            response = await client.get(f"/api/rooms/{room}", headers=headers)
        else:
            response = await client.post("/api/rooms", json={"name": "forged"}, headers=headers)
    return response.status_code


async def _socket_close_code(open_socket, token: str, room: str) -> int | str:
    """The close code; "open" if the socket was accepted and stayed open (sent a welcome)."""
    socket = await open_socket(None, room, headers={"Authorization": f"Bearer {token}"})
    try:
        frame = await socket.recv(timeout=5)
    except (ConnectionClosed, TimeoutError):
        try:
            return await socket.closed_with(timeout=5)
        except TimeoutError:
            return "open"
    return "open" if frame.get("type") == "welcome" else f"sent {frame}"


async def _outcome(stack: Stack, open_socket, target: str, token: str, room: str) -> int | str:
    if target == "gateway-socket":
        return await _socket_close_code(open_socket, token, room)
    return await _http_status(stack, target, token, room)


REFUSED = {"auth-me": 401, "rooms-get": 401, "rooms-create": 401, "gateway-socket": 4401}
ACCEPTED = {"auth-me": 200, "rooms-get": 200, "rooms-create": 201, "gateway-socket": "open"}


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("attack", ATTACKS.values(), ids=ATTACKS.keys())
async def test_forged_token_is_refused(stack, minter, victim, new_room, open_socket, attack, target):
    room = await new_room(victim)
    assert await _outcome(stack, open_socket, target, attack(minter), room) == REFUSED[target]


@pytest.mark.parametrize("target", TARGETS)
async def test_control_real_key_unchanged_claims_is_accepted(stack, minter, victim, new_room, open_socket, target):
    """The helper is sound: re-signing the real claims with the real key gives a token every service takes."""
    room = await new_room(victim)
    assert await _outcome(stack, open_socket, target, minter.sign(), room) == ACCEPTED[target]


async def test_socket_of_a_forged_token_never_sees_the_room(stack, minter, victim, new_room, open_socket):
    """Even briefly: a forged token's socket gets no welcome, member list or history before it is closed."""
    room = await new_room(victim)
    owner = await open_socket(victim, room)
    await owner.send({"type": "message", "text": "secret plans", "ref": "r"})
    await owner.recv_type("ack")
    forged = await open_socket(None, room, headers={"Authorization": f"Bearer {minter.sign(iss='evil')}"})
    frames = []
    with contextlib.suppress(ConnectionClosed, TimeoutError):  # the close (or a silence) ends the loop
        async with asyncio.timeout(5):
            while True:
                frames.append(await forged.ws.recv())
    assert not any("secret plans" in str(frame) or "welcome" in str(frame) for frame in frames)
