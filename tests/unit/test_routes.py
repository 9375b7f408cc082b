"""The chat socket's handshake (services/gateway/routes.py), driven through ASGI with fakes of Sala's seams."""

import asyncio
import time
from types import SimpleNamespace

from redis.exceptions import ConnectionError as RedisConnectionError
from starlette.websockets import WebSocket

from services.gateway.closes import Close
from services.gateway.routes import chat_socket
from tests.unit.fakes import context, hub, principal


class ASGISocket:
    """One handshake's ASGI conversation: what the app sent back."""

    def __init__(self, room: str = "ACDE") -> None:
        self.scope = {
            "type": "websocket",
            "path": "/ws",
            "headers": [(b"authorization", b"Bearer token")],
            "query_string": f"room={room}".encode(),
            "client": ("127.0.0.1", 40000),
            "extensions": {"websocket.http.response": {}},
        }
        self.sent: list[dict] = []
        self._incoming = [{"type": "websocket.connect"}]

    async def receive(self) -> dict:
        if self._incoming:
            return self._incoming.pop(0)
        await asyncio.Future()
        return {}

    async def send(self, message: dict) -> None:
        self.sent.append(message)

    def websocket(self) -> WebSocket:
        return WebSocket(self.scope, self.receive, self.send)


class UnreachableRedis:
    """The gateway's commands when Redis is down: every batch fails, as a line out of retries does."""

    def __init__(self) -> None:
        self.batches: list[list[tuple]] = []

    async def run(self, commands: list[tuple]) -> list:
        self.batches.append(list(commands))
        raise RedisConnectionError("Redis is down")


def gateway_context(commands: object) -> object:
    shared_hub = hub()
    shared_hub._control.connected.set()
    ctx = context(hub=shared_hub)
    ctx.commands = commands
    ctx.verifier = SimpleNamespace(verify=lambda token: principal())
    return ctx


async def test_redis_down_during_the_revocation_check_closes_1013_and_forgets_the_socket():
    """Issue 11 defect 1: a RedisError escaped, leaving the socket in ``hub.sessions`` and the client a 1011."""
    ctx = gateway_context(UnreachableRedis())
    asgi = ASGISocket()
    await chat_socket(asgi.websocket(), ctx)
    (batch,) = ctx.commands.batches
    assert [command[0] for command in batch] == ["EXISTS", "EXISTS", "SADD"], "one round trip: session and index"
    assert asgi.sent[0]["type"] == "websocket.accept"
    assert asgi.sent[-1] == {"type": "websocket.close", "code": Close.TRY_AGAIN, "reason": asgi.sent[-1]["reason"]}
    assert ctx.hub.sessions == {}, "no watcher is left behind"


async def test_a_gateway_without_its_bus_refuses_the_handshake_with_503():
    ctx = gateway_context(UnreachableRedis())
    ctx.hub._control.connected.clear()
    ctx.hub._control.lost_at = time.monotonic() - ctx.settings.pubsub_health_seconds - 1
    asgi = ASGISocket()
    await chat_socket(asgi.websocket(), ctx)
    start = asgi.sent[0]
    assert start["type"] == "websocket.http.response.start" and start["status"] == 503
    assert (b"retry-after", b"1") in start["headers"]
    assert ctx.hub.sessions == {}


def recording_verifier(ctx: object) -> list[str]:
    """Have ``ctx`` verify every token as valid, recording which token it was given."""
    seen: list[str] = []

    def verify(token: str) -> object:
        seen.append(token)
        return principal()

    ctx.verifier = SimpleNamespace(verify=verify)
    return seen


async def test_the_first_authorization_header_is_the_one_verified():
    ctx = gateway_context(UnreachableRedis())
    seen = recording_verifier(ctx)
    asgi = ASGISocket()
    asgi.scope["headers"] = [(b"authorization", b"Bearer first"), (b"authorization", b"Bearer second")]
    await chat_socket(asgi.websocket(), ctx)
    assert seen == ["first"]


async def test_a_session_cookie_from_a_foreign_origin_is_refused_before_the_upgrade():
    ctx = gateway_context(UnreachableRedis())
    seen = recording_verifier(ctx)
    asgi = ASGISocket()
    asgi.scope["headers"] = [(b"cookie", b"chat_session=from-cookie"), (b"origin", b"https://evil.example")]
    await chat_socket(asgi.websocket(), ctx)
    assert [(sent["type"], sent["code"]) for sent in asgi.sent] == [("websocket.close", Close.POLICY)]
    assert seen == []


async def test_a_session_cookie_from_an_allowed_origin_is_verified():
    ctx = gateway_context(UnreachableRedis())
    seen = recording_verifier(ctx)
    asgi = ASGISocket()
    origin = ctx.settings.allowed_origins[0].encode()
    asgi.scope["headers"] = [(b"origin", origin + b"/"), (b"cookie", b"theme=dark; chat_session=from-cookie")]
    await chat_socket(asgi.websocket(), ctx)
    assert asgi.sent[0]["type"] == "websocket.accept"
    assert seen == ["from-cookie"]
