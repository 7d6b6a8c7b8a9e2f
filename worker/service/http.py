"""The HTTP app of a ringlog process (FastAPI; served by `http_server`).

- `/metrics`, `/health`, `/ready`: safe to expose (Prometheus and probes reach them from other
  hosts);
- the query APIs of `worker.api` (OneUptime- and PortSIP-compatible), behind API keys;
- operator routes (`ops_routes`): `POST /query` (raw read-only SQL) and `/admin/api-keys` (what
  `ringlog sql` and `ringlog apikey` use when a worker owns the embedded store).

The app exists before the parts it serves (the store, the worker) are started, and outlives
them at stop: every route reads `HttpState.serving` at request time and answers 503 while it
is None. Request bodies are capped at 1 MiB; every error is a JSON body in the route's
dialect, never a stack trace.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final, Protocol

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.adapters.clickhouse.store import ClickHouseStore
from worker.adapters.clickhouse.untrusted import QueryLimits
from worker.api.context import ApiContext
from worker.api.errors import ApiError, Failure, error_response, is_portsip
from worker.api.oneuptime_routes import oneuptime_router
from worker.api.portsip_routes import portsip_router
from worker.service.api_metrics import ApiMetrics
from worker.service.health import Health
from worker.service.ops_routes import ops_router

log = logging.getLogger("ringlog.http")

MAX_BODY_BYTES: Final = 1024 * 1024


class MetricsSource(Protocol):
    """What /metrics exposes: a registry (the worker's `Metrics`, or the supervisor's)."""

    @property
    def registry(self) -> CollectorRegistry: ...


@dataclass
class Serving:
    """What the routes serve while the process runs."""

    store: ClickHouseStore
    metrics: MetricsSource
    health: Callable[[], Health]
    ready: Callable[[], bool]
    limits: QueryLimits
    operator_token: str | None
    api: ApiContext


class HttpState:
    """Set once the process's parts are started, cleared before they stop."""

    def __init__(self) -> None:
        self.serving: Serving | None = None
        self.api_metrics = ApiMetrics()


class BodyTooLarge(Exception):
    pass


class BodyLimit:
    """Refuses request bodies above `max_bytes`, declared or streamed (413)."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            response = _too_large(scope["path"], self.max_bytes)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise BodyTooLarge
            return message

        await self.app(scope, counted, send)


def _too_large(path: str, max_bytes: int) -> Response:
    return error_response(
        path, Failure.TOO_LARGE, f"request body larger than {max_bytes} bytes: send less"
    )


def _validation_message(exc: RequestValidationError) -> str:
    parts: list[str] = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        if where == "limit" and error.get("type") == "less_than_equal":
            parts.append("Limit should be less than 10000")  # OneUptime's words
        elif where in ("skip", "limit") and error.get("type") == "greater_than_equal":
            parts.append(f"{where} cannot be less than 0")
        elif error.get("type") == "json_invalid":
            parts.append(f"malformed JSON body: {error.get('ctx', {}).get('error', 'invalid')}")
        elif error.get("type") == "extra_forbidden":
            parts.append(f"unknown field {where!r}")
        else:
            parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


def _methods_of(app: FastAPI, path: str) -> list[str]:
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods or set()
    return sorted(methods - {"HEAD"})


def build_app(state: HttpState) -> FastAPI:
    app = FastAPI(
        title="ringlog",
        summary="Call logs, incoming call logs and CDRs from telephony events",
        description=(
            "OneUptime-compatible (`/api/incoming-call-log`, `/api/incoming-call-log-item`, "
            "`/api/call-log`; `ApiKey` header) and PortSIP-compatible (`/api/calllogs`; "
            "`Authorization: Bearer`) interfaces over ringlog's ClickHouse rows. Keys come "
            "from `ringlog apikey create`."
        ),
        version="1",
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
    )

    def api_context() -> ApiContext | None:
        serving = state.serving
        return serving.api if serving is not None else None

    app.include_router(ops_router(state))
    app.include_router(oneuptime_router(api_context))
    app.include_router(portsip_router(api_context))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return error_response(request.url.path, exc.failure, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request.url.path, Failure.BAD_REQUEST, _validation_message(exc))

    @app.exception_handler(BodyTooLarge)
    async def too_large(request: Request, _: BodyTooLarge) -> Response:
        return _too_large(request.url.path, MAX_BODY_BYTES)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            return error_response(
                request.url.path, Failure.NOT_FOUND, f"Page not found - {request.url.path}"
            )
        response = error_response(request.url.path, Failure.BAD_REQUEST, str(exc.detail))
        response.status_code = exc.status_code
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:
            # Every method of the path (Starlette names only those of the first route that
            # matched it, and GET and POST of one path are separate routes here).
            response.headers["Allow"] = ", ".join(_methods_of(app, request.url.path))
        return response

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        return error_response(request.url.path, Failure.SERVER, "Server Error")

    @app.middleware("http")
    async def request_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        if request.url.path.startswith("/api"):
            key = getattr(request.state, "api_key", None)
            route = request.scope.get("route")
            extra: dict[str, Any] = {
                "method": request.method,
                "route": getattr(route, "path", request.url.path),
                "status": response.status_code,
                "ms": round((time.perf_counter() - started) * 1000, 1),
                "api": "portsip" if is_portsip(request.url.path) else "oneuptime",
            }
            if key is not None:
                extra.update(project_id=key.project_id, key_name=key.name, key_id=key.id)
            metrics = state.api_metrics
            template = getattr(route, "path", "unmatched")  # never the raw path: bounded labels
            metrics.requests.labels(extra["api"], template, str(response.status_code)).inc()
            metrics.seconds.labels(extra["api"]).observe(time.perf_counter() - started)
            log.info(
                "%s %s -> %d", request.method, extra["route"], response.status_code, extra=extra
            )
        return response

    app.add_middleware(BodyLimit)
    return app
