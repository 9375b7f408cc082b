"""Clients of the running stack: HTTP through the edge, WebSockets to the edge or to one replica."""

import asyncio
import collections
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import asyncpg
import httpx
import orjson
import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tools.devstack import Stack

PASSWORD = "correct horse battery"


@dataclass
class User:
    email: str
    username: str
    password: str
    token: str
    id: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def api(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=stack.edge_url, timeout=10) as client:
        yield client


def redis_of(stack: Stack) -> aioredis.Redis | aioredis.RedisCluster:
    """A client of the stack's Redis: the server, or (SALA_TEST_REDIS=cluster) the whole cluster."""
    if stack.redis_cluster:
        # Every node a seed: a test may have killed any one of them.
        seeds = [ClusterNode("127.0.0.1", port) for port in stack.ports.redis_nodes]
        return aioredis.RedisCluster(startup_nodes=seeds, decode_responses=True)
    return aioredis.Redis.from_url(stack.redis_url, decode_responses=True)


@pytest.fixture
async def redis_client(stack: Stack) -> AsyncIterator[aioredis.Redis]:
    client = redis_of(stack)
    yield client
    await client.aclose()


@pytest.fixture(autouse=True)
async def clean_slate(stack: Stack) -> AsyncIterator[None]:
    """Each test starts with no accounts and no rate-limit counters."""
    conn = await asyncpg.connect(stack.database_url)
    try:
        await conn.execute("TRUNCATE users CASCADE")
    finally:
        await conn.close()
    client = redis_of(stack)
    try:
        keys = [key async for key in client.scan_iter("sala:ratelimit:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
    yield


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@pytest.fixture
def new_user(api: httpx.AsyncClient) -> Callable:
    async def make(username: str | None = None) -> User:
        username = username or unique("user_")
        email = f"{username}@example.com"
        response = await api.post("/api/auth/register", json={"email": email, "username": username, "password": PASSWORD})
        assert response.status_code == 201, response.text
        response = await api.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert response.status_code == 200, response.text
        body = response.json()
        api.cookies.clear()
        return User(email, username, PASSWORD, body["access_token"], body["user"]["id"])

    return make


@pytest.fixture
def new_room(api: httpx.AsyncClient) -> Callable:
    async def make(user: User, name: str | None = None) -> str:
        response = await api.post("/api/rooms", json={"name": name} if name else {}, headers=user.bearer)
        assert response.status_code == 201, response.text
        return response.json()["code"]

    return make


class Socket:
    """A test client's chat socket with frame helpers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self._held: collections.deque[dict] = collections.deque()  # read by say() while awaiting its ack

    async def recv(self, timeout: float = 10) -> dict:
        if self._held:
            return self._held.popleft()
        return orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def recv_type(self, kind: str, timeout: float = 10) -> dict:
        """The next frame of this type, skipping others."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.recv(timeout)
                if frame["type"] == kind:
                    return frame

    async def say(self, text: str, ref: str | None = None) -> str:
        """Send a message and wait for its ack; its event id. Paced to stay under the rate limit."""
        ref = ref or uuid.uuid4().hex[:8]
        await asyncio.sleep(1 / 40)
        await self.send({"type": "message", "text": text, "ref": ref})
        held = []
        async with asyncio.timeout(10):
            while True:
                frame = await self.recv()
                if frame.get("ref") == ref:
                    assert frame["type"] == "ack", f"not acked: {frame}"
                    self._held.extend(held)
                    return frame["id"]
                held.append(frame)

    async def send(self, frame: dict | str) -> None:
        await self.ws.send(frame if isinstance(frame, str) else orjson.dumps(frame).decode())

    async def closed_with(self, timeout: float = 10) -> int:
        """Read until the server closes; the close code."""
        try:
            async with asyncio.timeout(timeout):
                while True:
                    await self.ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else 1006

    async def close(self) -> None:
        await self.ws.close()


def ws_url(base_http: str, room: str, since: str | None = None) -> str:
    url = base_http.replace("http://", "ws://") + f"/ws?room={room}"
    return url + (f"&since={since}" if since else "")


@pytest.fixture
async def open_socket(stack: Stack) -> AsyncIterator[Callable]:
    """Open a socket as a user, through the edge or straight to gateway replica ``gateway``."""
    opened: list[Socket] = []

    async def open_(user: User | None, room: str, gateway: int | None = None, since: str | None = None,
                    headers: dict[str, str] | None = None) -> Socket:
        base = stack.edge_url if gateway is None else stack.service_url(f"gateway{gateway}")
        all_headers = {**(user.bearer if user else {}), **(headers or {})}
        ws = await connect(ws_url(base, room, since), additional_headers=all_headers, open_timeout=10)
        socket = Socket(ws)
        opened.append(socket)
        return socket

    yield open_
    for socket in opened:
        await socket.close()


@dataclass
class Pair:
    """Two members of one room, each on a different replica: alice on gateway 0, bob on gateway 1."""

    alice: User
    bob: User
    code: str
    a: Socket
    b: Socket
    bob_welcome: dict


@pytest.fixture
async def pair(new_user, new_room, open_socket) -> Pair:
    """Both welcomed; bob's join is still unread on alice's socket."""
    alice, bob = await new_user(), await new_user()
    code = await new_room(alice)
    a = await open_socket(alice, code, gateway=0)
    await a.recv_type("welcome")
    b = await open_socket(bob, code, gateway=1)
    return Pair(alice, bob, code, a, b, await b.recv_type("welcome"))
