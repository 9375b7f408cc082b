import os
import secrets
import socket
from pathlib import Path

from pydantic import Field

from services.common.settings import ServiceSettings


def _default_gateway_id() -> str:
    """Unique per process start, so a restarted replica is never mistaken for the one that died."""
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class GatewaySettings(ServiceSettings):
    port: int = 8011
    jwt_verify_keys_file: Path
    gateway_id: str = Field(default_factory=_default_gateway_id, pattern=r"^[A-Za-z0-9_.\-]{1,128}$")
    heartbeat_seconds: float = 2.0
    message_rate_per_second: float = 10.0
    message_burst: int = 20
    # One user's messages over all their sockets on a replica: tabs or scripts do not multiply the rate.
    message_rate_per_user_per_second: float = 20.0
    message_burst_per_user: int = 40
    # Sockets one user, or one client address, may hold on a replica; more are closed with 1008.
    max_sockets_per_user: int = Field(default=20, ge=1)
    max_sockets_per_address: int = Field(default=500, ge=1)
    # New sockets per user per minute (burst: as many at once); more are closed with 1013.
    connects_per_user_per_minute: int = Field(default=60, ge=1)
    # Handshakes one replica starts per second, all clients together (bursts of ``handshake_burst``); beyond
    # them a socket is closed with 1013 and a retry hint before any token or Redis work. A connect costs
    # 1.7-2.2 ms of the event loop's one core (docs/capacity.md): 400 a second take at most 0.7-0.9 of a
    # core of its own, the rest left to the sockets already open, yet take a dead replica's share of sockets
    # about as fast as the loop could unbounded; a burst of 20 holds their frames back by 50 ms at most.
    handshake_rate_per_second: float = Field(default=400.0, gt=0, le=1_000_000)
    handshake_burst: int = Field(default=20, ge=1, le=1_000_000)
    # The garbage collector's full passes (services/gateway/collector.py): held while handshakes arrive at
    # this rate or faster (a reconnect storm), released once they stay under it for ``gc_quiet_seconds``
    # or after ``gc_max_hold_seconds``; what a storm leaves is frozen, and every ``gc_thaw_seconds``
    # one full pass at a quiet moment reclaims what froze and died since.
    gc_storm_handshakes_per_second: float = Field(default=50.0, gt=0)
    gc_quiet_seconds: float = Field(default=1.0, ge=0, le=3600)
    gc_max_hold_seconds: float = Field(default=60.0, gt=0, le=3600)
    gc_thaw_seconds: float = Field(default=600.0, ge=1, le=86_400)
    # A stored message event is at most this many bytes (escapes included): history costs bytes, not characters.
    max_event_bytes: int = Field(default=8192, ge=512)
    # A connection that has not sent its request headers within this is dropped.
    handshake_timeout_seconds: float = Field(default=10.0, gt=0)
    # WebSocket pings a client may send per second (burst twice that); more close the socket with 1008.
    client_pings_per_second: float = 2.0
    # A gateway whose event loop made no progress for this long stops its heartbeat, so it is presumed dead.
    loop_stall_seconds: float = Field(default=30.0, gt=0)
    # Every frame a client sends (messages, pings, typing, invalid ones) spends from this budget;
    # a socket that keeps sending past it is closed with 1008.
    frame_rate_per_second: float = 30.0
    frame_burst: int = 60
    history_on_join: int = 50
    # How many recent messages per room remember their sender's ``ref``, so a re-sent message is stored once.
    dedupe_window: int = Field(default=1000, ge=1)
    # Replicas that must hold a message before its sender gets the ``ack`` (Redis ``WAIT``): 0 acks
    # once the primary stored it; 1 (on a cluster, or a server with a replica) lets an acked message
    # survive the primary's failover.
    ack_replicas: int = Field(default=0, ge=0, le=16)
    # How long a message waits for those replicas; short of them, the socket closes with 1013 and the
    # client re-sends (same ``ref``: stored once).
    ack_replicas_timeout_ms: int = Field(default=1000, ge=1, le=10000)
    # The most typing notices one socket may send per second; more are dropped.
    typing_rate_per_second: float = 0.5
    # A socket whose unsent backlog passes this is closed (1013) and resumes with ``since``.
    send_queue_max: int = 2000
    ws_ping_interval_seconds: float = 20.0
    ws_ping_timeout_seconds: float = 20.0
    # How often the pub/sub connection is pinged; no answer within twice this and it is re-established.
    pubsub_health_seconds: float = 5.0
