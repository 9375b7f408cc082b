"""A member who stops reading is cut off at a bound; nobody else waits for them and nothing is lost."""

import asyncio
import socket
import uuid
from urllib.parse import urlsplit

import pytest
from websockets.asyncio.client import connect

from tests.integration.conftest import Socket, ws_url

SEND_QUEUE_MAX = 20
# 8 KB of UTF-8 per message, so the kernel's socket buffers (several MB on loopback) fill in seconds.
BIG_TEXT = "\N{SPEECH BALLOON}" * 2000
SPEAKERS = 3
PACE_SECONDS = 1 / 40  # under the tests' rate limit of 50 messages a second per socket


@pytest.fixture
def small_queue_gateway(stack):
    # Pings slower than the test, so the queue bound, not the keepalive, is what cuts the member off.
    settings = {"SALA_SEND_QUEUE_MAX": str(SEND_QUEUE_MAX), "SALA_WS_PING_INTERVAL_SECONDS": "60"}
    name = stack.add_replica("gateway", settings)
    yield stack.service_url(name)
    stack.stop_child(name)


async def open_stalled(base: str, room: str, token: str) -> Socket:
    """A client that reads nothing it is not asked to, through a small receive buffer, so the server's writes back up."""
    url = urlsplit(base)
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (url.hostname, url.port))
    # No client pings either: only the server may end this connection.
    ws = await connect(
        ws_url(base, room),
        sock=raw,
        additional_headers={"Authorization": f"Bearer {token}"},
        max_queue=1,
        ping_interval=None,
    )
    return Socket(ws)


async def speak_until(speaker: Socket, stop: asyncio.Event, acked: list[str]) -> None:
    """Send big messages at a steady pace until told to stop, collecting the ids of those acked."""
    refs: set[str] = set()

    async def read_acks() -> None:
        while True:
            frame = await speaker.recv(timeout=30)
            if frame["type"] == "ack" and frame["ref"] in refs:
                acked.append(frame["id"])
            assert frame["type"] != "error", frame

    reader = asyncio.create_task(read_acks())
    try:
        while not stop.is_set():
            ref = uuid.uuid4().hex
            refs.add(ref)
            await speaker.send({"type": "message", "text": BIG_TEXT, "ref": ref})
            await asyncio.sleep(PACE_SECONDS)
        await asyncio.sleep(1)  # the last acks
    finally:
        reader.cancel()


async def test_a_member_who_stops_reading_is_dropped_and_the_room_goes_on(
    small_queue_gateway, new_user, new_room, open_socket
):
    owner, reader, stalled_user = await new_user(), await new_user(), await new_user()
    code = await new_room(owner)
    speakers = [await open_socket(owner, code) for _ in range(SPEAKERS)]
    for speaker in speakers:
        await speaker.recv_type("welcome")
    listener = Socket(
        await connect(ws_url(small_queue_gateway, code), additional_headers=reader.bearer, open_timeout=10)
    )
    await listener.recv_type("welcome")
    stalled = await open_stalled(small_queue_gateway, code, stalled_user.token)
    await stalled.recv_type("welcome")

    stop = asyncio.Event()
    acked: list[str] = []
    speaking = [asyncio.create_task(speak_until(speaker, stop, acked)) for speaker in speakers]
    received: list[str] = []
    left = None
    try:
        async with asyncio.timeout(60):
            while left is None:
                frame = await listener.recv()
                if frame["type"] == "leave" and frame["username"] == stalled_user.username:
                    left = frame
                elif frame["type"] == "message":
                    received.append(frame["id"])
    finally:
        stop.set()
        await asyncio.gather(*speaking)
    # Cut off, it was given the leave grace like any dropped socket; owner and reader remain.
    assert left["count"] == 2

    # The reader, on the same replica, got every acked message once and in order, before the cut and after it.
    last = await speakers[0].say("after the cut")
    while not received or received[-1] != last:
        frame = await listener.recv()
        if frame["type"] == "message":
            received.append(frame["id"])
    assert received == sorted(received, key=lambda event_id: tuple(map(int, event_id.split("-"))))
    assert len(received) == len(set(received))
    assert set(acked) <= set(received)

    # It never read even the close frame, so the server dropped the connection.
    assert await stalled.closed_with(timeout=30) == 1006
    await listener.close()
