"""uvicorn's sans-I/O WebSocket protocol, trimmed for idle connections and fast fan-out.

uvicorn keeps, for each connection's whole life, the handshake's request and
response (with their header maps, and the websockets parser keeps the request
too), the ASGI scope's headers, an attribute dict, and an ``asyncio.Queue``
and ``Event`` sized for uses a socket never has. This subclass empties the
handshake's headers once they are answered, keeps its attributes in slots and
uses the single-reader ``Mailbox`` and ``Gate``: about 12 KiB less per idle
socket, measured by ``make bench`` (``docs/capacity.md``). The app must read
the headers it needs before it accepts. uvicorn is pinned in
``pyproject.toml`` and ``tests/unit/test_protocol.py`` checks the attributes
this relies on, so an upgrade that moves them or adds one fails a test.

It also offers the app a way around ASGI's one ``send()`` per socket per
frame: the ``sala.websocket.write_frame`` scope extension writes a frame
encoded once for a whole room (``encode_text_frame``) straight to the
transport, as ``websockets.broadcast()`` does, when the socket can take it now.

A client's pings are bounded: uvicorn answers each with a pong whatever the
peer reads, so a ping flood that reads nothing grew the process without
bound. Here pongs are skipped while the transport is backed up (only the
latest ping needs an answer) and a client past its ping budget is closed
with 1008. Invalid UTF-8 closes the socket with 1007 without a traceback.

``HandshakeDeadlineProtocol`` is the HTTP side: a connection that has not
sent its request headers within the deadline is dropped, so half-open
handshakes cannot pile up on a gateway's own port.
"""

import logging
from asyncio import BaseTransport, TimerHandle
from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

from services.gateway.closes import Close
from services.gateway.limits import TokenBucket
from services.gateway.mailbox import Gate, Mailbox

WRITE_FRAME_EXTENSION = "sala.websocket.write_frame"
# What a peer may still send once our close is out, while its close frame is awaited; past it, it is dropped.
AFTER_CLOSE_BYTES = 64 * 1024

log = logging.getLogger(__name__)
# websockets' own log for each connection: its errors only. Its "connection open" and "connection closed" at
# INFO cost every connect a log line that says less than uvicorn's and the gateway's own.
WEBSOCKETS_LOG = logging.getLogger("uvicorn.error.websockets")
WEBSOCKETS_LOG.setLevel(logging.WARNING)


def encode_text_frame(text: str | bytes) -> bytes:
    """A server's text frame on the wire (from the text, or its UTF-8): unmasked and uncompressed, so the same
    bytes suit every socket.
    """
    return Frame(Opcode.TEXT, text.encode() if isinstance(text, str) else text).serialize(mask=False)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    # Every attribute uvicorn's protocol and this one set, as slots: no per-socket attribute dict
    # (about 1.3 KiB less). An attribute a uvicorn upgrade adds lands in a dict again, and a test says so.
    __slots__ = (
        "config",
        "app",
        "loop",
        "logger",
        "root_path",
        "asgi_version",
        "app_state",
        "connections",
        "tasks",
        "default_headers",
        "transport",
        "server",
        "client",
        "scheme",
        "queue",
        "handshake_initiated",
        "handshake_complete",
        "close_sent",
        "disconnected",
        "close_timer",
        "close_timeout",
        "initial_response",
        "conn",
        "read_paused",
        "writable",
        "ping_interval",
        "ping_timeout",
        "ping_timer",
        "pong_timer",
        "pending_ping_payload",
        "ping_sent_at",
        "last_ping_rtt",
        "frames",
        "curr_msg_data_type",
        "request",
        "response",
        "scope",
        "ping_budget",
        "after_close",
    )
    # Pings a client may send per second; set per gateway by ``configured``.
    pings_per_second = 2.0

    @classmethod
    def configured(cls, pings_per_second: float) -> type["LeanWebSocketProtocol"]:
        return type(cls.__name__, (cls,), {"__slots__": (), "pings_per_second": pings_per_second})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Mailbox()
        self.writable = Gate()
        # Made on the first ping only: browsers never send any, and an idle socket should cost little.
        self.ping_budget: TokenBucket | None = None
        self.after_close = 0
        # websockets traces every header and frame at DEBUG: bearer tokens and
        # chat messages have no place in logs, whatever the level.
        self.conn.debug = False
        self.conn.logger = WEBSOCKETS_LOG

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # uvicorn copied the headers into the scope; the request itself stays referenced by the
        # websockets parser for the connection's life, so it is emptied, not only let go.
        event.headers.clear()
        del self.request
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["extensions"][WRITE_FRAME_EXTENSION] = self.write_frame

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if not self.writable.is_set():
            # The app is done and the peer reads nothing: flushing would hold the
            # connection and its buffers until TCP gives up, so drop it now.
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.close_sent:
            # Parsing a flood that goes on after our close would spend the loop on a peer we are done with.
            self.after_close += len(data)
            if self.after_close > AFTER_CLOSE_BYTES:
                self.transport.abort()
                return
        super().data_received(data)

    def handle_ping(self) -> None:
        pongs = self.conn.data_to_send()
        if self.ping_budget is None:
            self.ping_budget = TokenBucket(self.pings_per_second, max(1, int(self.pings_per_second * 2)))
        if not self.ping_budget.allow():
            self._fail(Close.POLICY, "too many pings")
            return
        if self.writable.is_set():
            self.transport.write(b"".join(pongs))

    def send_receive_event_to_app(self) -> None:
        if self.curr_msg_data_type != "text":
            super().send_receive_event_to_app()
            return
        data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
        self.frames = []
        if self.close_sent:
            return
        try:
            text = data.decode()
        except UnicodeDecodeError:
            log.info("invalid UTF-8 in a text frame; closing the socket")
            self.conn.send_close(Close.INVALID_DATA, "invalid UTF-8")
            self.handle_parser_exception()
            return
        self.queue.put_nowait({"type": "websocket.receive", "text": text})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _fail(self, code: int, reason: str) -> None:
        """Close at once, as uvicorn does on a keepalive timeout, and tell the app."""
        if self.close_sent or self.transport.is_closing():
            return
        self.conn.fail(code, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.close()

    def write_frame(self, frame: bytes) -> bool:
        """Write an encoded frame now; False when the socket cannot take it without waiting (send it the ASGI way)."""
        if (
            self.close_sent
            or self.disconnected
            or not self.handshake_complete
            or not self.writable.is_set()
            or self.conn.state is not State.OPEN
        ):
            return False
        self.transport.write(frame)
        return True

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.http.response.body" and not message.get("more_body", False):
            # A refused handshake (503) is a complete answer; uvicorn would log it as an app error.
            self.handshake_complete = True
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The handshake is answered: its response and the headers are not needed again (the app
            # reads what it needs before it accepts).
            del self.response
            self.scope["headers"].clear()


class HandshakeDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol with a deadline for each request's headers (none by default)."""

    deadline_seconds = 10.0

    @classmethod
    def configured(cls, deadline_seconds: float) -> type["HandshakeDeadlineProtocol"]:
        return type(cls.__name__, (cls,), {"deadline_seconds": deadline_seconds})

    def connection_made(self, transport: BaseTransport) -> None:  # type: ignore[override]
        super().connection_made(transport)  # type: ignore[arg-type]
        self._deadline: TimerHandle | None = None
        self._start_deadline()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._deadline is None:
            self._start_deadline()

    def on_headers_complete(self) -> None:
        self._cancel_deadline()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_deadline()
        super().connection_lost(exc)

    def _start_deadline(self) -> None:
        self._deadline = self.loop.call_later(self.deadline_seconds, self._too_slow)

    def _cancel_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()
