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
