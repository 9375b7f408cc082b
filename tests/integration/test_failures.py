"""Failure injection: replicas killed or drained, Redis restarted, a subscription dropped.

Run alone with ``make failure`` (``pytest -m failure``).
"""

import asyncio
import signal
import time

import httpx
import pytest
from redis.asyncio import RedisCluster
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from services.common.redis_schema import parse_event_id, room_key
from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import Socket, ws_url
from tools.tcpproxy import ProxyGroup

pytestmark = pytest.mark.failure


@pytest.fixture
def replicas(stack):
    """Whatever a test kills or stops is running again afterwards."""
    yield stack
    for index in range(len(stack.ports.gateways)):
        if f"gateway{index}" not in stack.children:
            stack.start_child(f"gateway{index}")
    if not stack.redis_cluster and "redis" not in stack.children:
        stack.start_child("redis")


async def kill_pubsub_connections(redis_client) -> None:
    """Cut every pub/sub connection on the server side (on every node of a cluster)."""
    if isinstance(redis_client, RedisCluster):
        await redis_client.client_kill_filter(_type="pubsub", target_nodes=RedisCluster.ALL_NODES)
    else:
        await redis_client.execute_command("CLIENT", "KILL", "TYPE", "pubsub")


async def room_status(api, user, code) -> int:
    return (await api.get(f"/api/rooms/{code}", headers=user.bearer)).status_code


async def test_killed_replica_is_detected_and_its_users_leave_after_the_grace(
    api, replicas, new_user, new_room, open_socket
):
    alice, bob, carol = await new_user(), await new_user(), await new_user()
    shared = await new_room(alice, "shared")
    doomed = await new_room(carol, "doomed")
    a = await open_socket(alice, shared, gateway=0)
    await a.recv_type("welcome")
    await (await open_socket(bob, shared, gateway=1)).recv_type("welcome")  # bob: only on the replica that dies
    await a.recv_type("join")
    carol_tab_0 = await open_socket(carol, shared, gateway=0)  # carol: a tab on each replica
    await carol_tab_0.recv_type("welcome")
    await (await open_socket(carol, shared, gateway=1)).recv_type("welcome")
    await a.recv_type("join")
    await (await open_socket(carol, doomed, gateway=1)).recv_type("welcome")

    killed_at = time.monotonic()
    replicas.stop_child("gateway1", signal.SIGKILL)
    leave = await a.recv_type("leave", timeout=30)
    detected_after = time.monotonic() - killed_at
    assert leave["username"] == bob.username and leave["count"] == 2
    # Presumed dead after the presence timeout, then the leave grace: bob could have come back meanwhile.
    assert detected_after >= float(TEST_SETTINGS["SALA_LEAVE_GRACE_SECONDS"])

    room = (await api.get(f"/api/rooms/{shared}", headers=alice.bearer)).json()
    assert room["occupancy"] == 2 and room["members"] == sorted([alice.username, carol.username])
    async with asyncio.timeout(10):
        while await room_status(api, carol, doomed) != 404:
            await asyncio.sleep(0.1)
    # No leave for carol, who still has a tab on the living replica.
    await carol_tab_0.send({"type": "message", "text": "still here", "ref": "x"})
    assert (await a.recv_type("message"))["text"] == "still here"
    print(f"killed replica's users left after {detected_after:.1f} s")


async def test_drained_replica_clients_resume_elsewhere_without_leave_or_join(replicas, pair, open_socket):
    bob, code, a, b = pair.bob, pair.code, pair.a, pair.b
    await a.recv_type("join")

    acked = []
    for n in range(5):
        acked.append(await a.say(f"before {n}"))
    received = []
    while len(received) < 5:
        received.append(await b.recv_type("message"))
    last_seen = received[-1]["id"]

    stopped_at = time.monotonic()
    stopper = asyncio.get_running_loop().run_in_executor(None, replicas.stop_child, "gateway1", signal.SIGTERM)
    assert await b.closed_with() == 1012
    for n in range(5):
        acked.append(await a.say(f"during {n}"))
    back = await open_socket(bob, code, gateway=0, since=last_seen)
    welcome = await back.recv_type("welcome")
    assert [e["text"] for e in welcome["history"] if e["type"] == "message"] == [f"during {n}" for n in range(5)]
    # uvicorn re-raises SIGTERM once it has shut down cleanly; only SIGKILL would mean it hung.
    assert await stopper == -signal.SIGTERM, "the drained replica exits by itself"
    assert time.monotonic() - stopped_at < 10

    # Past the leave grace: still no leave (and no join) for bob, seen by alice.
    await asyncio.sleep(4)
    await back.send({"type": "message", "text": "after", "ref": "after"})
    seen = []
    while not seen or seen[-1].get("text") != "after":
        seen.append(await a.recv())
    assert not [frame for frame in seen if frame["type"] in ("join", "leave")]


@pytest.mark.single_redis
async def test_chat_resumes_after_a_redis_restart(replicas, pair, open_socket):
    alice, bob, code, a, b = pair.alice, pair.bob, pair.code, pair.a, pair.b
    await a.send({"type": "message", "text": "before", "ref": "1"})
    last_seen = (await b.recv_type("message"))["id"]

    replicas.stop_child("redis", signal.SIGTERM)
    async with httpx.AsyncClient(timeout=5) as probe:
        for service in ("gateway0", "rooms", "auth"):
            async with asyncio.timeout(10):
                while (await probe.get(replicas.service_url(service) + "/readyz")).status_code != 503:
                    await asyncio.sleep(0.1)
    replicas.start_child("redis")
    restarted_at = time.monotonic()

    async def send_until_acked(socket, user, gateway, text):
        """Send, reconnecting with since if the socket was closed meanwhile; returns the socket."""
        while True:
            try:
                await socket.send({"type": "message", "text": text, "ref": text})
                # The ack of this message: an earlier one may still wait in the socket.
                while (await socket.recv_type("ack", timeout=5))["ref"] != text:
                    pass
                return socket
            except (ConnectionClosed, TimeoutError):
                await asyncio.sleep(0.2)
                try:
                    socket = await open_socket(user, code, gateway=gateway)
                    await socket.recv_type("welcome")
                except (ConnectionClosed, InvalidStatus, OSError, TimeoutError):
                    continue

    async with asyncio.timeout(30):
        a = await send_until_acked(a, alice, 0, "after restart")
    texts: list[str] = []
    async with asyncio.timeout(30):
        while "after restart" not in texts:
            try:
                frame = await b.recv(timeout=5)
            except (ConnectionClosed, TimeoutError):
                try:
                    b = await open_socket(bob, code, gateway=1, since=last_seen)
                except (ConnectionClosed, InvalidStatus, OSError, TimeoutError):
                    await asyncio.sleep(0.2)
                continue
            if frame["type"] == "welcome":
                texts += [event.get("text", "") for event in frame["history"]]
            elif frame["type"] == "message":
                texts.append(frame["text"])
    print(f"chat recovered (acked and delivered across replicas) {time.monotonic() - restarted_at:.2f} s after Redis restarted")


async def test_a_dropped_subscription_recovers_missed_events(pair, redis_client):
    a, b = pair.a, pair.b
    await a.recv_type("join")
    # Cut every pub/sub connection on the server side; the sockets stay up.
    await kill_pubsub_connections(redis_client)
    sent = []
    for n in range(10):
        sent.append(await a.say(f"through the gap {n}"))
    got = [(await b.recv_type("message", timeout=15))["id"] for _ in sent]
    assert got == sent
    assert got == sorted(got, key=parse_event_id)


async def test_a_foreign_publish_on_a_room_channel_is_ignored(new_user, new_room, open_socket, redis_client):
    alice = await new_user()
    code = await new_room(alice)
    socket = await open_socket(alice, code)
    await socket.recv_type("welcome")
    # On a cluster room events are sharded pub/sub: the garbage goes where the gateway listens.
    publish = redis_client.spublish if isinstance(redis_client, RedisCluster) else redis_client.publish
    assert await publish(room_key(code), "not an event") == 1, "the gateway hears the room's channel"
    await publish(room_key(code), '{"id":"garbage",')
    await socket.send({"type": "message", "text": "still delivered", "ref": "r"})
    frames = {frame["type"]: frame for frame in [await socket.recv(), await socket.recv()]}
    assert frames["message"]["id"] == frames["ack"]["id"] and frames["message"]["text"] == "still delivered"


async def test_pubsub_connections_cut_while_messages_flow_lose_nothing(pair, redis_client):
    """The client library must not re-subscribe behind the hub's back: events published meanwhile would be lost."""
    a, b = pair.a, pair.b
    await a.recv_type("join")
    acked: list[str] = []

    async def flood() -> None:
        for n in range(100):
            acked.append(await a.say(f"flowing {n}"))

    async def cut() -> None:
        for _ in range(6):
            await asyncio.sleep(0.25)
            await kill_pubsub_connections(redis_client)

    received: list[str] = []

    async def read() -> None:
        async with asyncio.timeout(60):
            while len(received) < 100:
                received.append((await b.recv_type("message"))["id"])

    await asyncio.gather(flood(), cut(), read())
    assert received == acked


@pytest.mark.single_redis
async def test_a_gateway_cut_off_from_redis_sends_its_users_elsewhere(stack, new_user, new_room, open_socket):
    """Refused handshakes (503, so the edge picks another replica), then its sockets closed with 1013."""
    proxies = ProxyGroup()
    port = proxies.add("cut", int(stack.redis_url.rsplit(":", 1)[1].split("/")[0]))
    replica = stack.add_replica("gateway", {"SALA_REDIS_URL": f"redis://127.0.0.1:{port}/0"})
    url = stack.service_url(replica)
    try:
        alice = await new_user()
        code = await new_room(alice)
        socket = Socket(await connect(ws_url(url, code), additional_headers=alice.bearer, open_timeout=10))
        await socket.recv_type("welcome")
        cut_for = float(TEST_SETTINGS["SALA_PRESENCE_TIMEOUT_SECONDS"]) + 8
        proxies.cut("cut", cut_for)
        health = float(TEST_SETTINGS["SALA_PUBSUB_HEALTH_SECONDS"])
        presence = float(TEST_SETTINGS["SALA_PRESENCE_TIMEOUT_SECONDS"])
        assert await socket.closed_with(timeout=2 * health + presence + 4) == 1013
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(url, code), additional_headers=alice.bearer, open_timeout=5)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "1"
    finally:
        stack.stop_child(replica)
        proxies.close()
