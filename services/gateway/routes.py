"""``GET /ws?room=CODE[&since=ID]``: the chat socket.

Served as plain ASGI, not as a FastAPI route: a socket lives for hours and each
layer it passes through (middleware, routing, dependency solving) keeps its
frames alive that long, about 9 KiB per idle socket. The handler reads what it
needs from the gateway's context instead of through ``Depends``.
"""

from fastapi import WebSocket
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.datastructures import QueryParams
from starlette.requests import cookie_parser

from services.common import ratelimit
from services.common.redis_schema import parse_event_id
from services.common.room_codes import normalize
from services.common.sessions import RevocationsUnknown, revocation_lookups, revoked_by, token_from
from services.common.tokens import InvalidToken, Principal
from services.gateway.admission import Refused, Seat, retry_reason
from services.gateway.closes import Close, ErrorCode
from services.gateway.connection import ClientConnection
from services.gateway.context import GatewayContext
from services.gateway.frames import FrameError
from services.gateway.line import raise_first_error
from services.gateway.timeline import EventId

SOCKET_PATH = "/ws"
# The request headers the socket reads (ASGI names are lowercase).
HANDSHAKE_HEADERS = frozenset({b"authorization", b"cookie", b"origin"})
# A stream id's parts are 64-bit unsigned integers.
MAX_ID_PART = 2**64 - 1


def parse_since(value: str) -> EventId:
    """The ``since`` parameter as an event id; ValueError for anything a stream id cannot be."""
    since = parse_event_id(value)
    if since[0] > MAX_ID_PART or since[1] > MAX_ID_PART:
        raise ValueError(f"event id out of range: {value!r}")
    return since


async def chat_socket(websocket: WebSocket, context: GatewayContext) -> None:
    # This frame lives as long as the socket: it holds the connection and nothing of the handshake.
    connection = await _admit(websocket, context)
    if connection is None:
        return
    try:
        live = await connection.run()
    finally:
        connection.release_seat()
    if not live:
        await _count_miss(context, connection.principal, ratelimit.client_address(websocket))


def _handshake(websocket: WebSocket) -> tuple[str | None, bool, str, str | None, str | None]:
    """The token, whether it came from the cookie, the Origin, the room code and ``since``, read from the scope.

    One pass over the raw headers (the first of each counts, as for Starlette's
    views), without the ``WebSocket``'s cached views, which would keep the
    handshake for the socket's life; the protocol drops the scope's headers once
    the socket is accepted.
    """
    wanted: dict[bytes, str] = {}
    for name, value in websocket.scope["headers"]:
        if name in HANDSHAKE_HEADERS and name not in wanted:
            wanted[name] = value.decode("latin-1")
    cookie = wanted.get(b"cookie")
    token, from_cookie = token_from(
        {"authorization": wanted.get(b"authorization", "")}, cookie_parser(cookie) if cookie else {}
    )
    query = QueryParams(websocket.scope["query_string"])
    return token, from_cookie, wanted.get(b"origin", ""), normalize(query.get("room") or ""), query.get("since")


async def _admit(websocket: WebSocket, context: GatewayContext) -> ClientConnection | None:
    """Everything before the join: origin, token, room code, admission, session; None if refused (and closed)."""
    settings = context.settings
    token, from_cookie, origin, code, since_param = _handshake(websocket)
    if from_cookie and origin.rstrip("/") not in settings.allowed_origins:
        # Cross-site WebSocket hijacking: a cookie sent by a foreign page is refused at the handshake.
        await websocket.close(code=Close.POLICY)
        return None
    if context.draining:
        await websocket.close(code=Close.SERVICE_RESTART)
        return None
    if context.hub.bus_lost_for(code) > settings.pubsub_health_seconds:
        # Cut off from Redis, not a blip (a blip's socket waits for the bus): refused before the upgrade, so
        # the edge tries another replica instead of this one.
        await websocket.send_denial_response(
            JSONResponse(
                {"detail": "This replica cannot reach Redis right now; try again."},
                status_code=503,
                headers={"Retry-After": "1"},
            )
        )
        return None
    wait = context.admission.handshakes.admit()
    if wait is not None:
        # Over the replica's handshake rate: refused before any token or Redis work. Upgraded first, so
        # that a browser reads the 1013 and its hint (a refused upgrade shows it a bare 1006), and the
        # edge does not carry the client to another replica that a storm loads as much.
        context.metrics.handshakes_refused.inc()
        await websocket.accept()
        await websocket.close(Close.TRY_AGAIN, retry_reason("too many handshakes on this replica", wait))
        return None
    await websocket.accept()
    try:
        principal = context.verifier.verify(token or "")
    except InvalidToken:
        await websocket.close(Close.UNAUTHENTICATED, "not authenticated")
        return None
    if code is None:
        await websocket.close(Close.ROOM_GONE, "no live room with this code")
        return None
    address = ratelimit.client_address(websocket)
    admission = context.admission
    if admission.guessing(principal.user_id, address):
        await websocket.close(Close.POLICY, "too many unknown room codes; wait before trying another")
        return None
    try:
        seat = admission.admit(principal.user_id, address)
    except Refused as refused:
        context.metrics.refused.inc()
        await websocket.close(refused.code, refused.reason)
        return None
    try:
        return await _seated(websocket, context, principal, code, since_param, seat)
    except BaseException:
        seat.release()
        raise


async def _seated(
    websocket: WebSocket, context: GatewayContext, principal: Principal, code: str, since_param: str | None, seat: Seat
) -> ClientConnection | None:
    """The admitted socket's ``since`` and session checked; None (seat given back, socket closed) if revoked."""
    since = None
    if since_param:
        try:
            since = parse_since(since_param)
        except ValueError:
            error = FrameError(
                ErrorCode.INVALID_SINCE, "'since' is not an event id; sending the latest events instead."
            )
            await websocket.send_text(error.frame())
    connection = ClientConnection(websocket, principal, code, since, context, seat)
    # Watched before the revocation check, so a logout racing this handshake still closes the socket.
    context.hub.watch_session(connection)
    try:
        # The room goes in this gateway's rooms index in the same round trip; harmless if the socket goes no further.
        replies = await context.commands.run([*revocation_lookups(principal.session_id), connection.index_room()])
        revoked = revoked_by(*raise_first_error(replies)[:2])
    except (RevocationsUnknown, RedisError):
        context.hub.detach(connection)
        seat.release()
        await websocket.close(Close.TRY_AGAIN, "sessions cannot be checked right now; reconnect")
        return None
    if revoked:
        context.hub.detach(connection)
        seat.release()
        await websocket.close(Close.UNAUTHENTICATED, "session ended")
        return None
    return connection


async def _count_miss(context: GatewayContext, principal: Principal, address: str) -> None:
    """A code that is not live spends the guessing budget shared with the rooms API; past it, this replica refuses."""
    try:
        verdict = await ratelimit.reserve(
            context.scripts, ratelimit.room_miss_budgets(context.settings, principal.user_id, address)
        )
    except RedisError:
        return
    if not verdict.allowed:
        context.admission.block_guesses(principal.user_id, address, verdict.retry_after)
