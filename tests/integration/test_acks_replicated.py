"""SALA_ACK_REPLICAS=1: an ack means a replica holds the message; short of one, no ack, and a re-send is stored once.

The replica is the one of the room's primary on a cluster (SALA_TEST_REDIS=cluster);
on one server, the test attaches a replica of its own to the stack's server.
A replica is made unable to answer by stopping its process (SIGSTOP) for
less than the cluster's node timeout, so no failover starts.
"""

import asyncio
import os
import signal
import subprocess
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import orjson
import pytest
import redis.asyncio as aioredis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from services.common.redis_schema import room_events_key, room_key
from tests.integration.conftest import Socket, redis_of, ws_url
from tools.devstack import Stack, free_port, port_open, valkey_server

TIMEOUT_MS = 300


@dataclass
class Replica:
    port: int
    pid: int
    cluster: bool

    @contextmanager
    def stopped(self) -> Iterator[None]:
        """The replica's process stopped: it neither copies nor acknowledges anything until resumed."""
        os.kill(self.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.pid, signal.SIGCONT)

    async def events(self, code: str, event_id: str) -> list:
        """The room's events with this id, read on the replica itself."""
        client = aioredis.Redis(port=self.port, decode_responses=True, single_connection_client=True)
        try:
            if self.cluster:
                await client.execute_command("READONLY")
            return await client.xrange(room_events_key(code), event_id, event_id)
        finally:
            await client.aclose()


@pytest.fixture
def server_replica(stack: Stack) -> Iterator[Replica | None]:
    """On one server, a replica of it for this test (None on a cluster, whose shards have theirs)."""
    if stack.redis_cluster:
        yield None
        return
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="sala-replica-") as folder:
        argv = [
            str(valkey_server()), "--port", str(port), "--bind", "127.0.0.1", "--dir", folder,
            "--save", "", "--appendonly", "no", "--replicaof", "127.0.0.1", str(stack.ports.redis),
        ]  # fmt: skip
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            yield Replica(port, process.pid, cluster=False)
        finally:
            process.terminate()
            process.wait(10)


async def replica_of(stack: Stack, code: str, server_replica: Replica | None) -> Replica:
    """The replica that holds the room's keys, once in sync with its primary."""
    async with asyncio.timeout(30):
        replica = server_replica
        while replica is None:
            replica = await _cluster_replica(stack, code)
        while not (port_open(replica.port) and await _in_sync(replica.port)):
            await asyncio.sleep(0.1)
    return replica


async def _cluster_replica(stack: Stack, code: str) -> Replica | None:
    """The replica of the room's primary, once the cluster lists it (a new cluster lists replicas late)."""
    cluster = redis_of(stack)
    try:
        await cluster.initialize()
        node = cluster.get_node_from_key(room_key(code), replica=True)
    finally:
        await cluster.aclose()
    if node is None:
        await asyncio.sleep(0.2)
        return None
    index = stack.ports.redis_nodes.index(int(node.port))
    return Replica(int(node.port), stack.pid(f"redis-node{index}"), cluster=True)


async def _in_sync(port: int) -> bool:
    client = aioredis.Redis(port=port, decode_responses=True)
    try:
        info = await client.info("replication")
    finally:
        await client.aclose()
    return info.get("master_link_status") == "up" and not info.get("master_sync_in_progress")


@pytest.fixture
def acking_gateway(stack: Stack) -> Iterator[str]:
    """A gateway that acks a message only once a replica holds it."""
    name = stack.add_replica("gateway", {"SALA_ACK_REPLICAS": "1", "SALA_ACK_REPLICAS_TIMEOUT_MS": str(TIMEOUT_MS)})
    yield stack.service_url(name)
    stack.stop_child(name)


@pytest.fixture
async def sockets() -> AsyncIterator[list[Socket]]:
    opened: list[Socket] = []
    yield opened
    for socket in opened:
        await socket.close()


async def join(base: str, user, code: str, sockets: list[Socket]) -> Socket:
    socket = Socket(await connect(ws_url(base, code), additional_headers=user.bearer, open_timeout=10))
    sockets.append(socket)
    await socket.recv_type("welcome")
    return socket


async def test_an_acked_message_is_already_on_the_replica(
    stack, server_replica, acking_gateway, new_user, new_room, sockets
):
    user = await new_user()
    code = await new_room(user)
    socket = await join(acking_gateway, user, code, sockets)
    replica = await replica_of(stack, code, server_replica)
    for n in range(20):
        event_id = await socket.say(f"message {n}")
        events = await replica.events(code, event_id)
        assert [orjson.loads(fields["e"])["text"] for _, fields in events] == [f"message {n}"]


async def test_no_ack_while_the_replica_cannot_confirm_and_the_resend_is_stored_once(
    stack, server_replica, acking_gateway, new_user, new_room, sockets, redis_client
):
    user = await new_user()
    code = await new_room(user)
    socket = await join(acking_gateway, user, code, sockets)
    replica = await replica_of(stack, code, server_replica)
    with replica.stopped():
        await socket.send({"type": "message", "text": "held back", "ref": "r1"})
        # An ack ends the loop, and the test fails: the socket must close (1013) without one.
        with pytest.raises(ConnectionClosed) as closed:
            while (await socket.recv())["type"] != "ack":
                pass
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013

    again = await join(acking_gateway, user, code, sockets)
    event_id = await again.say("held back", ref="r1")
    assert len(await replica.events(code, event_id)) == 1
    stored = await redis_client.xrange(room_events_key(code))
    held = [entry_id for entry_id, fields in stored if orjson.loads(fields["e"]).get("text") == "held back"]
    assert held == [event_id], "stored once, acked with its first id"
