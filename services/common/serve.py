"""Running a service under uvicorn with the settings it was given."""

import sys
from collections.abc import Callable
from typing import TypeVar

import uvicorn
from pydantic import ValidationError
from starlette.types import ASGIApp

from services.common.logs import configure_logging
from services.common.settings import ServiceSettings

SettingsT = TypeVar("SettingsT", bound=ServiceSettings)


def load_settings(settings_cls: type[SettingsT]) -> SettingsT:
    """The settings from the environment, or exit with a message naming what is wrong."""
    try:
        return settings_cls()
    except ValidationError as exc:
        problems = "; ".join(
            f"SALA_{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        sys.exit(f"refusing to start, configuration is invalid: {problems}")


def serve(
    service: str,
    settings_cls: type[SettingsT],
    create_app: Callable[[SettingsT], ASGIApp],
    server_cls: type[uvicorn.Server] = uvicorn.Server,
    uvicorn_options: Callable[[SettingsT], dict[str, object]] = lambda settings: {},
) -> None:
    settings = load_settings(settings_cls)
    configure_logging(service, settings.log_level, settings.log_format)
    options: dict[str, object] = {
        "loop": "uvloop",
        "http": "httptools",
        "proxy_headers": True,
        "forwarded_allow_ips": settings.trusted_proxies,
        "log_config": None,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    options.update(uvicorn_options(settings))
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port, **options)
    server_cls(config).run()
