"""The worker's HTTP port: /metrics, /health, /ready and /query.

In embedded mode the worker process owns the chDB store (one process per path), so analysts
query through /query while ingestion runs (`ringlog sql` does this for them).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from worker.adapters.clickhouse.store import ClickHouseStore, StoreError, StoreUnavailable
from worker.pipeline.metrics import Metrics
from worker.service.health import Health

READ_ONLY = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)


def json_default(value: Any) -> Any:
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=json_default, option=orjson.OPT_SERIALIZE_NUMPY)


def build_app(
    store: ClickHouseStore,
    metrics: Metrics,
    health: Callable[[], Health],
    ready: Callable[[], bool],
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

    async def post_query(request: web.Request) -> web.Response:
        text = await request.text()
        if request.content_type == "application/json":
            text = str(orjson.loads(text).get("sql", ""))
        if not READ_ONLY.match(text):
            return _error(
                400,
                "only read-only statements (SELECT, WITH, SHOW, DESCRIBE, "
                "EXPLAIN, EXISTS) are accepted on /query",
            )
        try:
            columns, rows = await asyncio.to_thread(store.query, text)
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


def _error(status: int, message: str) -> web.Response:
    return web.Response(
        body=dumps({"error": message}), status=status, content_type="application/json"
    )
