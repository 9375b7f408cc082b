"""One hostile client hurts nobody else: each attack on the chat socket replayed against the real stack.

Each test asserts that the attacker is cut off, that the gateway's memory
stays within a stated budget, that other members keep receiving everything
exactly once and in order, and that no replica is presumed dead. The
victims' delivery latency is printed, not asserted: speed belongs to
``make bench``.
"""

import asyncio
import base64
import os
import socket
import statistics
import time

import psutil
import pytest

from bench.wsclient import OP_PING, OP_TEXT, client_frame
from services.common.redis_schema import GATEWAYS
from services.common.room_codes import ALPHABET
from tests.conftest import TEST_SETTINGS

# What a flood may add to a gateway's resident memory: far below the 512 MiB a replica is given.
RSS_BUDGET_BYTES = 48 * 1024 * 1024
FLOOD_SECONDS = 4


def upgrade_request(port: int, code: str, token: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws?room={code} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()


def raw_socket(port: int, code: str, token: str) -> socket.socket:
    """A socket past the handshake that reads nothing more: a tiny receive buffer, as a stalled attacker has."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(upgrade_request(port, code, token))
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock


def flood(sock: socket.socket, frame: bytes, seconds: float) -> int:
    """Write ``frame`` over and over for ``seconds`` or until the server gives up on us; frames written."""
    sock.setblocking(False)
    batch = frame * 256
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            sent += sock.send(batch) // len(frame)
        except BlockingIOError:
            time.sleep(0.01)
        except OSError:
            break
    return sent


def server_closed(sock: socket.socket, timeout: float = 10) -> bool:
    """Whether the server ended the connection (read what it sent until EOF or reset)."""
    sock.setblocking(True)
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionResetError, BrokenPipeError):
        return True
    except TimeoutError:
        return False
    return True


def rss(stack, name: str) -> int:
    return psutil.Process(stack.pid(name)).memory_info().rss


class Victim:
    """A member who reads everything as it comes and notes how late each message arrives."""

    def __init__(self, socket_) -> None:
        self.socket = socket_
        self.received: list[str] = []
        self.latencies: list[float] = []
        self.sent_at: dict[str, float] = {}

    async def read(self) -> None:
        while True:
            frame = await self.socket.recv_type("message", timeout=30)
            if frame["text"] in self.sent_at:
                self.received.append(frame["id"])
                self.latencies.append(time.monotonic() - self.sent_at.pop(frame["text"]))

    def p99_ms(self) -> float:
        return statistics.quantiles(self.latencies, n=100, method="inclusive")[98] * 1000


async def chat_during(speaker, victim: Victim, seconds: float) -> list[str]:
    """The speaker talks for ``seconds`` while the victim reads; the acked ids, once the victim has them all."""
    reader = asyncio.create_task(victim.read())
    acked: list[str] = []
    deadline = time.monotonic() + seconds
    n = 0
    try:
        while time.monotonic() < deadline:
            text = f"victim {n}"
            victim.sent_at[text] = time.monotonic()
            acked.append(await speaker.say(text))
            n += 1
            await asyncio.sleep(0.05)
        async with asyncio.timeout(30):
            while len(victim.received) < len(acked) and not reader.done():
                await asyncio.sleep(0.05)
    finally:
        reader.cancel()
    return acked


async def gateway_alive(redis_client, stack, name: str) -> bool:
    """Whether the replica's heartbeat is fresh on Redis's clock (it is not about to be presumed dead)."""
    seconds, micros = await redis_client.time()
    now_ms = seconds * 1000 + micros // 1000
    scores = await redis_client.zrange(GATEWAYS, 0, -1, withscores=True)
    timeout_ms = float(TEST_SETTINGS["SALA_PRESENCE_TIMEOUT_SECONDS"]) * 1000
    return any(now_ms - score < timeout_ms for _, score in scores)


@pytest.fixture
async def victims(new_user, new_room, open_socket):
    """A room with a speaker and a reader on gateway 0, and its code."""
    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    speaker = await open_socket(alice, code, gateway=0)
    await speaker.recv_type("welcome")
    reader = await open_socket(bob, code, gateway=0)
    await reader.recv_type("welcome")
    await speaker.recv_type("join")
    return code, speaker, Victim(reader)


@pytest.mark.parametrize(
    "attack, frame",
    [
        ("invalid frames, never reading the errors", client_frame(OP_TEXT, b"x")),
        ("pings, never reading the pongs", client_frame(OP_PING, b"")),
        ("messages past every rate limit", client_frame(OP_TEXT, b'{"type":"message","text":"spam","ref":"r"}')),
    ],
)
async def test_a_flooding_socket_is_cut_off_and_hurts_nobody(
    stack, new_user, victims, redis_client, attack, frame
):
    code, speaker, victim = victims
    attacker = await new_user()
    port = int(stack.service_url("gateway0").rsplit(":", 1)[1])
    before = rss(stack, "gateway0")
    sock = await asyncio.to_thread(raw_socket, port, code, attacker.token)
    flooding = asyncio.create_task(asyncio.to_thread(flood, sock, frame, FLOOD_SECONDS))
    acked = await chat_during(speaker, victim, FLOOD_SECONDS)
    await flooding
    assert await asyncio.to_thread(server_closed, sock), f"{attack}: the attacker is cut off"
    sock.close()
    grown = rss(stack, "gateway0") - before
    assert grown < RSS_BUDGET_BYTES, f"{attack}: the gateway grew by {grown / 2**20:.0f} MiB"
    assert victim.received == acked, "every acked message reached the victim once and in order"
    assert await gateway_alive(redis_client, stack, "gateway0")
    print(f"{attack}: gateway RSS +{grown / 2**20:.1f} MiB, victim p99 {victim.p99_ms():.0f} ms over {len(acked)}")


async def test_a_user_cannot_hold_more_sockets_than_the_limit(stack, new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    limit = 20
    held = [await open_socket(alice, code, gateway=1) for _ in range(limit)]
    for socket_ in held:
        await socket_.recv_type("welcome")
    extra = await open_socket(alice, code, gateway=1)
    assert await extra.closed_with() == 1008
    await held[0].send({"type": "leave"})
    assert await held[0].closed_with() == 1000
    again = await open_socket(alice, code, gateway=1)
    assert (await again.recv_type("welcome"))["type"] == "welcome", "a freed slot can be used again"


async def test_many_sockets_of_one_user_share_one_message_budget(stack, new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    sockets = [await open_socket(alice, code, gateway=0) for _ in range(20)]
    for socket_ in sockets:
        await socket_.recv_type("welcome")
    # Each socket stays within its own burst: only the user's shared budget can refuse anything.
    per_socket = 20
    burst = int(TEST_SETTINGS["SALA_MESSAGE_BURST_PER_USER"])
    for round_ in range(per_socket):
        for n, socket_ in enumerate(sockets):
            await socket_.send({"type": "message", "text": f"{round_}-{n}", "ref": f"{round_}-{n}"})
    acks = errors = 0
    for socket_ in sockets:
        for _ in range(per_socket):
            frame = await socket_.recv()
            while frame["type"] not in ("ack", "error"):
                frame = await socket_.recv()
            acks += frame["type"] == "ack"
            errors += frame["type"] == "error" and frame["code"] == "rate_limited"
    assert acks + errors == len(sockets) * per_socket
    # 400 sent at once by one user: the shared budget's burst, plus what refilled meanwhile, got through.
    assert errors > 0 and acks < burst + 100


async def test_connect_and_close_churn_makes_no_join_or_leave_spam(new_user, new_room, open_socket):
    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    watcher = await open_socket(alice, code, gateway=0)
    await watcher.recv_type("welcome")
    for _ in range(30):
        churn = await open_socket(bob, code, gateway=0)
        await churn.recv_type("welcome")
        await churn.close()
    said = await watcher.say("after the churn")
    seen = []
    while not seen or seen[-1].get("id") != said:
        seen.append(await watcher.recv())
    assert [frame["type"] for frame in seen if frame["type"] in ("join", "leave")] == ["join"]


async def test_guessing_room_codes_over_the_socket_is_cut_off(api, new_user, open_socket):
    guesser = await new_user()
    misses = int(TEST_SETTINGS.get("SALA_ROOM_LOOKUP_MISSES_PER_USER", "10"))
    codes = [f"XXXX{ALPHABET[n // len(ALPHABET)]}{ALPHABET[n % len(ALPHABET)]}" for n in range(misses + 3)]
    closes = []
    # The gateway believes X-Forwarded-For from the edge's address, which is the tests' too: an address of our
    # own, so that blocking it cannot refuse the other tests' sockets.
    address = {"X-Forwarded-For": "203.0.113.7"}
    for code in codes:
        socket_ = await open_socket(guesser, code, gateway=0, headers=address)
        closes.append(await socket_.closed_with())
    assert closes[:misses] == [4404] * misses
    assert closes[-1] == 1008, "past the budget of unknown codes the guesser is refused"
    lookup = await api.get(f"/api/rooms/{codes[0]}", headers=guesser.bearer)
    assert lookup.status_code == 429, "the budget is shared with the rooms API"


async def test_a_message_heavy_in_escapes_is_refused_by_its_stored_size(new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    socket_ = await open_socket(alice, code)
    await socket_.recv_type("welcome")
    await socket_.send({"type": "message", "text": "\u0001" * 2000, "ref": "escapes"})
    error = await socket_.recv_type("error")
    assert error["code"] == "too_long" and error["ref"] == "escapes"
    assert await socket_.say("\u00e9" * 2000) , "2,000 characters that store compactly are fine"


async def test_a_handshake_that_never_finishes_is_dropped(stack):
    port = int(stack.service_url("gateway0").rsplit(":", 1)[1])
    deadline = float(TEST_SETTINGS["SALA_HANDSHAKE_TIMEOUT_SECONDS"])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"GET /ws?room=ABCD HTTP/1.1\r\nHost: x\r\n")
    assert await asyncio.to_thread(server_closed, sock, deadline + 10)
    sock.close()


async def test_invalid_utf8_closes_1007_without_a_traceback(stack, new_user, new_room):
    alice = await new_user()
    code = await new_room(alice)
    port = int(stack.service_url("gateway0").rsplit(":", 1)[1])
    sock = await asyncio.to_thread(raw_socket, port, code, alice.token)
    sock.sendall(client_frame(OP_TEXT, b"\xff\xfe"))
    sock.settimeout(10)
    received = b""
    while b"\x88" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    close = received[received.index(b"\x88") :]
    assert int.from_bytes(close[2:4], "big") == 1007
    sock.close()
    log = (stack.log_dir / "gateway0.log").read_text()
    assert "Invalid UTF-8 sequence" not in log and "Traceback" not in log


async def test_query_strings_never_reach_the_logs(stack, new_user, new_room, open_socket):
    alice = await new_user()
    code = await new_room(alice)
    secret = "sekrit" + os.urandom(4).hex()
    socket_ = await open_socket(alice, f"{code}&access_token={secret}", gateway=0)
    await socket_.recv_type("welcome")
    await socket_.close()
    await asyncio.sleep(0.5)
    assert secret not in (stack.log_dir / "gateway0.log").read_text()
