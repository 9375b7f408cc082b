"""Every close code and error code the gateway sends, in one catalogue.

docs/protocol.md documents the same table, and the web client
(web/static/js/room-client.js) reacts to the same codes;
tests/unit/test_closes.py keeps the three in step.
"""

from enum import IntEnum, StrEnum


class Close(IntEnum):
    """WebSocket close codes: why the server ended a socket, and what the client should do."""

    # After an explicit leave: done, do not reconnect.
    LEFT = 1000
    # A binary frame: the protocol is text (JSON) only.
    UNSUPPORTED = 1003
    # A text frame that is not UTF-8 (sent by the gateway's WebSocket protocol).
    INVALID_DATA = 1007
    # A cross-site handshake, or a client that kept sending past its budget.
    POLICY = 1008
    # A frame over the size limit (sent by the WebSocket layer).
    TOO_BIG = 1009
    # The gateway is stopping, or lost its presence: reconnect with ``since``.
    SERVICE_RESTART = 1012
    # Redis or the bus is unavailable, or the socket fell too far behind: reconnect with ``since``.
    TRY_AGAIN = 1013
    # The session was logged out: do not reconnect.
    SESSION_ENDED = 4001
    # No valid session: log in again.
    UNAUTHENTICATED = 4401
    # No live room with that code.
    ROOM_GONE = 4404


class ErrorCode(StrEnum):
    """The ``code`` of an ``error`` frame; the socket stays open."""

    INVALID_FRAME = "invalid_frame"
    TOO_LONG = "too_long"
    RATE_LIMITED = "rate_limited"
    INVALID_SINCE = "invalid_since"
