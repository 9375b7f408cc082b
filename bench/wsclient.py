"""A lean WebSocket client for the load generator.

The generator must stay far from saturating its own core while it receives
tens of thousands of frames a second, so it speaks the protocol directly on an
``asyncio.Protocol`` instead of through a general-purpose client: server
frames are parsed from one buffer without copies beyond the payload, and
client frames are masked with the all-zero key (legal per RFC 6455 §5.3, and
XOR with zero costs nothing). Good enough for a benchmark peer, not for a
browser's threat model.
"""

import asyncio
import base64
import os
import struct
from collections.abc import Callable

OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
ZERO_MASK = b"\x00\x00\x00\x00"
CLOSE_ABNORMAL = 1006


class HandshakeFailed(Exception):
    """The server answered the upgrade with something other than 101."""


def client_frame(opcode: int, payload: bytes) -> bytes:
    """One final, masked (with the zero key) client frame."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    return header + ZERO_MASK + payload


class WsClient(asyncio.Protocol):
    """One socket. ``on_text(payload)`` gets each text message; ``on_close(code, reason)`` is called once."""

    def __init__(
        self, request: bytes, on_text: Callable[[bytes], None], on_close: Callable[[int, str], None]
    ) -> None:
        self._request = request
        self._on_text = on_text
        self._on_close = on_close
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._upgraded = False
        self._closed = False
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def send_text(self, text: str) -> None:
        if not self._closed and self.transport is not None:
            self.transport.write(client_frame(OP_TEXT, text.encode()))

    def close(self, code: int = 1000) -> None:
        """Close from our side; ``on_close`` is not called for it."""
        if not self._closed:
            self._closed = True
            self._drop(code)

    # asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self._request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(exc or ConnectionError("closed during the handshake"))
        self._finish(CLOSE_ABNORMAL)

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self._upgraded and not self._read_handshake():
            return
        while len(buffer) >= 2:
            first, second = buffer[0], buffer[1]
            length, start = second & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, start = struct.unpack_from("!H", buffer, 2)[0], 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, start = struct.unpack_from("!Q", buffer, 2)[0], 10
            end = start + length
            if len(buffer) < end:
                return
            payload = bytes(buffer[start:end])
            del buffer[:end]
            self._frame(first & 0x80, first & 0x0F, payload)

    # Internals

    def _read_handshake(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        if self.handshake.done():  # the caller gave up waiting (cancelled): nobody wants this socket now
            self.transport.close()
            return False
        status = bytes(self._buffer[: self._buffer.find(b"\r\n")])
        del self._buffer[: end + 4]
        if not status.startswith(b"HTTP/1.1 101"):
            self.handshake.set_exception(HandshakeFailed(status.decode(errors="replace")))
            self.transport.close()
            return False
        self._upgraded = True
        self.handshake.set_result(None)
        return True

    def _frame(self, fin: int, opcode: int, payload: bytes) -> None:
        if opcode in (OP_TEXT, OP_CONTINUATION):
            if not fin:
                self._fragments.append(payload)
                return
            if self._fragments:
                payload = b"".join([*self._fragments, payload])
                self._fragments.clear()
            self._on_text(payload)
        elif opcode == OP_PING:
            self.transport.write(client_frame(OP_PONG, payload))
        elif opcode == OP_CLOSE:
            code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
            self._finish(code, payload[2:].decode(errors="replace"))
            self._drop(code if code not in (1005, 1006) else 1000)
        elif opcode == OP_BINARY:
            self._finish(1003)
            self._drop(1003)

    def _drop(self, code: int) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(OP_CLOSE, struct.pack("!H", code)))
            self.transport.close()

    def _finish(self, code: int, reason: str = "") -> None:
        if not self._closed:
            self._closed = True
            self._on_close(code, reason)


async def connect(
    host: str,
    port: int,
    path: str,
    headers: dict[str, str],
    on_text: Callable[[bytes], None],
    on_close: Callable[[int, str], None],
) -> WsClient:
    """Open a socket and complete the upgrade; raises HandshakeFailed or OSError."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(lambda: WsClient(request, on_text, on_close), host, port)
    await client.handshake
    return client
