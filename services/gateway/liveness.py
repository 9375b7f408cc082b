"""The gateway's heartbeat, on a thread of its own so that no socket work can starve it.

A replica whose heartbeat stops is presumed dead and its sockets are handed
to the leave grace, so a heartbeat that lags behind a busy event loop costs
every user of the replica a reconnect. The thread beats with its own Redis
connection on the server's clock. It still vouches only for a loop that
makes progress: the loop touches ``loop_alive`` on a timer, and when it has
not for ``SALA_LOOP_STALL_SECONDS`` the thread stops beating, so a wedged
process is presumed dead as it should be.
"""

import logging
import secrets
import threading
import time
from urllib.parse import urlsplit

import redis
from redis.cluster import ClusterNode
from redis.exceptions import RedisError

from services.common.redis_client import seed_urls
from services.common.redis_schema import DEAD_GATEWAYS, GATEWAYS, HEARTBEAT
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


class HeartbeatThread(threading.Thread):
    def __init__(self, settings: GatewaySettings, interval_seconds: float, loop_stall_seconds: float) -> None:
        super().__init__(name="gateway-heartbeat", daemon=True)
        options = {"socket_timeout": max(1.0, interval_seconds), "socket_connect_timeout": 2.0}
        gateway_id = settings.gateway_id
        if settings.redis_cluster:
            seeds = [urlsplit(url) for url in seed_urls(settings.redis_url)]
            self._client: redis.Redis | redis.RedisCluster = redis.RedisCluster(
                startup_nodes=[ClusterNode(seed.hostname or "127.0.0.1", seed.port or 6379) for seed in seeds],
                username=seeds[0].username,
                password=seeds[0].password,
                ssl=seeds[0].scheme == "rediss",
                **options,
            )
        else:
            self._client = redis.Redis.from_url(settings.redis_url, **options)
        self._script = self._client.register_script(HEARTBEAT)
        self._base_id = gateway_id
        # A gateway presumed dead comes back under a new id: the reaper is removing its old one's sockets.
        self.gateway_id = gateway_id
        self._interval = interval_seconds
        self._stall = loop_stall_seconds
        self._stop_requested = threading.Event()
        self._loop_seen = time.monotonic()
        # Set when a beat found this gateway forgotten (presumed dead, or Redis lost its data), with
        # ``gateway_id`` already renewed; the loop clears it.
        self.forgotten = threading.Event()
        self.beats = 0

    def loop_alive(self) -> None:
        """Called from the event loop: it is making progress."""
        self._loop_seen = time.monotonic()

    def loop_lag(self) -> float:
        return time.monotonic() - self._loop_seen

    def run(self) -> None:
        while not self._stop_requested.is_set():
            if self.loop_lag() < self._stall:
                self._beat()
            else:
                log.error("event loop stalled; heartbeat withheld", extra={"stalled_seconds": round(self.loop_lag())})
            self._stop_requested.wait(self._interval)
        self._client.close()

    def _beat(self) -> None:
        try:
            answer = int(self._script(keys=[GATEWAYS, DEAD_GATEWAYS], args=[self.gateway_id]))
            if answer < 0 or (answer and self.beats):
                self.gateway_id = f"{self._base_id}.{secrets.token_hex(3)}"
                self._script(keys=[GATEWAYS, DEAD_GATEWAYS], args=[self.gateway_id])
                self.forgotten.set()
            self.beats += 1
        except RedisError as exc:
            log.warning("heartbeat failed", extra={"error": str(exc)})

    def stop(self, timeout: float = 3.0) -> None:
        self._stop_requested.set()
        self.join(timeout)
