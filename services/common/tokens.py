"""Access tokens: Ed25519-signed JWTs (RFC 8725 practices).

Auth holds the private key and signs; every service verifies with public keys
only, so no service but auth can mint a token. Verification pins the algorithm,
checks ``typ``, ``kid``, ``iss``, ``aud`` and the required claims, and ignores
any key a token carries about itself (``jku``, ``x5u``, ``jwk``).

A verifier remembers the tokens it accepted lately (``VERIFIED_CACHE_SIZE``,
least recently used first out), so the same token seen again (a reconnect, a
second tab, the next API call) skips the signature check, about a tenth of a
socket's connect. A remembered token is never accepted at or past its ``exp``;
a refused one is never remembered. Revocation is not the verifier's business:
its callers check the session on every use either way.
"""

import base64
import hashlib
import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

ALGORITHM = "EdDSA"
TOKEN_TYPE = "at+jwt"
REQUIRED_CLAIMS = ["iss", "aud", "sub", "sid", "exp", "iat", "username"]
_FORBIDDEN_HEADERS = ("jku", "x5u", "jwk", "x5c", "crit")
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
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError) as exc:  # ValueError: text that is not UTF-8 (lone surrogates)
            raise InvalidToken("malformed token") from exc
        if header.get("alg") != ALGORITHM or header.get("typ") != TOKEN_TYPE:
            raise InvalidToken("unexpected token type or algorithm")
        if any(name in header for name in _FORBIDDEN_HEADERS):
            raise InvalidToken("token names its own key")
        key = self._keys.get(header.get("kid", ""))
        if key is None:
            raise InvalidToken("unknown signing key")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                issuer=self.issuer,
                audience=self.audience,
                options={"require": REQUIRED_CLAIMS, "strict_aud": True},
            )
        except jwt.PyJWTError as exc:
            raise InvalidToken(str(exc)) from exc
        # The cache's clock must agree: what it is told has expired is refused here too.
        if int(claims["exp"]) <= self._clock():
            raise InvalidToken("Signature has expired")
        return Principal(
            user_id=str(claims["sub"]),
            username=str(claims["username"]),
            session_id=str(claims["sid"]),
            expires_at=int(claims["exp"]),
        )


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
