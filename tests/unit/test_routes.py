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
    """A Redis that fails every pipeline, as during an outage."""

    def pipeline(self, transaction: bool = True) -> "UnreachableRedis":
        return self

    async def __aenter__(self) -> "UnreachableRedis":
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    def exists(self, key: str) -> "UnreachableRedis":
        return self

    async def execute(self) -> list:
        raise RedisConnectionError("Redis is down")


def gateway_context(redis: object) -> object:
    shared_hub = hub()
    shared_hub._control.connected.set()
    ctx = context(hub=shared_hub)
    ctx.redis = redis
    ctx.verifier = SimpleNamespace(verify=lambda token: principal())
    return ctx


async def test_redis_down_during_the_revocation_check_closes_1013_and_forgets_the_socket():
    """Issue 11 defect 1: a RedisError escaped, leaving the socket in ``hub.sessions`` and the client a 1011."""
    ctx = gateway_context(UnreachableRedis())
    asgi = ASGISocket()
    await chat_socket(asgi.websocket(), ctx)
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
