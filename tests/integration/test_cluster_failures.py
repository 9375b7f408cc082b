"""A Redis Cluster failing under live chat: a primary killed, a room's slot moved while messages flow.

On a cluster of its own (3 primaries, 3 replicas; a killed primary is
started again once its replica took over, and comes back as a replica), run
in the default pass: these tests break
the cluster on purpose. Members behave as the web client does: on a close
other than a final one they reconnect with ``since`` and re-send what was
not acked, with the same ``ref``. Every acked message must reach every
listener exactly once and in id order, and be stored once.
"""

import asyncio
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from services.common.redis_schema import GATEWAYS, parse_event_id, room_events_key, room_key
from tests.conftest import GATEWAYS as GATEWAY_COUNT
from tests.conftest import TEST_SETTINGS
from tests.integration.conftest import Socket, User, redis_of, ws_url
from tools import redis_cluster
from tools.devstack import Ports, Stack
from tools.tcpproxy import ProxyGroup

# Acks wait for one replica, so a failover loses no acked message.
CLUSTER_SETTINGS = {**TEST_SETTINGS, "SALA_ACK_REPLICAS": "1"}
FINAL_CLOSES = {1000, 4001, 4401, 4404}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """Overrides the session stack for this module: a cluster of its own, whose killed nodes restart."""
    with tempfile.TemporaryDirectory(prefix="sala-cluster-test-") as tmp:
        running = Stack(
            data_dir=Path(tmp) / "data",
            ports=Ports.free(GATEWAY_COUNT),
            log_dir=Path(os.environ.get("SALA_TEST_LOG_DIR", Path(tmp) / "logs")) / "cluster",
            fast_storage=True,
            extra_env=CLUSTER_SETTINGS,
            redis_cluster=True,
        )
        try:
            running.start()
            yield running
        finally:
            running.stop()


class Member:
    """One socket's owner, reconnecting as the web client does; what it sent, had acked and received."""

    def __init__(self, stack: Stack, user: User, code: str, gateway: int) -> None:
        self.url = stack.service_url(f"gateway{gateway}")
        self.user = user
        self.code = code
        self.last_id: str | None = None
        self.received: list[str] = []
        self.acked: dict[str, str] = {}
        self.reconnects = 0
        self._ws = None

    async def _socket(self):
        while self._ws is None:
            try:
                ws = await connect(
                    ws_url(self.url, self.code, self.last_id), additional_headers=self.user.bearer, open_timeout=5
                )
                welcome = await self._next(ws)
            except (OSError, InvalidHandshake, TimeoutError):
                await asyncio.sleep(0.2)
                continue
            except ConnectionClosed as closed:
                await self._lost(closed)
                continue
            assert welcome["type"] == "welcome", welcome
            for item in welcome["history"]:
                self._record(item)
            self._ws = ws
        return self._ws

    async def _next(self, ws) -> dict:
        return orjson.loads(await asyncio.wait_for(ws.recv(), 10))

    def _record(self, frame: dict) -> None:
        if frame["type"] in ("message", "join", "leave"):
            self.last_id = frame["id"]
            if frame["type"] == "message":
                self.received.append(frame["id"])

    async def _lost(self, closed: ConnectionClosed | None) -> None:
        code = closed.rcvd.code if closed is not None and closed.rcvd else 1006
        assert code not in FINAL_CLOSES, f"closed for good: {code}"
        self._ws = None
        self.reconnects += 1
        await asyncio.sleep(0.2)

    async def send(self, count: int) -> None:
        """Send ``count`` messages one after another, each re-sent with its ref until acked."""
        for n in range(count):
            ref = f"m{n}"
            while ref not in self.acked:
                ws = await self._socket()
                try:
                    await ws.send(orjson.dumps({"type": "message", "text": f"message {n}", "ref": ref}).decode())
                    while ref not in self.acked:
                        frame = await self._next(ws)
                        self._record(frame)
                        if frame.get("ref") == ref and frame["type"] == "ack":
                            self.acked[ref] = frame["id"]
                        elif frame.get("ref") == ref:
                            await asyncio.sleep(0.2)  # an error (rate limited, not replicated yet): send again
                            break
                except ConnectionClosed as closed:
                    await self._lost(closed)
                except TimeoutError:
                    await ws.close()
                    await self._lost(None)
            await asyncio.sleep(0.02)

    async def listen(self, until: asyncio.Event) -> None:
        """Receive until ``until`` is set and nothing more comes for a moment."""
        while True:
            ws = await self._socket()
            try:
                self._record(await self._next(ws))
            except ConnectionClosed as closed:
                await self._lost(closed)
            except TimeoutError:
                if until.is_set():
                    return

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


async def _chat_through(stack: Stack, new_user, code: str, alice: User, fault, count: int = 60) -> dict:
    """Alice sends ``count`` messages from gateway 0 while two listeners on both gateways read, and ``fault`` runs."""
    sender = Member(stack, alice, code, gateway=0)
    listeners = [Member(stack, await new_user(), code, gateway=i % GATEWAY_COUNT) for i in range(2)]
    done = asyncio.Event()
    listening = [asyncio.create_task(listener.listen(done)) for listener in listeners]
    try:
        async with asyncio.timeout(120):
            await asyncio.gather(sender.send(count), fault())
            done.set()
            await asyncio.gather(*listening)
    finally:
        for task in listening:
            task.cancel()
        await asyncio.gather(*listening, return_exceptions=True)
        for member in [sender, *listeners]:
            await member.close()
    acked = list(sender.acked.values())
    assert len(acked) == count
    assert acked == sorted(acked, key=parse_event_id), "acks in id order"
    for listener in listeners:
        assert listener.received == acked, "every acked message once, in order"
    client = redis_of(stack)
    try:
        stored = [fields["e"] for _, fields in await client.xrange(room_events_key(code))]
    finally:
        await client.aclose()
    texts = [orjson.loads(event)["text"] for event in stored if orjson.loads(event)["type"] == "message"]
    assert sorted(texts) == sorted(f"message {n}" for n in range(count)), "each message stored once"
    return {"reconnects": sum(member.reconnects for member in [sender, *listeners])}


async def _room_away_from(stack: Stack, new_room, alice: User, *avoid: str) -> tuple[str, int]:
    """A room whose slot is served by another primary than each key of ``avoid``: a fault stays on its shard."""
    ports = stack.ports.redis_nodes
    avoided = {redis_cluster.slot_owner(ports, redis_cluster.keyslot(ports[0], key)) for key in avoid}
    for _ in range(30):
        code = await new_room(alice)
        slot = redis_cluster.keyslot(ports[0], room_key(code))
        if redis_cluster.slot_owner(ports, slot) not in avoided:
            return code, slot
    raise AssertionError("every room landed on the primaries to avoid")


async def test_a_killed_primary_fails_over_under_chat_and_loses_no_acked_message(stack, new_user, new_room):
    alice = await new_user()
    code, slot = await _room_away_from(stack, new_room, alice, GATEWAYS)
    ports = stack.ports.redis_nodes
    primary = redis_cluster.slot_owner(ports, slot)
    recovered: dict[str, float] = {}

    async def kill_the_rooms_primary() -> None:
        await asyncio.sleep(1.0)
        name = f"redis-node{ports.index(primary)}"
        killed_at = time.monotonic()
        # Killed and kept down until its replica has taken over; then it comes back, as a replica.
        await asyncio.to_thread(stack.stop_child, name, signal.SIGKILL)
        try:
            await asyncio.to_thread(redis_cluster.wait_for_new_owner, ports, slot, primary, 60.0)
            recovered["seconds"] = time.monotonic() - killed_at
        finally:
            await asyncio.to_thread(stack.start_child, name)

    outcome = await _chat_through(stack, new_user, code, alice, kill_the_rooms_primary)
    print(f"\nfailover: a replica served the room's slot {recovered['seconds']:.1f} s after the kill; {outcome}")
    assert redis_cluster.slot_owner(ports, slot) != primary


async def test_a_rooms_slot_moved_mid_chat_loses_and_repeats_nothing(stack, new_user, new_room):
    alice = await new_user()
    code, slot = await _room_away_from(stack, new_room, alice, GATEWAYS)
    ports = stack.ports.redis_nodes
    source = redis_cluster.slot_owner(ports, slot)

    async def move_the_rooms_slot() -> None:
        await asyncio.sleep(1.0)
        target = next(port for port in redis_cluster.primaries(ports) if port != source)
        await asyncio.to_thread(redis_cluster.move_slot, ports, slot, target)

    outcome = await _chat_through(stack, new_user, code, alice, move_the_rooms_slot)
    print(f"\nslot {slot} moved from {source}: {outcome}")
    assert redis_cluster.slot_owner(ports, slot) != source


async def test_a_gateway_cut_off_from_one_shard_sends_only_that_shards_rooms_elsewhere(stack, new_user, new_room):
    """Its sockets in that shard's rooms get 1013 and its handshakes for them 503; its other rooms go on."""
    alice = await new_user()
    ports = stack.ports.redis_nodes
    cut_code, slot = await _room_away_from(stack, new_room, alice, GATEWAYS)
    cut_primary = redis_cluster.slot_owner(ports, slot)
    other_code, _ = await _room_away_from(stack, new_room, alice, room_key(cut_code))
    proxies = ProxyGroup()
    port = proxies.add("shard", cut_primary)
    replica = stack.add_replica("gateway", {"SALA_REDIS_CLUSTER_ADDRESS_MAP": f"127.0.0.1:{cut_primary}=127.0.0.1:{port}"})
    url = stack.service_url(replica)
    try:
        cut_socket = Socket(await connect(ws_url(url, cut_code), additional_headers=alice.bearer, open_timeout=10))
        other_socket = Socket(await connect(ws_url(url, other_code), additional_headers=alice.bearer, open_timeout=10))
        await cut_socket.recv_type("welcome")
        await other_socket.recv_type("welcome")
        health = float(TEST_SETTINGS["SALA_PUBSUB_HEALTH_SECONDS"])
        presence = float(TEST_SETTINGS["SALA_PRESENCE_TIMEOUT_SECONDS"])
        proxies.cut("shard", presence + 8)
        assert await cut_socket.closed_with(timeout=2 * health + presence + 4) == 1013
        with pytest.raises(InvalidStatus) as refused:
            await connect(ws_url(url, cut_code), additional_headers=alice.bearer, open_timeout=5)
        assert refused.value.response.status_code == 503
        assert await other_socket.say("the other shard still serves") is not None
        elsewhere = Socket(
            await connect(ws_url(stack.service_url("gateway0"), cut_code), additional_headers=alice.bearer, open_timeout=10)
        )
        assert (await elsewhere.recv_type("welcome"))["room"]["code"] == cut_code
        await elsewhere.close()
        await other_socket.close()
    finally:
        stack.stop_child(replica)
        proxies.close()
