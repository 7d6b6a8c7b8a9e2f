"""Helpers to compare rows read back from ClickHouse with rows of the pure core."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import orjson

from tests.support import builders as b
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.core.correlation import build_call_rows
from worker.core.rates import RatePlan

ROW_TABLES = ("incoming_call_log", "incoming_call_log_item", "call_log", "cdr")
Tables = dict[str, list[dict[str, Any]]]


def normalised(row: dict[str, Any]) -> dict[str, Any]:
    """Every column but ingested_at (wall clock), values normalised for comparison."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key == "ingested_at":
            continue
        if isinstance(value, uuid.UUID):
            value = str(value)
        elif key == "call_data" and isinstance(value, str):
            value = orjson.loads(value)
        out[key] = value
    return out


def sort_tables(tables: Tables) -> Tables:
    return {
        t: sorted((normalised(r) for r in tables.get(t, [])), key=lambda r: str(r["id"]))
        for t in ROW_TABLES
    }


def expected_tables(calls: Iterable[list[dict[str, Any]]], rates: RatePlan | None = None) -> Tables:
    """The rows the pure core gives for each call's full event set (list of event dicts), as
    FINAL reads them back (deleted items hidden)."""
    plan = rates or b.test_rates()
    out: Tables = defaultdict(list)
    for events in calls:
        rows = build_call_rows([b.valid(e) for e in events], plan)
        for table, table_rows in rows.tables().items():
            # What FINAL returns: a deleted item is hidden.
            out[table].extend(dict(row) for row in table_rows if not row.get("is_deleted"))
    return sort_tables(out)


def read_tables(store: ClickHouseStore) -> Tables:
    tables: Tables = {}
    for table in ROW_TABLES:
        columns, rows = store.query(f"SELECT * FROM {table} FINAL")
        tables[table] = [dict(zip(columns, row, strict=True)) for row in rows]
    return sort_tables(tables)


def by_call(events: Iterable[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for ev in events:
        grouped[(ev["project_id"], ev["call_id"])].append(ev)
    return list(grouped.values())
