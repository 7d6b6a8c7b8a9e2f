"""`ringlog sql`: run a read-only query against the configured store.

A ClickHouse server is queried directly. The embedded store (chdb://) can be opened by one
process only, so while a worker runs the query goes through the worker's /query endpoint
(with the operator token, RINGLOG_QUERY_TOKEN, when one is set). Either way the statement
runs read-only and capped (`worker.adapters.clickhouse.untrusted`).
"""

from __future__ import annotations

from typing import Any

from worker.adapters.clickhouse.store import StoreError, StoreUnavailable
from worker.adapters.clickhouse.untrusted import StatementRefused, check_statement
from worker.cli.worker_http import WorkerRefused, call_worker
from worker.service.settings import Settings


class QueryFailed(Exception):
    pass


def _via_worker(settings: Settings, sql: str) -> tuple[list[str], list[Any]] | None:
    try:
        body = call_worker(settings, "POST", "/query", sql.encode("utf-8"), "text/plain")
    except WorkerRefused as exc:
        raise QueryFailed(str(exc)) from None
    if body is None:
        return None  # no worker listening: open the store ourselves
    return list(body["columns"]), list(body["rows"])


def run_query(settings: Settings, sql: str) -> tuple[list[str], list[Any]]:
    try:
        check_statement(sql)  # early and friendly; the engine enforces read-only anyway
    except StatementRefused as exc:
        raise QueryFailed(str(exc)) from None
    if settings.clickhouse_url.startswith("chdb://"):
        via = _via_worker(settings, sql)
        if via is not None:
            return via
    try:
        with settings.store() as store:
            columns, rows = store.query_untrusted(sql, settings.query_limits())
    except StoreUnavailable as exc:
        raise QueryFailed(
            f"{exc}. If a worker runs with this store, check RINGLOG_HTTP_PORT "
            f"(tried {settings.http_port})."
        ) from None
    except StoreError as exc:
        raise QueryFailed(str(exc)) from None
    return list(columns), [list(r) for r in rows]
