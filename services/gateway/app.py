"""Builds the gateway's app: the chat socket, health, metrics, and the background duties."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from functools import partial

from fastapi import FastAPI, Request, WebSocket
from redis.asyncio import RedisCluster
from redis.exceptions import RedisError
from starlette.datastructures import State
from starlette.types import Receive, Scope, Send

from services.common.background import Duties
from services.common.http import install_common, request_id_of
from services.common.logs import request_id_var
from services.common.reaper import ReaperSettings, run_reaper
from services.common.redis_client import PubSubNodes, create_redis, redis_ready
from services.common.redis_schema import Scripts
from services.common.tokens import TokenVerifier, load_public_keys
from services.gateway.admission import Admission
from services.gateway.appender import MessageAppender
from services.gateway.closes import Close
from services.gateway.collector import Collector, CollectorPolicy
from services.gateway.context import GatewayContext
from services.gateway.hub import Hub
from services.gateway.line import ClusterCommands, CommandLine
from services.gateway.liveness import HeartbeatThread
from services.gateway.metrics import GatewayMetrics
from services.gateway.presence import Presence
from services.gateway.routes import SOCKET_PATH, chat_socket
from services.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


async def keep_alive(context: GatewayContext, heartbeat: HeartbeatThread, duties: Duties) -> None:
    """The loop's side of liveness: show the heartbeat thread it makes progress, and act on what it found.

    If this gateway was given up for dead, its sockets reconnect to rebuild
    presence. The reaper gave their users the leave grace, so clients back
    within it cause no leave and no join, and no room closes under them.

    A gateway cut off from Redis for the presence timeout closes its sockets
    (1013) so that their users move to a replica that can serve them: the
    others presume it dead by then anyway. Meanwhile it refuses handshakes.
    On a cluster, cut off from one shard only, it closes the sockets of that
    shard's rooms.
    """
    hub = context.hub
    while True:
        heartbeat.loop_alive()
        closed = hub.close_cut_off(
            context.settings.presence_timeout_seconds, Close.TRY_AGAIN, "this replica lost Redis; reconnect"
        )
        if closed:
            log.warning("cut off from Redis; asked clients to reconnect elsewhere", extra={"sockets": closed})
        if heartbeat.forgotten.is_set():
            heartbeat.forgotten.clear()
            context.presence.gateway_id = heartbeat.gateway_id
            if hub.connection_count:
                log.warning("this gateway was presumed dead; asking clients to reconnect")
                hub.close_all(Close.SERVICE_RESTART, "presence lost; reconnect")
        context.admission.prune()
        try:
            await context.presence.record_unrecorded()
        except RedisError as exc:
            log.warning("leaves still not recorded", extra={"error": str(exc)})
        if not await duties.pause(min(1.0, context.settings.heartbeat_seconds)):
            return


async def _bounded(step: str, work: Awaitable[object], seconds: float = 2.0) -> None:
    """One shutdown step, given up after ``seconds`` so the drain always ends in time."""
    try:
        async with asyncio.timeout(seconds):
            await work
    except TimeoutError:
        log.warning("shutdown step timed out", extra={"step": step})


class GatewayApp:
    """The gateway's ASGI entry: chat sockets go straight to their handler, the rest to the FastAPI app.

    The FastAPI app owns the lifespan, state, health and metrics; see ``routes``
    for why the socket skips it.
    """

    def __init__(self, api: FastAPI) -> None:
        self.api = api

    @property
    def state(self) -> State:
        return self.api.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket" or scope["path"] != SOCKET_PATH:
            await self.api(scope, receive, send)
            return
        token = request_id_var.set(request_id_of(scope))
        try:
            await chat_socket(WebSocket(scope, receive, send), self.api.state.context)
        finally:
            request_id_var.reset(token)


def create_app(settings: GatewaySettings) -> GatewayApp:
    verifier = TokenVerifier(
        load_public_keys(settings.jwt_verify_keys_file), settings.jwt_issuer, settings.jwt_audience
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        metrics: GatewayMetrics = app.state.metrics
        redis = create_redis(settings)
        # Publishing and subscribing never share a connection; the hub, not the library, re-subscribes.
        pubsub_nodes = PubSubNodes(settings, redis)
        scripts = Scripts.register(redis)
        commands = ClusterCommands(redis) if isinstance(redis, RedisCluster) else CommandLine(redis)
        hub = Hub(
            redis,
            pubsub_nodes,
            settings.pubsub_health_seconds,
            on_fanout=metrics.fanned_out.inc,
            on_reconnect=metrics.redis_reconnects.inc,
        )
        app.state.context = context = GatewayContext(
            settings=settings,
            verifier=verifier,
            metrics=metrics,
            redis=redis,
            commands=commands,
            scripts=scripts,
            appender=MessageAppender(
                redis,
                scripts,
                settings.room_history_max,
                settings.dedupe_window,
                commands,
                settings.ack_replicas,
                settings.ack_replicas_timeout_ms,
            ),
            hub=hub,
            presence=Presence(
                redis, commands, scripts, settings.gateway_id, settings.leave_grace_seconds, settings.room_history_max
            ),
            admission=Admission(settings),
        )
        heartbeat = HeartbeatThread(settings, settings.heartbeat_seconds, settings.loop_stall_seconds)
        metrics.loop_lag.set_function(heartbeat.loop_lag)
        metrics.local_rooms.set_function(lambda: len(hub.rooms))
        metrics.send_queue_depth.set_function(
            lambda: sum(socket.queued for room in hub.rooms.values() for socket in room.sockets)
        )
        await hub.start()
        heartbeat.start()
        duties = Duties()
        duties.start("keep alive", partial(keep_alive, context, heartbeat))
        duties.start("reaper", partial(run_reaper, redis, scripts, ReaperSettings.of(settings)))
        collector = Collector(
            CollectorPolicy(
                settings.gc_storm_handshakes_per_second,
                settings.gc_quiet_seconds,
                settings.gc_max_hold_seconds,
                settings.gc_thaw_seconds,
            ),
            handshakes=lambda: context.admission.handshakes.seen,
        )
        collector.settle()
        metrics.gc_holding.set_function(lambda: float(collector.holding))
        duties.start("collector", lambda duties: collector.run(duties.pause))
        try:
            yield
        finally:
            await duties.stop()
            collector.release()
            await asyncio.to_thread(heartbeat.stop)
            await _bounded("stop the hub", hub.stop())
            with contextlib.suppress(RedisError):
                await _bounded("record leaves", context.presence.record_unrecorded())
                await _bounded("retire", context.presence.retire())
            await _bounded("close pub/sub clients", pubsub_nodes.aclose())
            if isinstance(commands, CommandLine):
                await _bounded("close the command line", commands.aclose())
            await _bounded("close client", redis.aclose())

    app = FastAPI(title="Sala gateway", lifespan=lifespan, openapi_url=None, docs_url=None)

    async def readiness(request: Request) -> dict[str, bool]:
        context: GatewayContext = request.app.state.context
        return {
            "redis": await redis_ready(context.redis),
            "pubsub": context.hub.is_connected(),
            # Each check is true when healthy: a draining gateway takes no new sockets.
            "accepting": not context.draining,
        }

    registry = install_common(app, readiness)
    app.state.metrics = GatewayMetrics(registry)
    return GatewayApp(app)
