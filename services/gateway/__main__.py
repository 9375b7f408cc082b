"""``python -m services.gateway``: run one gateway replica."""

import uvicorn

from services.common.serve import serve
from services.gateway.app import create_app
from services.gateway.protocol import HandshakeDeadlineProtocol, LeanWebSocketProtocol
from services.gateway.settings import GatewaySettings

MAX_FRAME_BYTES = 64 * 1024


class DrainingServer(uvicorn.Server):
    """Marks the app as draining the moment SIGTERM arrives, before uvicorn closes the sockets.

    Sockets closed by the drain start their users' leave grace, so clients
    that reconnect to another replica cause no leave and join.
    """

    def handle_exit(self, sig: int, frame: object) -> None:
        context = getattr(self.config.app.state, "context", None)
        if context is not None:
            context.draining = True
        super().handle_exit(sig, frame)


def websocket_options(settings: GatewaySettings) -> dict[str, object]:
    return {
        "http": HandshakeDeadlineProtocol.configured(settings.handshake_timeout_seconds),
        "ws": LeanWebSocketProtocol.configured(settings.client_pings_per_second),
        "ws_max_size": MAX_FRAME_BYTES,
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        "ws_per_message_deflate": False,
    }


serve("gateway", GatewaySettings, create_app, server_cls=DrainingServer, uvicorn_options=websocket_options)
