"""What every socket of a gateway shares, built once in the app's lifespan."""

from dataclasses import dataclass

from redis.asyncio import Redis, RedisCluster

from services.common.redis_schema import Scripts
from services.common.tokens import TokenVerifier
from services.gateway.admission import Admission
from services.gateway.appender import MessageAppender
from services.gateway.hub import Hub
from services.gateway.line import Commands
from services.gateway.metrics import GatewayMetrics
from services.gateway.presence import Presence
from services.gateway.settings import GatewaySettings


@dataclass(slots=True)
class GatewayContext:
    settings: GatewaySettings
    verifier: TokenVerifier
    metrics: GatewayMetrics
    redis: Redis | RedisCluster
    # The hot paths' commands: a line of their own on one server, the cluster client's in a cluster.
    commands: Commands
    scripts: Scripts
    appender: MessageAppender
    hub: Hub
    presence: Presence
    admission: Admission
    # Set on SIGTERM: new sockets are refused, closed ones start their users' leave grace.
    draining: bool = False
