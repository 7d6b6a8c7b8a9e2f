"""Operators' routes: /metrics, /health, /ready, and the operator-only /query and
/admin/api-keys.

/query (raw read-only SQL, capped: `worker.adapters.clickhouse.untrusted`) and /admin/api-keys
are what `ringlog sql` and `ringlog apikey` use while a worker owns the embedded chDB store
(one process per path). They read every project, so they need the operator token
(`Authorization: Bearer`, RINGLOG_QUERY_TOKEN, compared in constant time), which the settings
require whenever the port binds beyond loopback; on loopback without a token, requests that a
browser could send (an Origin header, a foreign Host) are refused. An API key never opens
them: a key belongs to one project. docs/security.md has the whole map.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
import logging
import time
from typing import TYPE_CHECKING, Annotated, Any, Final

import orjson
from fastapi import APIRouter, Body, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from worker.adapters.clickhouse.store import StoreError, StoreUnavailable
from worker.adapters.clickhouse.untrusted import StatementRefused
from worker.api.keys import Permission, Role
from worker.service.json_values import dumps

if TYPE_CHECKING:
    from worker.service.http import HttpState, Serving

log = logging.getLogger("ringlog.http")

QUERY_CONCURRENCY: Final = 2
LOOPBACK_NAMES: Final = frozenset({"127.0.0.1", "localhost", "::1"})


def _json(body: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(body), status, headers, media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_id: str
    role: Role | None = None
    permissions: list[Permission] = Field(default_factory=list)
    expires_at: dt.datetime | None = None
    name: str = ""


def ops_router(state: HttpState) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    # At most this many raw statements at once: each holds a thread and a chDB client.
    running = asyncio.Semaphore(QUERY_CONCURRENCY)

    def serving_or_503(path: str) -> Serving | Response:
        serving = state.serving
        if serving is not None:
            return serving
        if path == "/ready":
            return _json({"ready": False}, 503)
        if path == "/health":
            return _json(
                {"healthy": False, "reasons": ["worker is not running"], "time": time.time()}, 503
            )
        return _error(503, "the worker is starting or stopping")

    @router.get("/metrics")
    async def metrics(request: Request) -> Response:
        serving = serving_or_503(request.url.path)
        if isinstance(serving, Response):
            return serving
        body = generate_latest(serving.metrics.registry) + generate_latest(
            state.api_metrics.registry
        )
        return Response(body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    @router.get("/health")
    async def health(request: Request) -> Response:
        serving = serving_or_503(request.url.path)
        if isinstance(serving, Response):
            return serving
        checked = serving.health()
        return _json(
            {"healthy": checked.healthy, "reasons": checked.reasons, "time": time.time()},
            200 if checked.healthy else 503,
        )

    @router.get("/ready")
    async def ready(request: Request) -> Response:
        serving = serving_or_503(request.url.path)
        if isinstance(serving, Response):
            return serving
        ok = serving.ready()
        return _json({"ready": ok}, 200 if ok else 503)

    def operator_refusal(request: Request, serving: Serving, what: str) -> Response | None:
        token = serving.operator_token
        if token is None:
            # Loopback only (settings refuse a wider bind without a token). A browser on this
            # machine could still post here (no preflight for text/plain) or reach it by DNS
            # rebinding: refuse anything a browser sends cross-origin or under another name.
            host = (request.headers.get("host") or "").rsplit(":", 1)[0].strip("[]").lower()
            if "origin" not in request.headers and host in LOOPBACK_NAMES:
                return None
            log.warning(
                "refused a browser-like request to %s (Origin header or a non-loopback Host)",
                what,
                extra={"remote": _remote(request), "error_code": "query_cross_origin"},
            )
            return _error(
                403,
                f"{what} refuses requests from a browser (an Origin header) or under a host "
                "name other than loopback: use `ringlog sql` / `ringlog apikey` or curl on this "
                "machine, or set RINGLOG_QUERY_TOKEN",
            )
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode("utf-8"), token.encode("utf-8")
        ):
            return None
        log.warning(
            "refused %s without a valid operator token",
            what,
            extra={"remote": _remote(request), "error_code": "query_unauthorized"},
        )
        return _error(
            401,
            f"{what} needs the operator token: send `Authorization: Bearer <token>` "
            "(RINGLOG_QUERY_TOKEN)",
            headers={"WWW-Authenticate": "Bearer"},
        )

    def operator_gate(request: Request, what: str) -> Serving | Response:
        """The serving parts, or the answer that refuses the request (503, 401, 403)."""
        serving = serving_or_503(request.url.path)
        if isinstance(serving, Response):
            return serving
        return operator_refusal(request, serving, what) or serving

    @router.post("/query")
    async def query(request: Request) -> Response:
        serving = operator_gate(request, "POST /query")
        if isinstance(serving, Response):
            return serving
        text = (await request.body()).decode("utf-8", errors="replace")
        if request.headers.get("content-type", "").startswith("application/json"):
            try:
                text = str(orjson.loads(text).get("sql", ""))
            except (orjson.JSONDecodeError, AttributeError):
                return _error(400, 'a JSON body must be an object {"sql": "SELECT ..."}')
        try:
            async with running:
                columns, rows = await asyncio.to_thread(
                    serving.store.query_untrusted, text, serving.limits
                )
        except StatementRefused as exc:
            return _error(400, str(exc))
        except StoreUnavailable as exc:
            return _error(503, str(exc))
        except StoreError as exc:
            return _error(400, str(exc))
        return _json({"columns": columns, "rows": rows})

    @router.get("/admin/api-keys")
    async def list_keys(request: Request, project_id: str | None = None) -> Response:
        serving = operator_gate(request, "GET /admin/api-keys")
        if isinstance(serving, Response):
            return serving
        try:
            keys = await asyncio.to_thread(serving.api.keys.list, project_id)
        except ValueError as exc:
            return _error(400, str(exc))
        return _json({"keys": [k.public() for k in keys]})

    @router.post("/admin/api-keys")
    async def create_key(request: Request, new: Annotated[NewKey, Body()]) -> Response:
        serving = operator_gate(request, "POST /admin/api-keys")
        if isinstance(serving, Response):
            return serving
        try:
            key, secret = await asyncio.to_thread(
                serving.api.keys.create,
                new.project_id,
                new.role,
                new.permissions,
                new.expires_at,
                new.name,
            )
        except ValueError as exc:
            return _error(400, str(exc))
        body: dict[str, Any] = {**key.public(), "key": secret}
        return _json(body)

    @router.post("/admin/api-keys/{key_id}/revoke")
    async def revoke_key(request: Request, key_id: str) -> Response:
        serving = operator_gate(request, "POST /admin/api-keys/…/revoke")
        if isinstance(serving, Response):
            return serving
        key = await asyncio.to_thread(serving.api.keys.revoke, key_id)
        if key is None:
            return _error(404, f"no API key with id {key_id}")
        return _json(key.public())

    return router


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None
