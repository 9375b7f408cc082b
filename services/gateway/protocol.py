"""uvicorn's sans-I/O WebSocket protocol, trimmed for idle connections and fast fan-out.

uvicorn keeps, for each connection's whole life, the handshake's request and
response (with their header maps) and an ``asyncio.Queue`` and ``Event`` sized
for uses a socket never has. This subclass frees the handshake once it is
answered and uses the single-reader ``Mailbox`` and ``Gate``: about 6 KiB less
per idle socket, measured by ``make bench`` (``docs/capacity.md``). uvicorn is
pinned in ``pyproject.toml`` and ``tests/unit/test_protocol.py`` checks the
attributes this relies on, so an upgrade that moves them fails a test.

It also offers the app a way around ASGI's one ``send()`` per socket per
frame: the ``sala.websocket.write_frame`` scope extension writes a frame
encoded once for a whole room (``encode_text_frame``) straight to the
transport, as ``websockets.broadcast()`` does, when the socket can take it now.
"""

from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State

from services.gateway.mailbox import Gate, Mailbox

WRITE_FRAME_EXTENSION = "sala.websocket.write_frame"


def encode_text_frame(text: str) -> bytes:
    """A server's text frame on the wire: unmasked and uncompressed, so the same bytes suit every socket."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=False)


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Mailbox()
        self.writable = Gate()
        # websockets traces every header and frame at DEBUG: bearer tokens and
        # chat messages have no place in logs, whatever the level.
        self.conn.debug = False

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = self.__dict__.get("scope")
        if scope is not None:
            scope["extensions"][WRITE_FRAME_EXTENSION] = self.write_frame

    async def run_asgi(self) -> None:
        await super().run_asgi()
        if not self.writable.is_set():
            # The app is done and the peer reads nothing: flushing would hold the
            # connection and its buffers until TCP gives up, so drop it now.
            self.transport.abort()

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
        if message["type"] == "websocket.accept":
            self.__dict__.pop("request", None)
            self.__dict__.pop("response", None)
