"""A worker with ingested traffic and API keys, running in a background thread, for the query
API tests: they call it over HTTP (httpx) and compare with an oracle computed in Python from
the rows read with SQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import orjson

from devtools.traffic import generate_calls
from tests.support.in_process_worker import Running, fresh_settings, produce, running_worker
from worker.api.fields import Field, Kind, Resource
from worker.api.keys import KeyRegistry, Permission, Role
from worker.service.settings import Settings

T = TypeVar("T")

ROLES = [Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER]
PERMISSIONS = list(Permission)


@dataclass
class LiveApi:
    settings: Settings
    run: Running
    loop: asyncio.AbstractEventLoop
    projects: list[str]
    # keys[project][name] -> secret; names: the role or permission value, "expired", "revoked"
    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    _rows: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    _client: httpx.Client | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.run.worker.http_port}"

    def submit(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=120)

    def call(
        self,
        method: str,
        path: str,
        *,
        key: str | None = None,
        bearer: str | None = None,
        json: Any = None,
        content: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if key is not None:
            sent["ApiKey"] = key
        if bearer is not None:
            sent["Authorization"] = f"Bearer {bearer}"
        if content is None and json is not None:
            content = orjson.dumps(json)
            sent.setdefault("Content-Type", "application/json")
        if self._client is None:
            # One client: building one per request costs ~40 ms (its TLS context).
            self._client = httpx.Client(base_url=self.base, timeout=60)
        return self._client.request(method, path, content=content, headers=sent, params=params)

    def sql(self, sql: str) -> list[dict[str, Any]]:
        columns, rows = self.run.worker.store.query(sql)
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def table_rows(self, table: str, project: str, fresh: bool = False) -> list[dict[str, Any]]:
        """Every row of `table` in `project`, as FINAL reads it (the oracle's input); cached
        unless `fresh` (the read tests change nothing)."""
        key = (table, project)
        if fresh or key not in self._rows:
            self._rows[key] = self.sql(
                f"SELECT * FROM {self.settings.database}.{table} FINAL "
                f"WHERE project_id = '{uuid.UUID(project)}'"
            )
        return self._rows[key]


def api_json(f: Field, value: Any) -> Any:
    """A column value as the API must answer it (plain JSON, parsed): written independently
    of worker.api.values on purpose."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
            f"{value.microsecond // 1000:03d}Z"
        )
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if f.kind is Kind.JSON:
        return orjson.loads(value)
    if f.kind is Kind.BOOL:
        return bool(value)
    return value


def api_record(resource: Resource, row: dict[str, Any], names: list[str]) -> dict[str, Any]:
    return {
        name: api_json(resource.fields[name], row[resource.fields[name].column]) for name in names
    }


def _make_keys(registry: KeyRegistry, project: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for role in ROLES:
        keys[role.value] = registry.create(project, role, [], None, f"{role.value}-key")[1]
    for permission in PERMISSIONS:
        keys[permission.value] = registry.create(
            project, None, [permission], None, f"{permission.value}-key"
        )[1]
    past = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    keys["expired"] = registry.create(project, Role.OWNER, [], past, "expired")[1]
    revoked, keys["revoked"] = registry.create(project, Role.OWNER, [], None, "revoked")
    registry.revoke(revoked.id)
    return keys


@contextmanager
def live_api(
    bootstrap: str,
    chdb_url: str,
    calls: int = 150,
    extra: list[tuple[bytes, bytes]] | None = None,
    **overrides: Any,
) -> Iterator[LiveApi]:
    """A worker that has ingested `calls` generated calls of two projects (plus `extra`
    messages), with keys of every role and permission for each project."""
    settings = fresh_settings(bootstrap, chdb_url, **overrides)
    messages: list[tuple[bytes | None, bytes]] = [
        (m.key, m.value)
        for m in generate_calls(calls, seed=11, projects=2, invalid_share=0, oversized=0)
    ]
    messages += extra or []
    loop = asyncio.new_event_loop()
    ready: Future[LiveApi] = Future()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with running_worker(settings) as run:
                await produce(settings, messages)
                await run.drained()
                _columns, rows = run.worker.store.query(
                    f"SELECT DISTINCT project_id FROM {settings.database}.incoming_call_log "
                    "ORDER BY project_id"
                )
                live = LiveApi(settings, run, loop, [str(r[0]) for r in rows])
                registry = KeyRegistry(run.worker.store)
                live.keys = {p: _make_keys(registry, p) for p in live.projects}
                ready.set_result(live)
                await stop.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc)
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        live = ready.result(timeout=300)
        yield live
        if live._client is not None:
            live._client.close()
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=90)
        loop.close()
