"""Access tokens: Ed25519-signed JWTs (RFC 8725 practices).

Auth holds the private key and signs; every service verifies with public keys
only, so no service but auth can mint a token. Verification pins the algorithm,
checks ``typ``, ``kid``, ``iss``, ``aud`` and the required claims, and ignores
any key a token carries about itself (``jku``, ``x5u``, ``jwk``).

Auth signs with PyJWT; the verifier does not use it. PyJWT parsed and decoded a
token twice (header, then header and payload) and cost as much again as the
signature check, on every socket's connect. The verifier reads a token once:
three strict base64url segments, the header, then the Ed25519 signature over the
first two, and only then the claims, under the rules PyJWT applied with
``require``, ``strict_aud``, ``issuer`` and ``audience`` and no leeway. It is
stricter where PyJWT coerced: ``exp``, ``iat`` and ``nbf`` must be JSON integers
(PyJWT took anything ``int()`` takes: floats, booleans, numeric strings), and
``sub``, ``sid`` and ``username`` strings; a padded segment or a header naming
``b64`` is refused too.

The signature is checked with libsodium (PyNaCl), the reference Ed25519,
about twice as fast here as OpenSSL's through ``cryptography`` (60-85 µs
against 120-165 per new token), and strict: it refuses non-canonical
signatures and small-order keys. ``cryptography`` still loads the keys.

A verifier remembers the tokens it accepted lately (``VERIFIED_CACHE_SIZE``,
least recently used first out), so the same token seen again (a reconnect, a
second tab, the next API call) skips the signature check, about a tenth of a
socket's connect. A remembered token is never accepted at or past its ``exp``;
a refused one is never remembered. Revocation is not the verifier's business:
its callers check the session on every use either way.
"""

import base64
import binascii
import hashlib
import json
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from nacl.exceptions import BadSignatureError
from nacl.exceptions import ValueError as SodiumValueError
from nacl.signing import VerifyKey

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "exp", "iat", "username"]
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
# A compact JWS and nothing else: three unpadded base64url segments, so ASCII only.
_COMPACT_JWS = re.compile(r"([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)")
# Tokens a verifier remembers as valid: under 200 bytes each beyond the principal its socket holds anyway.
VERIFIED_CACHE_SIZE = 4096


class InvalidToken(Exception):
    """The token is missing, malformed, forged, expired or not for us."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a valid token speaks for."""

    user_id: str
    username: str
    session_id: str
    expires_at: int


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(segment: str) -> bytes:
    """The bytes of a segment that spells them the one canonical way (no stray trailing bits)."""
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except binascii.Error as exc:  # a length of 1 mod 4
        raise InvalidToken("malformed token") from exc
    if _b64url(data) != segment:
        raise InvalidToken("malformed token")
    return data


def _json_object(data: bytes) -> dict:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidToken("malformed token") from exc
    if not isinstance(value, dict):
        raise InvalidToken("malformed token")
    return value


def public_jwk(key: Ed25519PublicKey) -> dict[str, str]:
    """The key as a JWK with its RFC 7638 thumbprint as ``kid``."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(raw)}
    canonical = json.dumps(members, separators=(",", ":"), sort_keys=True).encode()
    kid = _b64url(hashlib.sha256(canonical).digest())
    return {**members, "kid": kid, "alg": ALGORITHM, "use": "sig"}


def load_private_key(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path.name} is not an Ed25519 private key")
    return key


def load_public_keys(path: Path) -> list[Ed25519PublicKey]:
    """Every PEM public key in the file (several during a key rotation)."""
    text = path.read_text()
    marker = "-----END PUBLIC KEY-----"
    keys = []
    for block in text.split(marker):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = serialization.load_pem_public_key((block + marker).strip().encode())
        if not isinstance(key, Ed25519PublicKey):
            raise ValueError(f"{path.name} holds a key that is not Ed25519")
        keys.append(key)
    if not keys:
        raise ValueError(f"{path.name} holds no public key")
    return keys


class TokenVerifier:
    """Verifies access tokens against a fixed set of public keys."""

    def __init__(
        self,
        keys: list[Ed25519PublicKey],
        issuer: str,
        audience: str,
        cache_size: int = VERIFIED_CACHE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._keys = {public_jwk(key)["kid"]: key for key in keys}
        self._checkers = {
            kid: VerifyKey(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
            for kid, key in self._keys.items()
        }
        self.issuer = issuer
        self.audience = audience
        self._cache: OrderedDict[bytes, Principal] = OrderedDict()
        self._cache_size = cache_size
        self._clock = clock
        # Auth and rooms may verify from worker threads; the gateway only from its event loop.
        self._lock = threading.Lock()

    @property
    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [public_jwk(key) for key in self._keys.values()]}

    def verify(self, token: str) -> Principal:
        """The token's principal, from the cache while the token is unexpired, else checked in full."""
        now = self._clock()
        # Keyed by a digest of the whole token: as exact as the string, a seventh of its size.
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        with self._lock:
            cached = self._cache.get(digest)
            if cached is not None:
                if now < cached.expires_at:
                    self._cache.move_to_end(digest)
                    return cached
                del self._cache[digest]
        principal = self._verify(token)
        with self._lock:
            self._cache[digest] = principal
            self._cache.move_to_end(digest)
            # The least recently used go first: over the bound, and expired ones at the old end.
            while self._cache and (
                len(self._cache) > self._cache_size or next(iter(self._cache.values())).expires_at <= now
            ):
                self._cache.popitem(last=False)
        return principal

    def _verify(self, token: str) -> Principal:
        match = _COMPACT_JWS.fullmatch(token)
        if match is None:
            raise InvalidToken("malformed token")
        header_b64, payload_b64, signature_b64 = match.groups()
        header = _json_object(_b64url_decode(header_b64))
        if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
            raise InvalidToken("unexpected token type or algorithm")
        if any(name in header for name in _FORBIDDEN_HEADERS):
            raise InvalidToken("token names its own key")
        if "b64" in header:
            raise InvalidToken("unencoded payload")
        kid = header.get("kid")
        checker = self._checkers.get(kid) if isinstance(kid, str) else None
        if checker is None:
            raise InvalidToken("unknown signing key")
        try:
            checker.verify(token[: match.end(2)].encode("ascii"), _b64url_decode(signature_b64))
        except (BadSignatureError, SodiumValueError) as exc:  # a forged signature, or not 64 bytes
            raise InvalidToken("Signature verification failed") from exc
        claims = _json_object(_b64url_decode(payload_b64))
        if any(claims.get(name) is None for name in REQUIRED_CLAIMS):
            raise InvalidToken("token lacks a required claim")
        if claims["iss"] != self.issuer:
            raise InvalidToken("Invalid issuer")
        # Strict: one audience, a string, exactly ours; a list of audiences is refused.
        if claims["aud"] != self.audience:
            raise InvalidToken("Invalid audience")
        expires_at, issued_at, not_before = claims["exp"], claims["iat"], claims.get("nbf", 0)
        # type(), not isinstance(): a boolean is not a time.
        if type(expires_at) is not int or type(issued_at) is not int or type(not_before) is not int:
            raise InvalidToken("exp, iat and nbf must be integers")
        # One clock for these and the cache: what it is told has expired is refused here too.
        now = self._clock()
        if expires_at <= now:
            raise InvalidToken("Signature has expired")
        if not_before > now:
            raise InvalidToken("The token is not yet valid (nbf)")
        if issued_at > now:
            raise InvalidToken("The token is not yet valid (iat)")
        user_id, username, session_id = claims["sub"], claims["username"], claims["sid"]
        if not all(isinstance(value, str) for value in (user_id, username, session_id, claims.get("jti", ""))):
            raise InvalidToken("sub, sid, username and jti must be strings")
        return Principal(user_id=user_id, username=username, session_id=session_id, expires_at=expires_at)


class TokenSigner:
    """Issues access tokens; only the auth service has one."""

    def __init__(self, key: Ed25519PrivateKey, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._key = key
        self._kid = public_jwk(key.public_key())["kid"]
        self.issuer = issuer
        self.audience = audience
        self.ttl_seconds = ttl_seconds

    def issue(self, user_id: str, username: str, session_id: str) -> tuple[str, int]:
        """A signed token and the second it expires at."""
        now = int(time.time())
        expires_at = now + self.ttl_seconds
        claims = {
            "iss": self.issuer,
            "aud": self.audience,
            "sub": user_id,
            "sid": session_id,
            "username": username,
            "iat": now,
            "nbf": now,
            "exp": expires_at,
            "jti": uuid.uuid4().hex,
        }
        token = jwt.encode(claims, self._key, algorithm=ALGORITHM, headers={"kid": self._kid, "typ": TOKEN_TYPE})
        return token, expires_at
