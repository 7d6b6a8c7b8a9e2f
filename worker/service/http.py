"""The worker's HTTP port: /metrics, /health, /ready and /query.

/metrics, /health and /ready are safe to expose (Prometheus and probes reach them from other
hosts). /query is an operator tool: in embedded mode the worker process owns the chDB store
(one process per path), so analysts query through it while ingestion runs (`ringlog sql`
does this for them). Its statements run read-only and capped (`untrusted`), and when an
operator token is configured (required beyond loopback) every request must carry it as
`Authorization: Bearer <token>`, compared in constant time. docs/security.md has the whole map.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.adapters.clickhouse.store import ClickHouseStore, StoreError, StoreUnavailable
from worker.adapters.clickhouse.untrusted import QueryLimits, StatementRefused
from worker.pipeline.metrics import Metrics
from worker.service.health import Health
from worker.service.json_values import dumps

log = logging.getLogger("ringlog.http")

QUERY_CONCURRENCY = 2
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})


def build_app(
    store: ClickHouseStore,
    metrics: Metrics,
    health: Callable[[], Health],
    ready: Callable[[], bool],
    limits: QueryLimits,
    operator_token: str | None,
) -> web.Application:
    async def get_metrics(_: web.Request) -> web.Response:
        body = generate_latest(metrics.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def get_health(_: web.Request) -> web.Response:
        state = health()
        return web.Response(
            body=dumps({"healthy": state.healthy, "reasons": state.reasons, "time": time.time()}),
            status=200 if state.healthy else 503,
            content_type="application/json",
        )

    async def get_ready(_: web.Request) -> web.Response:
        ok = ready()
        return web.Response(
            body=dumps({"ready": ok}), status=200 if ok else 503, content_type="application/json"
        )

    # At most this many statements at once: each holds a worker thread that inserts share.
    running = asyncio.Semaphore(QUERY_CONCURRENCY)

    def authorized(request: web.Request) -> bool:
        if operator_token is None:
            # Loopback only (settings refuse a wider bind without a token). A browser on this
            # machine could still post here (no preflight for text/plain) or reach it by DNS
            # rebinding: refuse anything a browser sends cross-origin or under another name.
            host = request.host.rsplit(":", 1)[0].strip("[]").lower()
            return "Origin" not in request.headers and host in LOOPBACK_NAMES
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8"), operator_token.encode("utf-8")
        )

    async def post_query(request: web.Request) -> web.Response:
        if operator_token is None and not authorized(request):
            log.warning(
                "refused a browser-like POST /query (Origin header or a non-loopback Host)",
                extra={"remote": request.remote, "error_code": "query_cross_origin"},
            )
            return _error(
                403,
                "POST /query refuses requests from a browser (an Origin header) or under a host "
                "name other than loopback: use `ringlog sql` or curl on this machine, or set "
                "RINGLOG_QUERY_TOKEN",
            )
        if not authorized(request):
            log.warning(
                "refused POST /query without a valid operator token",
                extra={"remote": request.remote, "error_code": "query_unauthorized"},
            )
            return _error(
                401,
                "POST /query needs the operator token: send `Authorization: Bearer <token>` "
                "(RINGLOG_QUERY_TOKEN)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        text = await request.text()
        if request.content_type == "application/json":
            try:
                text = str(orjson.loads(text).get("sql", ""))
            except (orjson.JSONDecodeError, AttributeError):
                return _error(400, 'a JSON body must be an object {"sql": "SELECT ..."}')
        try:
            async with running:
                columns, rows = await asyncio.to_thread(store.query_untrusted, text, limits)
        except StatementRefused as exc:
            return _error(400, str(exc))
        except StoreUnavailable as exc:
            return _error(503, str(exc))
        except StoreError as exc:
            return _error(400, str(exc))
        return web.Response(
            body=dumps({"columns": columns, "rows": rows}), content_type="application/json"
        )

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/metrics", get_metrics)
    app.router.add_get("/health", get_health)
    app.router.add_get("/ready", get_ready)
    app.router.add_post("/query", post_query)
    return app


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=dumps({"error": message}),
        status=status,
        content_type="application/json",
        headers=headers,
    )
