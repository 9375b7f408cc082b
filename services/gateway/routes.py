"""``GET /ws?room=CODE[&since=ID]``: the chat socket.

Served as plain ASGI, not as a FastAPI route: a socket lives for hours and each
layer it passes through (middleware, routing, dependency solving) keeps its
frames alive that long, about 9 KiB per idle socket. The handler reads what it
needs from the app's state instead of through ``Depends``.
"""

from fastapi import WebSocket, status
from starlette.datastructures import State

from services.common.redis_schema import parse_event_id
from services.common.room_codes import normalize
from services.common.sessions import RevocationsUnknown, session_revoked, token_from
from services.common.tokens import InvalidToken
from services.gateway.connection import (
    CLOSE_ROOM_GONE,
    CLOSE_TRY_AGAIN,
    ClientConnection,
)
from services.gateway.frames import FrameError

SOCKET_PATH = "/ws"
CLOSE_UNAUTHENTICATED = 4401
CLOSE_SERVICE_RESTART = 1012


async def chat_socket(websocket: WebSocket, state: State) -> None:
    hub, redis, settings = state.hub, state.redis, state.settings
    token, from_cookie = token_from(websocket.headers, websocket.cookies)
    if from_cookie and websocket.headers.get("origin", "").rstrip("/") not in settings.allowed_origins:
        # Cross-site WebSocket hijacking: a cookie sent by a foreign page is refused at the handshake.
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION)
        return
    if state.draining:
        await websocket.close(code=CLOSE_SERVICE_RESTART)
        return
    await websocket.accept()
    try:
        principal = state.verifier.verify(token or "")
    except InvalidToken:
        await websocket.close(CLOSE_UNAUTHENTICATED, "not authenticated")
        return
    code = normalize(websocket.query_params.get("room") or "")
    if code is None:
        await websocket.close(CLOSE_ROOM_GONE, "no live room with this code")
        return
    since = None
    if since_param := websocket.query_params.get("since"):
        try:
            since = parse_event_id(since_param)
        except ValueError:
            error = FrameError("invalid_since", "'since' is not an event id; sending the latest events instead.")
            await websocket.send_text(error.frame())
    connection = ClientConnection(websocket, principal, code, since, hub, state)
    # Watched before the revocation check, so a logout racing this handshake still closes the socket.
    hub.watch_session(connection)
    try:
        revoked = await session_revoked(redis, principal.session_id)
    except RevocationsUnknown:
        hub.detach(connection)
        await websocket.close(CLOSE_TRY_AGAIN, "sessions cannot be checked right now; reconnect")
        return
    if revoked:
        hub.detach(connection)
        await websocket.close(CLOSE_UNAUTHENTICATED, "session ended")
        return
    await connection.run()
