"""Each bad-input rule of the socket: an error frame and the socket stays, or the contract's close code."""

import pytest

from services.gateway.frames import MAX_TEXT_CHARS


@pytest.fixture
async def socket(new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    ws = await open_socket(alice, code)
    await ws.recv()
    return ws


async def still_open(ws) -> None:
    await ws.send({"type": "message", "text": "still here", "ref": "alive"})
    assert (await ws.recv_type("ack"))["ref"] == "alive"


@pytest.mark.parametrize(
    "frame",
    [
        "not json",
        "[1, 2, 3]",
        '{"type": "shout", "text": "hi"}',
        '{"text": "no type"}',
        '{"type": "message"}',
        '{"type": "message", "text": 42}',
        '{"type": "message", "text": "   "}',
        '{"type": "message", "text": "x", "ref": 5}',
    ],
)
async def test_invalid_frames_get_an_error_and_the_socket_stays(socket, frame):
    await socket.send(frame)
    error = await socket.recv_type("error")
    assert error["code"] == "invalid_frame" and error["detail"]
    await still_open(socket)


async def test_text_over_the_limit_is_too_long(socket):
    await socket.send({"type": "message", "text": "x" * (MAX_TEXT_CHARS + 1), "ref": "big"})
    error = await socket.recv_type("error")
    assert error["code"] == "too_long" and error["ref"] == "big"
    await still_open(socket)


async def test_text_at_the_limit_is_accepted(socket):
    await socket.send({"type": "message", "text": "x" * MAX_TEXT_CHARS, "ref": "max"})
    assert (await socket.recv_type("ack"))["ref"] == "max"


async def test_flooding_is_rate_limited(socket):
    for i in range(40):
        await socket.send({"type": "message", "text": f"flood {i}", "ref": str(i)})
    codes = []
    for _ in range(40):
        frame = await socket.recv()
        while frame["type"] not in ("ack", "error"):
            frame = await socket.recv()
        codes.append(frame["type"] if frame["type"] == "ack" else frame["code"])
    assert "rate_limited" in codes
    assert codes.count("ack") >= 20


async def test_binary_frames_close_1003(socket):
    await socket.ws.send(b"\x00\x01")
    assert await socket.closed_with() == 1003


async def test_frames_over_64_kib_close_1009(socket):
    await socket.ws.send("x" * (64 * 1024 + 1))
    assert await socket.closed_with() == 1009


async def test_a_peer_that_stops_answering_pings_is_dropped_and_leaves(stack, new_user, new_room, open_socket):
    """A half-open client: the handshake done, then silence. Keepalive (1 s in tests) drops it."""
    import asyncio
    import base64
    import os

    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    watcher = await open_socket(alice, code, gateway=0)
    await watcher.recv_type("welcome")
    port = stack.ports.gateways[0]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws?room={code} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Authorization: Bearer {bob.token}\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    assert (await reader.readline()).startswith(b"HTTP/1.1 101")
    assert (await watcher.recv_type("join"))["username"] == bob.username
    # Never read, never answer a ping: the gateway must give up on this peer.
    leave = await watcher.recv_type("leave", timeout=15)
    assert leave["username"] == bob.username
    writer.close()
