"""Structured logs: one JSON object per line, carrying the request id."""

import json
import logging
import sys
import time
from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed through ``extra``.
_STANDARD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    converter = time.gmtime

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class SocketRequestLines(logging.Filter):
    """uvicorn's line per WebSocket handshake: shown only at DEBUG, and never with its query string.

    uvicorn logs every handshake at INFO through its error logger. It is an
    access line, one per socket (the HTTP ones are off as well), and in a
    reconnect storm a few per cent of the gateway's CPU; at DEBUG it shows,
    without the query string, where a token or room code must not be logged.
    """

    def __init__(self, shown: bool) -> None:
        super().__init__()
        self.shown = shown

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and '"WebSocket %s"' in str(record.msg):
            if not self.shown:
                return False
            record.args = tuple(arg.split("?", 1)[0] if isinstance(arg, str) else arg for arg in record.args)
        return True


def configure_logging(service: str, level: str, fmt: str) -> None:
    """Send every logger, uvicorn's included, to stderr in the chosen format."""
    # Neither format shows the caller's file and line, the thread or the process: not looking them up
    # saves every record a walk up the stack, which also gives each coroutine on the way a frame
    # object that a socket's long-lived coroutines would keep for hours.
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(service))
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    error_log = logging.getLogger("uvicorn.error")
    error_log.filters[:] = [SocketRequestLines(shown=root.isEnabledFor(logging.DEBUG))]
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
