"""The gateway's own Prometheus metrics."""

from prometheus_client import CollectorRegistry, Counter, Gauge


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.connections = Gauge("sala_gateway_connections", "Open client sockets", registry=registry)
        self.local_rooms = Gauge("sala_gateway_rooms", "Rooms with local members", registry=registry)
        self.fanned_out = Counter("sala_gateway_events_fanned_out_total", "Event frames queued to sockets", registry=registry)
        self.redis_reconnects = Counter(
            "sala_gateway_redis_reconnects_total", "Pub/sub connections re-established", registry=registry
        )
        self.loop_lag = Gauge(
            "sala_gateway_loop_lag_seconds", "Time since the event loop last showed progress", registry=registry
        )
        self.refused = Counter(
            "sala_gateway_sockets_refused_total", "Sockets refused by a per-user or per-address limit", registry=registry
        )
        self.handshakes_refused = Counter(
            "sala_gateway_handshakes_refused_total",
            "Handshakes closed with 1013 and a retry hint: over SALA_HANDSHAKE_RATE_PER_SECOND",
            registry=registry,
        )
        self.gc_holding = Gauge(
            "sala_gateway_gc_holding",
            "1 while full garbage collections are held through a handshake storm (SALA_GC_STORM_HANDSHAKES_PER_SECOND)",
            registry=registry,
        )
        self.send_queue_depth = Gauge("sala_gateway_send_queue_depth", "Frames waiting to be sent, all sockets", registry=registry)
