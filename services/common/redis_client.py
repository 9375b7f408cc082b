"""Redis clients that ride out a server restart on their own, for one server or a Redis Cluster.

``SALA_REDIS_CLUSTER`` picks the topology: off, ``SALA_REDIS_URL`` is the
server; on, it lists one or more seed nodes of a Redis (7 or newer) or
Valkey cluster, comma-separated, and the client finds the rest. Every key
Sala uses carries a hash tag (``services.common.redis_schema``), so each
script runs on one node either way.
"""

import asyncio
from functools import partial
from typing import Any
from urllib.parse import unquote, urlsplit

from redis._parsers.commands import AsyncCommandsParser
from redis.asyncio import BlockingConnectionPool, Redis, RedisCluster
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError, RedisClusterException, RedisError, TimeoutError

from services.common.settings import ServiceSettings

# Enough for every command in flight on a busy replica; past it, callers wait for a free connection
# (rather than fail, which redis-py's default pool does).
MAX_CONNECTIONS = 64
POOL_WAIT_SECONDS = 5.0

RedisClient = Redis | RedisCluster


def _connection_options(retries: int) -> dict[str, Any]:
    return {
        "decode_responses": True,
        "retry": Retry(ExponentialBackoff(cap=2.0, base=0.05), retries=retries),
        "retry_on_error": [ConnectionError, TimeoutError],
        "socket_connect_timeout": 2.0,
        "socket_keepalive": True,
        "health_check_interval": 10,
    }


def remap_address(mapping: dict[str, str], address: tuple[str, int]) -> tuple[str, int]:
    """Where to reach a cluster node that announces ``address`` (``SALA_REDIS_CLUSTER_ADDRESS_MAP``)."""
    reachable = mapping.get(f"{address[0]}:{address[1]}")
    if reachable is None:
        return address
    host, _, port = reachable.rpartition(":")
    return host, int(port)


def seed_urls(url: str) -> list[str]:
    return [part.strip() for part in url.split(",") if part.strip()]


class CommandTableOnce(AsyncCommandsParser):
    """A cluster client's command table, read from the server once.

    redis-py reads it again after every connection error, from the cluster's
    first primary. When that primary is the one node this process cannot
    reach (cut off from one shard), every command would fail, even those for
    shards it reaches; the table does not change while the client runs.
    """

    async def initialize(self, node: ClusterNode | None = None) -> None:
        if not self.commands:
            await super().initialize(node)


def create_redis(settings: ServiceSettings, retries: int = 5) -> RedisClient:
    """A pooled client that retries commands with bounded backoff while Redis is away."""
    if settings.redis_cluster:
        seeds = [urlsplit(url) for url in seed_urls(settings.redis_url)]
        first = seeds[0]
        cluster = RedisCluster(
            address_remap=partial(remap_address, settings.cluster_addresses),
            startup_nodes=[ClusterNode(seed.hostname or "127.0.0.1", seed.port or 6379) for seed in seeds],
            # As a redis:// URL reads them: percent-escapes decoded, the same credentials as the pub/sub clients.
            username=unquote(first.username) if first.username else None,
            password=unquote(first.password) if first.password else None,
            ssl=first.scheme == "rediss",
            max_connections=MAX_CONNECTIONS,
            **_connection_options(retries),
        )
        cluster.commands_parser = CommandTableOnce()
        return cluster
    return create_server_client(settings.redis_url, retries)


def create_server_client(url: str, retries: int = 5) -> Redis:
    """A client of one server (``retries=0`` for pub/sub: see ``PubSubNodes``)."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=POOL_WAIT_SECONDS, **_connection_options(retries)
    )
    return Redis.from_pool(pool)


class PubSubNodes:
    """Where the gateway's hub subscribes: the server, or the nodes of a cluster.

    Its clients only open the hub's connections, which never reconnect by
    themselves (``services.gateway.wire``): the hub must see every lost
    connection, since a silent re-subscription would lose what was published
    meanwhile. On one server everything is subscribed there. In a cluster,
    room channels are sharded (``SSUBSCRIBE`` on the primary that owns the
    room's slot, which is where the room's scripts ``SPUBLISH``), and the
    revocations channel is classic pub/sub, which reaches every node: any
    node serves it, and after a failure the hub moves on to the next one.
    """

    def __init__(self, settings: ServiceSettings, commands: RedisClient) -> None:
        self._settings = settings
        self._commands = commands
        self._clients: dict[str, Redis] = {}
        self._turn = 0

    @property
    def sharded(self) -> bool:
        return isinstance(self._commands, RedisCluster)

    async def next_client(self) -> Redis:
        """A client for classic pub/sub: the server, or the next node of the cluster."""
        if not isinstance(self._commands, RedisCluster):
            return self._client(self._settings.redis_url)
        try:
            await self._commands.initialize()
            nodes = sorted(node.name for node in self._commands.get_nodes())
        except (RedisError, RedisClusterException, OSError):
            nodes = []
        if not nodes:
            nodes = [f"{urlsplit(url).hostname}:{urlsplit(url).port or 6379}" for url in seed_urls(self._settings.redis_url)]
        self._turn = (self._turn + 1) % len(nodes)
        return self.node_client(nodes[self._turn])

    def owner(self, channel: str) -> str | None:
        """The primary that owns a sharded channel's slot, by the slot map last read; None if unknown."""
        assert isinstance(self._commands, RedisCluster)
        try:
            node = self._commands.get_node_from_key(channel)
        except RedisClusterException:
            return None
        return node.name if node is not None else None

    async def refresh(self) -> None:
        """Read the cluster's slot map again (after a failover, a migration or a MOVED)."""
        assert isinstance(self._commands, RedisCluster)
        await self._commands.initialize()
        await self._commands.nodes_manager.initialize()

    def node_client(self, node: str) -> Redis:
        """A client of one node (``host:port``), with the seed's scheme and credentials."""
        seed = urlsplit(seed_urls(self._settings.redis_url)[0])
        userinfo = f"{seed.username or ''}:{seed.password}@" if seed.password else ""
        reachable = self._settings.cluster_addresses.get(node, node)
        return self._client(f"{seed.scheme}://{userinfo}{reachable}")

    def _client(self, url: str) -> Redis:
        if url not in self._clients:
            self._clients[url] = create_server_client(url, retries=0)
        return self._clients[url]

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()


READY_CHECK_SECONDS = 1.0


async def redis_ready(redis: RedisClient) -> bool:
    """Whether Redis answers now; a probe must not wait out the client's retries."""
    try:
        async with asyncio.timeout(READY_CHECK_SECONDS):
            return bool(await redis.ping())
    except (RedisError, RedisClusterException, OSError):
        return False
