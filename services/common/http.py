"""What every service's HTTP app has: health, metrics, request ids, JSON errors."""

import logging
import time
import uuid
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.logs import request_id_var

log = logging.getLogger(__name__)
access_log = logging.getLogger("sala.access")

class ErrorOut(BaseModel):
    """Every error answer: ``{"detail": ...}``."""

    detail: str


ERROR_DESCRIPTIONS = {
    401: "Not authenticated, or the session ended",
    403: "Cross-site request refused",
    404: "Not found",
    409: "Conflict with an existing resource",
    413: "Request body too large",
    429: "Too many attempts; see Retry-After",
    503: "Temporarily unavailable; see Retry-After",
}
# Request bodies are small JSON documents; anything larger is refused with 413.
MAX_BODY_BYTES = 64 * 1024


def error_responses(*codes: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI ``responses`` for the error statuses a route can answer."""
    return {code: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


ReadinessCheck = Callable[[Request], Awaitable[dict[str, bool]]]
REQUEST_ID_HEADER = b"x-request-id"
# Probed every second or so: their access lines would drown the rest.
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class HttpMetrics:
    """Request counts and latency, in the app's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "sala_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=registry
        )
        self.latency = Histogram(
            "sala_http_request_duration_seconds", "HTTP request latency", ["method", "route"], registry=registry
        )


def request_id_of(scope: Scope) -> str:
    """The request id the edge gave this request, or a new one."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and value:
            return value.decode("latin-1")[:128]
    return uuid.uuid4().hex


class RequestContextMiddleware:
    """Takes the edge's request id (or makes one), logs it, returns it, and times the request."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        token = request_id_var.set(request_id)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER, request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            if scope["type"] == "http":
                route = getattr(scope.get("route"), "path", "unmatched")
                elapsed = time.perf_counter() - started
                self.metrics.requests.labels(scope["method"], route, str(status)).inc()
                self.metrics.latency.labels(scope["method"], route).observe(elapsed)
                access_log.log(
                    logging.DEBUG if scope["path"] in PROBE_PATHS else logging.INFO,
                    "request",
                    extra={"method": scope["method"], "path": scope["path"], "status": status, "ms": round(elapsed * 1000, 1)},
                )
            request_id_var.reset(token)


def create_api(title: str, prefix: str, lifespan: Callable) -> FastAPI:
    """An HTTP service's app: docs under its public prefix (so they work through the edge), bodies capped."""
    return FastAPI(
        title=title,
        lifespan=lifespan,
        max_body_size=MAX_BODY_BYTES,
        docs_url=f"{prefix}/docs",
        openapi_url=f"{prefix}/openapi.json",
    )


def install_common(app: FastAPI, readiness: ReadinessCheck) -> CollectorRegistry:
    """Add /healthz, /readyz, /metrics, request ids and a JSON answer for unexpected errors."""
    registry = CollectorRegistry()
    app.add_middleware(RequestContextMiddleware, metrics=HttpMetrics(registry))

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        checks = await readiness(request)
        ready = all(checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(RequestValidationError)
    async def invalid_input(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's format, without echoing the submitted values: they may be passwords.
        errors = [{k: v for k, v in error.items() if k not in ("input", "ctx", "url")} for error in exc.errors()]
        return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400 and request.method in ("POST", "PUT", "PATCH"):
            # A body that is not even UTF-8 JSON is invalid input like any other: 422.
            error = {"type": "json_invalid", "loc": ["body"], "msg": "The body is not valid UTF-8 JSON."}
            return JSONResponse({"detail": [error]}, status_code=422)
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse({"detail": "Internal error; the request was not completed."}, status_code=500)

    return registry
