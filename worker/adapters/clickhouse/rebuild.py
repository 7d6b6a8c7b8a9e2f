"""`ringlog rebuild`: recompute rows from the `call_event` log, without Kafka.

After a rate-plan change or a fix to a correlation rule, the rows already in ClickHouse are
stale. Every valid event is in `call_event`, and rows are a pure function of a call's event
set (`worker.core.correlation.build_call_rows`), so rebuilding is: page through the distinct
(project_id, call_id) keys, load each call's events, rebuild its rows with the current rate
plan and insert them.

Versions. A rebuilt row has the same version as the row it replaces (the version counts the
distinct events, plus one for a timeout close), and on equal versions a ReplacingMergeTree
keeps the LAST inserted row: the rebuild wins. A row that the worker later computes from more
events has a higher version and wins in turn, so run the worker with the same rate plan.

Memory: keys are paged by keyset (`(project_id, call_id) > last`, `LIMIT chunk`), and only one
chunk of calls' events is held at a time.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.ddl import qualified
from schemas.rows import TableName
from schemas.tables import CALL_EVENT
from worker.adapters.clickhouse.store import ClickHouseStore, StoreUnavailable
from worker.core.call_state import CallKey
from worker.core.correlation import Row, build_call_rows
from worker.core.decode import Rejection, ValidEvent, decode_stored
from worker.core.rates import RatePlan

log = logging.getLogger("ringlog.rebuild")

DEFAULT_CHUNK = 1000

__all__ = ["DEFAULT_CHUNK", "RebuildError", "RebuildStats", "rebuild"]


class RebuildError(Exception):
    """The rebuild cannot run (store locked by a worker, unreachable, bad filter)."""


@dataclass
class RebuildStats:
    calls: int = 0
    events: int = 0
    skipped_events: int = 0  # stored payloads that no longer validate
    rows: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    keys: list[CallKey] = field(default_factory=list)  # only with collect_keys=True


Progress = Callable[[int, int], None]
"""Called after each chunk with (calls rebuilt so far, total calls)."""


def _filters(project: str | None, since: datetime | None) -> tuple[str, str, dict[str, Any]]:
    where: list[str] = []
    params: dict[str, Any] = {}
    if project is not None:
        where.append("project_id = toUUID(%(project)s)")
        params["project"] = project
    having = ""
    if since is not None:
        # A call is selected when ANY of its events is at/after `since`; it is then rebuilt
        # from ALL of its events.
        having = " HAVING max(occurred_at) >= toDateTime64(%(since)s, 3, 'UTC')"
        params["since"] = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    return (" WHERE " + " AND ".join(where)) if where else "", having, params


def _keys(
    store: ClickHouseStore, table: str, project: str | None, since: datetime | None, chunk: int
) -> Iterator[list[CallKey]]:
    where, having, params = _filters(project, since)
    last: CallKey | None = None
    while True:
        conditions = [where[len(" WHERE ") :]] if where else []
        page_params = dict(params, limit=chunk)
        if last is not None:
            conditions.append("(project_id, call_id) > (toUUID(%(last_p)s), %(last_c)s)")
            page_params.update(last_p=last[0], last_c=last[1])
        sql = (
            f"SELECT toString(project_id), call_id FROM {table}"
            + (" WHERE " + " AND ".join(conditions) if conditions else "")
            + f" GROUP BY project_id, call_id{having}"
            " ORDER BY project_id, call_id LIMIT %(limit)s"
        )
        _, rows = store.query(sql, page_params)
        keys = [(str(p), str(c)) for p, c in rows]
        if not keys:
            return
        yield keys
        if len(keys) < chunk:
            return
        last = keys[-1]


def _count(store: ClickHouseStore, table: str, project: str | None, since: datetime | None) -> int:
    where, having, params = _filters(project, since)
    _, rows = store.query(
        f"SELECT count() FROM (SELECT project_id, call_id FROM {table}{where} "
        f"GROUP BY project_id, call_id{having})",
        params,
    )
    return int(str(rows[0][0]))


def _watermark(store: ClickHouseStore, table: str) -> datetime | None:
    """The newest event time in the log: the clock of the timeout close, as in the worker."""
    _, rows = store.query(f"SELECT max(occurred_at), count() FROM {table}")
    newest, count = rows[0]
    if not count or not isinstance(newest, datetime):
        return None
    return newest if newest.tzinfo is not None else newest.replace(tzinfo=UTC)


def _event(payload: str, call_id: str) -> ValidEvent | None:
    event = decode_stored(payload, call_id)
    if isinstance(event, Rejection):
        log.warning("stored event no longer validates, skipped: %s", event.message)
        return None
    return event


def rebuild(
    store: ClickHouseStore,
    rates: RatePlan,
    *,
    project: str | None = None,
    since: datetime | None = None,
    timeout: timedelta | None = timedelta(hours=4),
    chunk: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
    collect_keys: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> RebuildStats:
    """Rebuild the rows of every call in `call_event` (of `project`, with an event at or
    after `since`) with `rates`, and insert them. Returns what was done.

    Raises RebuildError when the store cannot be opened (in embedded mode: a running worker
    owns it) and StoreError/StoreUnavailable for failures on the way (a rerun is safe: it
    rewrites the same rows).
    """
    if chunk < 1:
        raise RebuildError("chunk must be >= 1")
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    try:
        store.connect()
    except StoreUnavailable as exc:
        if store.embedded:
            raise RebuildError(
                f"{exc}.\nringlog rebuild must open the store itself: stop the worker first, "
                "or point both at a ClickHouse server (in development, a shared "
                "`python -m devtools store serve`)"
            ) from exc
        raise RebuildError(f"ClickHouse is unavailable: {exc}") from exc
    pending = store.pending_upgrade()
    if pending is not None:
        raise RebuildError(
            f"the store needs a schema upgrade first ({pending.describe()}): "
            "run `ringlog migrate` with the workers stopped"
        )
    table = qualified(store.database, CALL_EVENT.name)
    stats = RebuildStats()
    total = _count(store, table, project, since)
    now = _watermark(store, table)
    if progress is not None:
        progress(0, total)
    for keys in _keys(store, table, project, since, chunk):
        by_call: dict[CallKey, list[ValidEvent]] = defaultdict(list)
        for project_id, call_id, payload, *_ in store.load_call_events(keys):
            ev = _event(payload, call_id)
            if ev is None:
                stats.skipped_events += 1
                continue
            by_call[(project_id, call_id)].append(ev)
        tables: dict[TableName, list[Row]] = defaultdict(list)
        ingested_at = clock()
        for key in keys:
            events = by_call.get(key, [])
            stats.events += len({ev.event.event_id for ev in events})
            rows = build_call_rows(events, rates, now=now, timeout=timeout)
            for name, table_rows in rows.tables().items():
                for row in table_rows:
                    row["ingested_at"] = ingested_at
                tables[name].extend(table_rows)
        for name, rows_of_table in tables.items():
            if rows_of_table:
                store.insert(name, rows_of_table)
                stats.rows[name] += len(rows_of_table)
        stats.calls += len(keys)
        if collect_keys:
            stats.keys.extend(keys)
        if progress is not None:
            progress(stats.calls, total)
    return stats
