"""Access tokens under attack: every forgery a JWT verifier is known to fall for is refused.

Pure logic, no servers. Forged tokens are built by hand (base64url + a signature
of our choosing) wherever PyJWT would refuse to build them itself, so the test
does not depend on the library it is checking.
"""

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import jwt
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.common.tokens import (
    ALGORITHM,
    REQUIRED_CLAIMS,
    TOKEN_TYPE,
    InvalidToken,
    Principal,
    TokenSigner,
    TokenVerifier,
    load_private_key,
    load_public_keys,
    public_jwk,
)

ISSUER = "sala"
AUDIENCE = "sala"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: object) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# Tokens in the tables below are built at import, and the suite may reach them an hour later: they
# live a day, and the ones meant for the future start two days on.
TOKEN_LIFETIME = 86400


def claims(**overrides: object) -> dict[str, object]:
    """The claims auth puts in a token, with some replaced (a value of None drops the claim)."""
    now = int(time.time())
    base: dict[str, object] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": str(uuid.uuid4()),
        "sid": str(uuid.uuid4()),
        "username": "alice",
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME,
        "jti": uuid.uuid4().hex,
    }
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def kid_of(key: Ed25519PrivateKey) -> str:
    return public_jwk(key.public_key())["kid"]


def header(key: Ed25519PrivateKey, **overrides: object) -> dict[str, object]:
    """The header auth puts on a token, with some fields replaced (None drops the field)."""
    base: dict[str, object] = {"alg": ALGORITHM, "typ": TOKEN_TYPE, "kid": kid_of(key)}
    base.update(overrides)
    return {name: value for name, value in base.items() if value is not None}


def signed(key: Ed25519PrivateKey, head_segment: str, body_segment: str) -> str:
    """A token signed with ``key`` over exactly these two segments, however they are spelled."""
    signing_input = f"{head_segment}.{body_segment}"
    return f"{signing_input}.{b64url(key.sign(signing_input.encode('utf-8', 'surrogatepass')))}"


def ed25519_token(key: Ed25519PrivateKey, head: dict[str, object], body: dict[str, object]) -> str:
    """A token signed with ``key`` over exactly this header and payload, whatever they say."""
    return signed(key, b64url_json(head), b64url_json(body))


def hmac_token(secret: bytes, head: dict[str, object], body: dict[str, object]) -> str:
    """An HS256 token: what an attacker makes when a verifier might use a public key as an HMAC secret."""
    signing_input = f"{b64url_json(head)}.{b64url_json(body)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def public_pem(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def verifier(key: Ed25519PrivateKey) -> TokenVerifier:
    return TokenVerifier([key.public_key()], ISSUER, AUDIENCE)


@pytest.fixture(scope="module")
def signer(key: Ed25519PrivateKey) -> TokenSigner:
    return TokenSigner(key, ISSUER, AUDIENCE, ttl_seconds=600)


# The round trip, and that the hand-built tokens of this file are accepted when nothing is wrong
# with them: otherwise every "refused" below could be refused for the wrong reason.


def test_signed_token_round_trips(signer: TokenSigner, verifier: TokenVerifier) -> None:
    user_id, session_id = str(uuid.uuid4()), str(uuid.uuid4())
    token, expires_at = signer.issue(user_id, "alice", session_id)
    assert verifier.verify(token) == Principal(user_id, "alice", session_id, expires_at)
    head = json.loads(b64url_decode(token.split(".")[0]))
    assert head == {"alg": "EdDSA", "typ": "at+jwt", "kid": signer._kid}
    assert expires_at - int(time.time()) in range(595, 601)


def test_hand_built_token_is_accepted_when_nothing_is_wrong(key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
    body = claims()
    principal = verifier.verify(ed25519_token(key, header(key), body))
    assert principal.user_id == body["sub"] and principal.session_id == body["sid"]


# Forgeries. Each builds a token from the real key (where the attack needs a valid signature)
# or from what an attacker has: the public key, another key, a token to tamper with.

Forge = Callable[[Ed25519PrivateKey], str]


def _alg_none(alg: str) -> Forge:
    return lambda key: f"{b64url_json(header(key, alg=alg))}.{b64url_json(claims())}."


def _hs256(secret_of: Callable[[Ed25519PrivateKey], bytes]) -> Forge:
    return lambda key: hmac_token(secret_of(key), header(key, alg="HS256"), claims())


def _hs256_claiming_eddsa(key: Ed25519PrivateKey) -> Forge:
    # HMAC over the public key, but the header still says EdDSA: must fail the Ed25519 signature check.
    return hmac_token(public_pem(key), header(key), claims())


def _real_key(head: dict[str, object] | None = None, **claim_overrides: object) -> Forge:
    return lambda key: ed25519_token(key, header(key, **(head or {})), claims(**claim_overrides))


def _other_key_same_kid(key: Ed25519PrivateKey) -> str:
    return ed25519_token(Ed25519PrivateKey.generate(), header(key), claims())


def _embedded_attacker_jwk(key: Ed25519PrivateKey) -> str:
    # CVE-2018-0114 style: the token carries the attacker's own public key and is signed by it.
    attacker = Ed25519PrivateKey.generate()
    jwk = public_jwk(attacker.public_key())
    return ed25519_token(attacker, header(attacker, jwk=jwk), claims())


def _tampered_payload(key: Ed25519PrivateKey) -> str:
    head, _, signature = ed25519_token(key, header(key), claims(username="alice")).split(".")
    return f"{head}.{b64url_json(claims(username='admin'))}.{signature}"


def _signature_stripped(key: Ed25519PrivateKey) -> str:
    head, body, _ = ed25519_token(key, header(key), claims()).split(".")
    return f"{head}.{body}."


def _signature_of_another_token(key: Ed25519PrivateKey) -> str:
    _, _, signature = ed25519_token(key, header(key), claims()).split(".")
    return f"{b64url_json(header(key))}.{b64url_json(claims())}.{signature}"


NOW = int(time.time())

FORGERIES: dict[str, Forge] = {
    "alg-none": _alg_none("none"),
    "alg-None": _alg_none("None"),
    "alg-NONE": _alg_none("NONE"),
    "hs256-public-key-pem": _hs256(public_pem),
    "hs256-public-key-jwk-json": _hs256(lambda key: json.dumps(public_jwk(key.public_key())).encode()),
    "hs256-public-key-jwk-json-compact": _hs256(
        lambda key: json.dumps(public_jwk(key.public_key()), separators=(",", ":"), sort_keys=True).encode()
    ),
    "hs256-public-key-raw": _hs256(raw_public),
    "hmac-signature-header-says-eddsa": _hs256_claiming_eddsa,
    "wrong-iss": _real_key(iss="evil"),
    "iss-prefix-sala-evil": _real_key(iss="sala-evil"),
    "iss-prefix-sal": _real_key(iss="sal"),
    "iss-empty": _real_key(iss=""),
    "iss-as-list": _real_key(iss=["sala"]),
    "iss-missing": _real_key(iss=None),
    "wrong-aud": _real_key(aud="other-service"),
    "aud-prefix-sala-evil": _real_key(aud="sala-evil"),
    "aud-prefix-sal": _real_key(aud="sal"),
    "aud-list-with-another-audience": _real_key(aud=["other-service", "sala"]),
    "aud-missing": _real_key(aud=None),
    "expired": _real_key(exp=NOW - 30, iat=NOW - 630, nbf=NOW - 630),
    "exp-missing": _real_key(exp=None),
    "exp-not-a-number": _real_key(exp="never"),
    "not-yet-valid": _real_key(nbf=NOW + 2 * TOKEN_LIFETIME),
    "sub-missing": _real_key(sub=None),
    "sid-missing": _real_key(sid=None),
    "username-missing": _real_key(username=None),
    "iat-missing": _real_key(iat=None),
    "kid-unknown": _real_key({"kid": "not-a-key-we-know"}),
    "kid-missing": _real_key({"kid": None}),
    "kid-not-a-string": _real_key({"kid": ["list"]}),
    "jku-header": _real_key({"jku": "https://evil.example/jwks.json"}),
    "x5u-header": _real_key({"x5u": "https://evil.example/cert.pem"}),
    "jwk-header": _real_key({"jwk": {"kty": "OKP", "crv": "Ed25519", "x": "AAAA"}}),
    "x5c-header": _real_key({"x5c": ["MIIB"]}),
    "crit-header": _real_key({"crit": ["b64"], "b64": False}),
    "typ-JWT": _real_key({"typ": "JWT"}),
    "typ-missing": _real_key({"typ": None}),
    "typ-id-token": _real_key({"typ": "id+jwt"}),
    "signed-by-another-key-same-kid": _other_key_same_kid,
    "embedded-attacker-jwk": _embedded_attacker_jwk,
    "tampered-payload": _tampered_payload,
    "signature-stripped": _signature_stripped,
    "signature-of-another-token": _signature_of_another_token,
    "empty": lambda key: "",
    "garbage": lambda key: "not a token",
    "two-segments": lambda key: f"{b64url_json(header(key))}.{b64url_json(claims())}",
    "header-not-an-object": lambda key: f"{b64url(b'[]')}.{b64url_json(claims())}.AAAA",
    "header-not-json": lambda key: f"{b64url(b'{nope')}.{b64url_json(claims())}.AAAA",
    "payload-not-json": lambda key: ed25519_token(key, header(key), {}).split(".")[0] + ".bm9wZQ.AAAA",
    "lone-surrogate": lambda key: "\ud800" + ed25519_token(key, header(key), claims()),
}


@pytest.mark.parametrize("forge", FORGERIES.values(), ids=FORGERIES.keys())
def test_forged_token_is_refused(forge: Forge, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(forge(key))


def test_payload_that_is_not_json_is_refused_even_with_a_valid_signature(
    key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    signing_input = f"{b64url_json(header(key))}.{b64url(b'not json')}"
    token = f"{signing_input}.{b64url(key.sign(signing_input.encode()))}"
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_pyjwt_itself_refuses_to_make_the_hs256_confusion_token(key: Ed25519PrivateKey) -> None:
    """Why the HS256 forgeries above are built by hand."""
    with pytest.raises(jwt.exceptions.InvalidKeyError):
        jwt.encode(claims(), public_pem(key), algorithm="HS256")


# What the verifier's own parser must refuse. Each token is signed over exactly its text by the
# real key wherever the check under test comes after the signature, so it is refused for that
# check alone; a lenient decoder (padding, junk or the other alphabet skipped) would accept it.

_BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _segments(key: Ed25519PrivateKey, **claim_overrides: object) -> tuple[str, str, str]:
    head, body, signature = ed25519_token(key, header(key), claims(**claim_overrides)).split(".")
    return head, body, signature


def _signature_padded(key: Ed25519PrivateKey) -> str:
    token = ed25519_token(key, header(key), claims())
    assert len(token.rsplit(".", 1)[1]) % 4 == 2  # 64 bytes: "==" is exactly the padding it lacks
    return token + "=="


def _payload_padded(key: Ed25519PrivateKey) -> str:
    # One of three usernames a byte apart gives a payload whose length is not a multiple of 4.
    body = next(body for n in range(1, 4) if len(body := b64url_json(claims(username="a" * n))) % 4)
    return signed(key, b64url_json(header(key)), body + "=" * (-len(body) % 4))


def _payload_with_junk(key: Ed25519PrivateKey) -> str:
    head, body, _ = _segments(key)
    return signed(key, head, f"{body[:8]}!!!!{body[8:]}")


def _payload_in_the_standard_alphabet(key: Ed25519PrivateKey) -> str:
    head, body, _ = _segments(key, username="~~~~~~")  # "~~~" encodes as "fn5-"
    standard = body.replace("-", "+").replace("_", "/")
    assert standard != body
    return signed(key, head, standard)


def _signature_with_stray_trailing_bits(key: Ed25519PrivateKey) -> str:
    # 64 bytes in 86 characters leave the last one 4 unused bits: set one, the same bytes to a lax decoder.
    token = ed25519_token(key, header(key), claims())
    value = _BASE64URL.index(token[-1])
    assert value & 0b1111 == 0
    return token[:-1] + _BASE64URL[value | 1]


def _with_text_in_payload(text: str) -> Forge:
    def forge(key: Ed25519PrivateKey) -> str:
        head, body, _ = _segments(key)
        return signed(key, head, body[:8] + text + body[8:])

    return forge


def _signed_payload(payload: bytes) -> Forge:
    return lambda key: signed(key, b64url_json(header(key)), b64url(payload))


def _signed_header(head: bytes) -> Forge:
    return lambda key: signed(key, b64url(head), b64url_json(claims()))


def _real_key_with_null(name: str) -> Forge:
    return lambda key: ed25519_token(key, header(key), {**claims(), name: None})


def _tampered_header(key: Ed25519PrivateKey) -> str:
    _, body, signature = _segments(key)
    return f"{b64url_json(header(key, extra='added after signing'))}.{body}.{signature}"


def _alg_none_with_a_valid_signature(key: Ed25519PrivateKey) -> str:
    return ed25519_token(key, header(key, alg="none"), claims())


REFUSED_BY_THE_PARSER: dict[str, Forge] = {
    "signature-padded": _signature_padded,
    "payload-padded": _payload_padded,
    "payload-with-junk-characters": _payload_with_junk,
    "payload-in-the-standard-base64-alphabet": _payload_in_the_standard_alphabet,
    "signature-with-stray-trailing-bits": _signature_with_stray_trailing_bits,
    "four-segments": lambda key: ed25519_token(key, header(key), claims()) + ".AAAA",
    "four-segments-signature-repeated": lambda key: (
        (token := ed25519_token(key, header(key), claims())) + "." + token.rsplit(".", 1)[1]
    ),
    "signature-length-one-past-a-multiple-of-4": lambda key: ed25519_token(key, header(key), claims()) + "AAA",
    "empty-payload-segment": lambda key: signed(key, b64url_json(header(key)), ""),
    "trailing-newline": lambda key: ed25519_token(key, header(key), claims()) + "\n",
    "non-ascii-letter": _with_text_in_payload("\u00e9"),
    "non-ascii-digit": _with_text_in_payload("\u0663"),
    "lone-surrogate-inside": _with_text_in_payload("\udcff"),
    "header-null": _signed_header(b"null"),
    "header-a-string": _signed_header(b'"EdDSA"'),
    "header-a-number": _signed_header(b"1"),
    "header-not-utf-8": _signed_header(b'{"alg":"EdDSA","typ":"at+jwt","kid":"\xff"}'),
    "payload-a-list": _signed_payload(b"[]"),
    "payload-null": _signed_payload(b"null"),
    "payload-a-string": _signed_payload(b'"sala"'),
    "payload-a-number": _signed_payload(b"1"),
    "payload-empty": _signed_payload(b""),
    "payload-not-utf-8": _signed_payload(b'{"username":"\xff"}'),
    "alg-none-with-a-valid-signature": _alg_none_with_a_valid_signature,
    "alg-eddsa-lowercase": _real_key({"alg": "eddsa"}),
    "tampered-header": _tampered_header,
    "kid-an-object": _real_key({"kid": {"kid": "x"}}),
    "b64-false-header": _real_key({"b64": False}),
    "exp-numeric-string": _real_key(exp=str(NOW + TOKEN_LIFETIME)),
    "exp-float": _real_key(exp=float(NOW + TOKEN_LIFETIME)),
    "exp-beyond-64-bits": _real_key(exp=2**70),
    "exp-null": _real_key_with_null("exp"),
    "iat-string": _real_key(iat="now"),
    "iat-numeric-string": _real_key(iat=str(NOW)),
    "iat-float": _real_key(iat=float(NOW)),
    "iat-true": _real_key(iat=True),
    "iat-false": _real_key(iat=False),
    "iat-in-the-future": _real_key(iat=NOW + 2 * TOKEN_LIFETIME),
    "nbf-string": _real_key(nbf="now"),
    "nbf-numeric-string": _real_key(nbf=str(NOW)),
    "nbf-float": _real_key(nbf=float(NOW)),
    "nbf-true": _real_key(nbf=True),
    "nbf-false": _real_key(nbf=False),
    "nbf-null": _real_key_with_null("nbf"),
    "nbf-in-the-future": _real_key(nbf=NOW + 2 * TOKEN_LIFETIME, iat=NOW),
    "aud-a-list-of-just-ours": _real_key(aud=[AUDIENCE]),
    "aud-null": _real_key_with_null("aud"),
    "iss-null": _real_key_with_null("iss"),
    "sub-null": _real_key_with_null("sub"),
    "sub-not-a-string": _real_key(sub=1),
    "sid-not-a-string": _real_key(sid=1),
    "username-not-a-string": _real_key(username=["alice"]),
    "jti-not-a-string": _real_key(jti=1),
    "jti-null": _real_key_with_null("jti"),
}


@pytest.mark.parametrize("forge", REFUSED_BY_THE_PARSER.values(), ids=REFUSED_BY_THE_PARSER.keys())
def test_token_the_parser_must_refuse_is_refused(forge: Forge, key: Ed25519PrivateKey, verifier: TokenVerifier) -> None:
    with pytest.raises(InvalidToken):
        verifier.verify(forge(key))


def test_the_times_are_judged_to_the_second_by_the_verifiers_clock(key: Ed25519PrivateKey) -> None:
    clock = Clock()
    verifier = TokenVerifier([key.public_key()], ISSUER, AUDIENCE, cache_size=0, clock=clock)
    now = int(clock.now)
    # On the second and half a second past it: exp is the first second refused, nbf and iat the last accepted.
    for offset in (0, 0.5):
        clock.now = now + offset
        for accepted in ({"exp": now + 1}, {"iat": now, "nbf": now}):
            verifier.verify(ed25519_token(key, header(key), claims(**accepted)))
        for refused in ({"exp": now}, {"nbf": now + 1}, {"iat": now + 1}):
            with pytest.raises(InvalidToken):
                verifier.verify(ed25519_token(key, header(key), claims(**refused)))


def test_no_claim_is_read_before_the_signature_is_checked(
    key: Ed25519PrivateKey, verifier: TokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[bytes] = []
    loads = orjson.loads

    def recording(data: bytes) -> object:
        parsed.append(data)
        return loads(data)

    monkeypatch.setattr(orjson, "loads", recording)
    head, body, signature = _segments(key)
    verifier.verify(f"{head}.{body}.{signature}")
    assert parsed == [b64url_decode(head), b64url_decode(body)]
    parsed.clear()
    forged = ed25519_token(Ed25519PrivateKey.generate(), header(key), claims(username="admin"))
    with pytest.raises(InvalidToken):
        verifier.verify(forged)
    assert parsed == [b64url_decode(head)]


# Against PyJWT, as the verifier used it before it parsed tokens itself: the same verdict on every
# token PyJWT makes, but for the documented places where the verifier is stricter.


def _pyjwt_claims(token: str, key: Ed25519PrivateKey) -> dict | None:
    try:
        return jwt.decode(
            token,
            key.public_key(),
            algorithms=[ALGORITHM],
            issuer=ISSUER,
            audience=AUDIENCE,
            options={"require": REQUIRED_CLAIMS, "strict_aud": True},
        )
    except jwt.PyJWTError:
        return None


def _by_pyjwt(body: dict[str, object], head: dict[str, object] | None = None) -> Forge:
    def forge(key: Ed25519PrivateKey) -> str:
        return jwt.encode(
            body, key, algorithm=ALGORITHM, headers={"kid": kid_of(key), "typ": TOKEN_TYPE, **(head or {})}
        )

    return forge


def _with_null(name: str) -> dict[str, object]:
    return {**claims(), name: None}


SAME_VERDICT_AS_PYJWT: dict[str, Forge] = {
    "valid": _by_pyjwt(claims()),
    "valid-without-nbf": _by_pyjwt(claims(nbf=None)),
    "valid-without-jti": _by_pyjwt(claims(jti=None)),
    "valid-with-claims-of-its-own": _by_pyjwt(claims(scope="chat", roles=["member"], nested={"a": [1, 2.5, None]})),
    "valid-nbf-and-iat-long-past": _by_pyjwt(claims(iat=NOW - 86400, nbf=NOW - 86400)),
    "valid-unicode-username": _by_pyjwt(claims(username="\u00e9l\u00e8ve \U0001f600")),
    **{f"{name}-missing": _by_pyjwt(claims(**{name: None})) for name in REQUIRED_CLAIMS},
    **{f"{name}-null": _by_pyjwt(_with_null(name)) for name in REQUIRED_CLAIMS if name != "iss"},
    # PyJWT refuses to sign a non-string iss, so those are signed here over the same JSON.
    "iss-null": lambda key: ed25519_token(key, header(key), _with_null("iss")),
    "iss-a-list": _real_key(iss=[ISSUER]),
    "iss-a-number": _real_key(iss=1),
    "iss-wrong": _by_pyjwt(claims(iss="evil")),
    "iss-prefix": _by_pyjwt(claims(iss=ISSUER + "-evil")),
    "aud-wrong": _by_pyjwt(claims(aud="other-service")),
    "aud-empty": _by_pyjwt(claims(aud="")),
    "aud-a-number": _by_pyjwt(claims(aud=1)),
    "aud-a-list-of-just-ours": _by_pyjwt(claims(aud=[AUDIENCE])),
    "aud-a-list-with-ours": _by_pyjwt(claims(aud=["other-service", AUDIENCE])),
    "expired": _by_pyjwt(claims(exp=NOW - 30)),
    "expired-long-ago": _by_pyjwt(claims(exp=0, iat=0, nbf=0)),
    "exp-not-a-number": _by_pyjwt(claims(exp="never")),
    "exp-a-list": _by_pyjwt(claims(exp=[NOW + TOKEN_LIFETIME])),
    "exp-true": _by_pyjwt(claims(exp=True)),
    "nbf-in-the-future": _by_pyjwt(claims(nbf=NOW + 2 * TOKEN_LIFETIME)),
    "nbf-not-a-number": _by_pyjwt(claims(nbf="soon")),
    "nbf-null": _by_pyjwt(_with_null("nbf")),
    "iat-in-the-future": _by_pyjwt(claims(iat=NOW + 2 * TOKEN_LIFETIME)),
    "iat-not-a-number": _by_pyjwt(claims(iat="now")),
    "sub-a-number": _by_pyjwt(claims(sub=1)),
    "jti-a-number": _by_pyjwt(claims(jti=1)),
    "jti-null": _by_pyjwt(_with_null("jti")),
    "b64-false-header": _by_pyjwt(claims(), {"b64": False}),
    "signed-by-another-key-same-kid": lambda key: jwt.encode(
        claims(), Ed25519PrivateKey.generate(), algorithm=ALGORITHM, headers={"kid": kid_of(key), "typ": TOKEN_TYPE}
    ),
    "tampered-payload": _tampered_payload,
    "signature-stripped": _signature_stripped,
    "signature-truncated": lambda key: _by_pyjwt(claims())(key)[:-4],
    "signature-with-stray-trailing-bits": _signature_with_stray_trailing_bits,
    "payload-with-junk-characters": _payload_with_junk,
    "payload-a-list": _signed_payload(b"[]"),
    "payload-not-json": _signed_payload(b"not json"),
}

# Where PyJWT accepts and the verifier refuses: PyJWT takes any time int() takes, no type for sid or
# username, "=" padding on a segment, and a b64 header of anything but false.
STRICTER_THAN_PYJWT: dict[str, Forge] = {
    "exp-float": _by_pyjwt(claims(exp=float(NOW + TOKEN_LIFETIME))),
    "exp-numeric-string": _by_pyjwt(claims(exp=str(NOW + TOKEN_LIFETIME))),
    "exp-beyond-64-bits": _by_pyjwt(claims(exp=2**70)),
    "iat-float": _by_pyjwt(claims(iat=float(NOW))),
    "iat-numeric-string": _by_pyjwt(claims(iat=str(NOW))),
    "iat-true": _by_pyjwt(claims(iat=True)),
    "nbf-float": _by_pyjwt(claims(nbf=float(NOW))),
    "nbf-false": _by_pyjwt(claims(nbf=False)),
    "sid-a-number": _by_pyjwt(claims(sid=1)),
    "username-a-list": _by_pyjwt(claims(username=["alice"])),
    "signature-padded": _signature_padded,
    # PyJWT leaves a b64 of true out of the headers it signs, so this one is signed here.
    "b64-true-header": _real_key({"b64": True}),
}


def test_the_verifier_accepts_exactly_what_pyjwt_accepts(key: Ed25519PrivateKey) -> None:
    verifier = TokenVerifier([key.public_key()], ISSUER, AUDIENCE)
    verdicts = {}
    for name, forge in SAME_VERDICT_AS_PYJWT.items():
        token = forge(key)
        expected = _pyjwt_claims(token, key)
        try:
            principal = verifier.verify(token)
        except InvalidToken:
            principal = None
        verdicts[name] = (expected is not None, principal is not None)
        if expected is not None and principal is not None:
            assert principal == Principal(expected["sub"], expected["username"], expected["sid"], expected["exp"])
    assert {name for name, (pyjwt, ours) in verdicts.items() if pyjwt != ours} == set()
    # Both ways are exercised: the valid ones above, and at least one of every other kind.
    assert sum(pyjwt for pyjwt, _ in verdicts.values()) == 6


@pytest.mark.parametrize("forge", STRICTER_THAN_PYJWT.values(), ids=STRICTER_THAN_PYJWT.keys())
def test_the_verifier_is_stricter_than_pyjwt_only_where_documented(
    forge: Forge, key: Ed25519PrivateKey, verifier: TokenVerifier
) -> None:
    token = forge(key)
    assert _pyjwt_claims(token, key) is not None
    with pytest.raises(InvalidToken):
        verifier.verify(token)


# Key rotation.


def test_verifier_holding_two_keys_accepts_tokens_of_both() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    verifier = TokenVerifier([old.public_key(), new.public_key()], ISSUER, AUDIENCE)
    for signing_key in (old, new):
        token, _ = TokenSigner(signing_key, ISSUER, AUDIENCE, 60).issue("u", "alice", "s")
        assert verifier.verify(token).user_id == "u"
    assert {jwk["kid"] for jwk in verifier.jwks["keys"]} == {kid_of(old), kid_of(new)}
    assert all("d" not in jwk for jwk in verifier.jwks["keys"])


def test_retired_key_is_refused_once_removed() -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    token, _ = TokenSigner(old, ISSUER, AUDIENCE, 60).issue("u", "alice", "s")
    with pytest.raises(InvalidToken):
        TokenVerifier([new.public_key()], ISSUER, AUDIENCE).verify(token)


def test_rotation_file_with_two_public_keys_is_read_whole(tmp_path: Path) -> None:
    old, new = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    (tmp_path / "verify.pem").write_bytes(public_pem(old) + public_pem(new))
    keys = load_public_keys(tmp_path / "verify.pem")
    assert [public_jwk(k)["kid"] for k in keys] == [kid_of(old), kid_of(new)]
    verifier = TokenVerifier(keys, ISSUER, AUDIENCE)
    token, _ = TokenSigner(old, ISSUER, AUDIENCE, 60).issue("u", "alice", "s")
    assert verifier.verify(token).username == "alice"


def test_private_key_file_round_trips(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    (tmp_path / "signing.pem").write_bytes(pem)
    assert kid_of(load_private_key(tmp_path / "signing.pem")) == kid_of(key)


# The kid is the RFC 7638 thumbprint.

# RFC 8037, appendix A.1 to A.3: an Ed25519 key and its RFC 7638 thumbprint.
RFC8037_PRIVATE_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC8037_PUBLIC_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"


def test_kid_is_the_rfc7638_thumbprint_of_the_rfc8037_example_key() -> None:
    key = Ed25519PrivateKey.from_private_bytes(b64url_decode(RFC8037_PRIVATE_D))
    jwk = public_jwk(key.public_key())
    assert jwk["x"] == RFC8037_PUBLIC_X
    assert jwk["kid"] == RFC8037_THUMBPRINT
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519" and jwk["alg"] == "EdDSA" and jwk["use"] == "sig"


def test_kid_matches_a_thumbprint_computed_here_for_a_fresh_key() -> None:
    """RFC 7638 section 3: required members only, in lexicographic order, no whitespace, SHA-256, base64url."""
    key = Ed25519PrivateKey.generate()
    x = b64url(raw_public(key))
    canonical = '{"crv":"Ed25519","kty":"OKP","x":"' + x + '"}'
    expected = b64url(hashlib.sha256(canonical.encode("utf-8")).digest())
    assert public_jwk(key.public_key())["kid"] == expected


# The cache of verified tokens.


class Clock:
    """The verifier's clock, moved by hand."""

    def __init__(self) -> None:
        self.now = float(int(time.time()))

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def full_checks(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every token that went through the signature check, in order."""
    checked: list[str] = []
    verify = TokenVerifier._verify

    def counting(self: TokenVerifier, token: str) -> Principal:
        checked.append(token)
        return verify(self, token)

    monkeypatch.setattr(TokenVerifier, "_verify", counting)
    return checked


def test_a_token_seen_again_is_answered_without_a_second_signature_check(
    key: Ed25519PrivateKey, full_checks: list[str]
) -> None:
    verifier = TokenVerifier([key.public_key()], ISSUER, AUDIENCE)
    token = ed25519_token(key, header(key), claims())
    assert verifier.verify(token) == verifier.verify(token)
    assert full_checks == [token]


def test_a_cached_token_past_its_exp_is_refused(key: Ed25519PrivateKey, full_checks: list[str]) -> None:
    clock = Clock()
    verifier = TokenVerifier([key.public_key()], ISSUER, AUDIENCE, clock=clock)
    body = claims(exp=int(clock.now) + 60)
    token = ed25519_token(key, header(key), body)
    verifier.verify(token)
    clock.now = body["exp"] - 1
    assert verifier.verify(token).user_id == body["sub"]
    assert len(full_checks) == 1
    clock.now = body["exp"]
    with pytest.raises(InvalidToken):
        verifier.verify(token)
    clock.now = body["exp"] + 3600
    with pytest.raises(InvalidToken):
        verifier.verify(token)


def test_the_cache_is_bounded_and_forgets_the_least_recently_used(
    key: Ed25519PrivateKey, full_checks: list[str]
) -> None:
    verifier = TokenVerifier([key.public_key()], ISSUER, AUDIENCE, cache_size=3)
    tokens = [ed25519_token(key, header(key), claims()) for _ in range(5)]
    for token in tokens[:3]:
        verifier.verify(token)
    verifier.verify(tokens[0])  # used again: now the most recent
    verifier.verify(tokens[3])
    verifier.verify(tokens[4])  # tokens 1 and 2 went out, token 0 stayed
    full_checks.clear()
    for token in (tokens[0], tokens[3], tokens[4]):
        verifier.verify(token)
    assert full_checks == []
    verifier.verify(tokens[1])
    assert full_checks == [tokens[1]]


def test_a_different_token_with_the_same_claims_is_verified_afresh(
    key: Ed25519PrivateKey, full_checks: list[str]
) -> None:
    verifier = TokenVerifier([key.public_key()], ISSUER, AUDIENCE)
    body = claims()
    genuine = ed25519_token(key, header(key), body)
    verifier.verify(genuine)
    forged = ed25519_token(Ed25519PrivateKey.generate(), header(key), body)
    with pytest.raises(InvalidToken):
        verifier.verify(forged)
    same_claims_other_header = ed25519_token(key, {"typ": TOKEN_TYPE, "alg": ALGORITHM, "kid": kid_of(key)}, body)
    assert same_claims_other_header != genuine
    assert verifier.verify(same_claims_other_header).user_id == body["sub"]
    assert full_checks == [genuine, forged, same_claims_other_header]


def test_a_refused_token_is_never_remembered_as_valid(key: Ed25519PrivateKey, full_checks: list[str]) -> None:
    clock = Clock()
    verifier = TokenVerifier([key.public_key()], ISSUER, AUDIENCE, clock=clock)
    not_yet = ed25519_token(key, header(key), claims(nbf=int(clock.now) + 3600))
    for _ in range(2):
        with pytest.raises(InvalidToken):
            verifier.verify(not_yet)
    assert full_checks == [not_yet, not_yet]
