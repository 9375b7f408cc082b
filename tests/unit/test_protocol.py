"""The trimmed uvicorn WebSocket protocol still speaks WebSocket, and frees what it says it frees.

uvicorn is pinned; these tests fail if an upgrade moves the attributes the
subclass replaces or drops.
"""

import asyncio
import logging

import uvicorn
from uvicorn.server import ServerState
from websockets.frames import Frame, Opcode
from websockets.http11 import Request

from services.gateway.mailbox import Gate, Mailbox
from services.gateway.protocol import WRITE_FRAME_EXTENSION, LeanWebSocketProtocol, encode_text_frame

HANDSHAKE = (
    b"GET /ws?room=ABCDEF HTTP/1.1\r\n"
    b"Host: chat.example\r\n"
    b"Upgrade: websocket\r\n"
    b"Connection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    b"Sec-WebSocket-Version: 13\r\n"
    b"\r\n"
)


class RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closing = False

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(name, default)


def client_text(text: str) -> bytes:
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True, extensions=[])


async def test_echo_through_the_lean_protocol_frees_the_handshake():
    received: list[dict] = []
    scopes: list[dict] = []
    accepted = asyncio.Event()

    async def echo(scope, receive, send):
        scopes.append(scope)
        assert (await receive())["type"] == "websocket.connect"
        assert (b"host", b"chat.example") in [(name.lower(), value) for name, value in scope["headers"]]
        await send({"type": "websocket.accept"})
        accepted.set()
        message = await receive()
        received.append(message)
        await send({"type": "websocket.send", "text": "echo:" + message["text"]})
        received.append(await receive())

    config = uvicorn.Config(echo, ws=LeanWebSocketProtocol, ws_per_message_deflate=False, log_config=None)
    config.load()
    protocol = LeanWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
    assert isinstance(protocol.queue, Mailbox)
    assert isinstance(protocol.writable, Gate)

    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(HANDSHAKE)
    # The scope has the headers; the request, still referenced by the websockets parser, is emptied.
    assert not hasattr(protocol, "request")
    assert hasattr(protocol, "response")
    assert not parsed_requests(protocol) or all(not request.headers for request in parsed_requests(protocol))
    await asyncio.wait_for(accepted.wait(), 1)
    assert transport.written.startswith(b"HTTP/1.1 101 ")
    assert not hasattr(protocol, "response")
    assert scopes[0]["headers"] == []

    transport.written.clear()
    protocol.data_received(client_text("hi"))
    for _ in range(20):
        if transport.written:
            break
        await asyncio.sleep(0)
    assert received[0] == {"type": "websocket.receive", "text": "hi"}
    assert transport.written == Frame(Opcode.TEXT, b"echo:hi").serialize(mask=False, extensions=[])
    # Every attribute uvicorn sets has a slot: an upgrade that adds one fails here.
    assert protocol.__dict__ == {}

    protocol.connection_lost(None)
    for _ in range(20):
        if len(received) == 2:
            break
        await asyncio.sleep(0)
    assert received[1]["type"] == "websocket.disconnect"


def parsed_requests(protocol: LeanWebSocketProtocol) -> list[Request]:
    """The handshake requests the websockets parser's generator frames still hold."""
    found = []
    generator = protocol.conn.parser
    while generator is not None and generator.gi_frame is not None:
        found += [value for value in generator.gi_frame.f_locals.values() if isinstance(value, Request)]
        generator = generator.gi_yieldfrom
    return found


def test_the_parser_still_holds_the_request_so_emptying_it_matters():
    config = uvicorn.Config(lambda scope, receive, send: None, ws=LeanWebSocketProtocol, log_config=None)
    config.load()
    protocol = LeanWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
    protocol.connection_made(RecordingTransport())
    protocol.data_received(HANDSHAKE)
    assert len(parsed_requests(protocol)) == 1


def test_configured_protocols_stay_slotted():
    config = uvicorn.Config(lambda scope, receive, send: None, ws=LeanWebSocketProtocol, log_config=None)
    config.load()
    protocol = LeanWebSocketProtocol.configured(5.0)(config=config, server_state=ServerState(), app_state={})
    assert protocol.pings_per_second == 5.0
    assert protocol.__dict__ == {}


async def test_a_paused_writer_waits_until_the_transport_drains():
    async def silent(scope, receive, send):
        await receive()

    config = uvicorn.Config(silent, ws=LeanWebSocketProtocol, log_config=None)
    config.load()
    protocol = LeanWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
    protocol.pause_writing()
    waiter = asyncio.create_task(protocol.writable.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    protocol.resume_writing()
    await asyncio.wait_for(waiter, 1)


async def test_write_frame_writes_an_encoded_frame_only_when_the_socket_can_take_it():
    scopes: list[dict] = []

    async def hold(scope, receive, send):
        scopes.append(scope)
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    config = uvicorn.Config(hold, ws=LeanWebSocketProtocol, ws_per_message_deflate=False, log_config=None)
    config.load()
    protocol = LeanWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(HANDSHAKE)
    for _ in range(20):
        if transport.written:
            break
        await asyncio.sleep(0)
    write_frame = scopes[0]["extensions"][WRITE_FRAME_EXTENSION]

    transport.written.clear()
    wire = encode_text_frame('{"type":"message","text":"héllo"}')
    assert write_frame(wire)
    assert (
        transport.written
        == wire
        == Frame(Opcode.TEXT, '{"type":"message","text":"héllo"}'.encode()).serialize(mask=False, extensions=[])
    )

    protocol.pause_writing()
    assert not write_frame(wire)
    protocol.resume_writing()
    assert write_frame(wire)

    protocol.connection_lost(None)
    assert not write_frame(wire)


async def test_debug_logging_never_traces_headers_or_frames(caplog):
    async def hold(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await receive()

    config = uvicorn.Config(hold, ws=LeanWebSocketProtocol, ws_per_message_deflate=False, log_config=None)
    config.load()
    with caplog.at_level(logging.DEBUG):
        protocol = LeanWebSocketProtocol(config=config, server_state=ServerState(), app_state={})
        transport = RecordingTransport()
        protocol.connection_made(transport)
        protocol.data_received(HANDSHAKE.replace(b"\r\n\r\n", b"\r\nAuthorization: Bearer secret-token\r\n\r\n"))
        for _ in range(20):
            if transport.written:
                break
            await asyncio.sleep(0)
        protocol.data_received(client_text("a private message"))
        await asyncio.sleep(0)
        protocol.connection_lost(None)
    assert transport.written.startswith(b"HTTP/1.1 101 ")
    assert "secret-token" not in caplog.text
    assert "private message" not in caplog.text
    assert "connection open" not in caplog.text, "websockets' own INFO lines are not logged"
