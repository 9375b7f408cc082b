"""uvicorn's sans-I/O WebSocket protocol, trimmed for connections that idle for hours.

uvicorn keeps, for each connection's whole life, the handshake's request and
response (with their header maps) and an ``asyncio.Queue`` and ``Event`` sized
for uses a socket never has. This subclass frees the handshake once it is
answered and uses the single-reader ``Mailbox`` and ``Gate``: about 6 KiB less
per idle socket, measured by ``make bench`` (``docs/capacity.md``). uvicorn is
pinned in ``pyproject.toml`` and ``tests/unit/test_protocol.py`` checks the
attributes this relies on, so an upgrade that moves them fails a test.
"""

from typing import Any

from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from services.gateway.mailbox import Gate, Mailbox


class LeanWebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.queue = Mailbox()
        self.writable = Gate()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept":
            self.__dict__.pop("request", None)
            self.__dict__.pop("response", None)
