"""Exact rows: what the pure core computes from the produced messages (`expected_rows`),
the rows read back with FINAL through a worker's /query, and the diff into lost / unexpected
/ doubled / wrong counts (`compare`, `verify`)."""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from devtools.fault_harness.setup import Setup
from devtools.fault_harness.worker_process import WorkerProcess
from schemas.tables import ROW_TABLES, TABLES_BY_NAME
from worker.core.correlation import build_call_rows
from worker.core.decode import ValidEvent, decode
from worker.core.rates import RatePlan, load_rate_plan

# Columns that depend on the wall clock or on how many times a row was rewritten.
NOT_COMPARED = ("ingested_at", "version")

# What `verify` returns when everything is right (the outage and scale-out tests:
# tests/faults/test_kafka_restart.py, test_clickhouse_down.py, test_scale_out.py).
ZERO_RESULT: dict[str, int] = {
    "lost": 0,
    "unexpected": 0,
    "doubled": 0,
    "wrong": 0,
    "call_event_lost": 0,
    "call_event_doubled": 0,
    "rejected_lost": 0,
}


def messages_of(generated: Sequence[Any]) -> list[tuple[bytes | None, bytes]]:
    return [(m.key, m.value) for m in generated]


def expected_rows(
    messages: Iterable[tuple[bytes | None, bytes]], rates: RatePlan
) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """Rows the pure core computes from the distinct valid events; (rows, events, rejects)."""
    calls: dict[tuple[str, str], list[ValidEvent]] = defaultdict(list)
    rejected = 0
    for key, value in messages:
        decoded = decode(key, value)
        if isinstance(decoded, ValidEvent):
            calls[(decoded.event.project_id, decoded.event.call_id)].append(decoded)
        else:
            rejected += 1
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    distinct = 0
    for events in calls.values():
        distinct += len({e.event.event_id for e in events})
        for table, rows in build_call_rows(events, rates).tables().items():
            # Read back with FINAL, a deleted item is hidden (ReplacingMergeTree's is_deleted).
            tables[table].extend(dict(row) for row in rows if not row.get("is_deleted"))
    return tables, distinct, rejected


def _norm(column: str, ch_type: str, value: Any) -> Any:
    if value is None:
        return None
    if "Decimal" in ch_type:
        return Decimal(str(value)).quantize(Decimal("0.0001"))
    if "DateTime64" in ch_type:
        if isinstance(value, str):  # /query returns ISO text
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    if column == "call_data" and isinstance(value, str):
        return orjson.loads(value)
    if ch_type == "Bool":
        return bool(value)
    return str(value) if "UUID" in ch_type else value


def _key(table: str, row: dict[str, Any]) -> str:
    return str(row["id"])


def compare(
    worker: WorkerProcess, expected: dict[str, list[dict[str, Any]]], out: Any = sys.stdout
) -> dict[str, dict[str, int]]:
    """Read every row table back with FINAL and diff it against the expected rows.

    Returns per table {"lost", "doubled", "wrong", "unexpected"} counts and prints each
    mismatch (row by row, column by column).
    """
    report: dict[str, dict[str, int]] = {}
    for table in ROW_TABLES:
        types = dict(TABLES_BY_NAME[table.name].columns)
        got_rows = worker.query(f"SELECT * FROM {table.name} FINAL")
        raw_count = worker.query(
            f"SELECT count() AS n, uniqExact(id) AS u FROM {table.name} FINAL"
        )[0]
        want = {_key(table.name, r): r for r in expected.get(table.name, [])}
        got = {_key(table.name, r): r for r in got_rows}
        counts = {
            "lost": len(set(want) - set(got)),
            "unexpected": len(set(got) - set(want)),
            "doubled": int(raw_count["n"]) - int(raw_count["u"]),
            "wrong": 0,
        }
        for key in sorted(set(want) - set(got)):
            print(f"LOST {table.name} {key}: {want[key]}", file=out)
        for key in sorted(set(got) - set(want)):
            print(f"UNEXPECTED {table.name} {key}: {got[key]}", file=out)
        for key in sorted(set(want) & set(got)):
            diffs = []
            for column, ch_type in types.items():
                if column in NOT_COMPARED:
                    continue
                a = _norm(column, ch_type, got[key].get(column))
                e = _norm(column, ch_type, want[key].get(column))
                if a != e:
                    diffs.append(f"{column}: got {a!r} want {e!r}")
            if diffs:
                counts["wrong"] += 1
                print(f"WRONG {table.name} {key}: " + "; ".join(diffs), file=out)
        report[table.name] = counts
    return report


def event_counts(worker: WorkerProcess) -> tuple[int, int, int]:
    """(distinct call_event rows, doubled call_event rows, rejected_event rows) with FINAL."""
    ev = worker.query(
        "SELECT count() AS n, uniqExact(project_id, call_id, event_id) AS u FROM call_event FINAL"
    )[0]
    rej = worker.query("SELECT count() AS n FROM rejected_event FINAL")[0]
    return int(ev["u"]), int(ev["n"]) - int(ev["u"]), int(rej["n"])


def totals(report: dict[str, dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for counts in report.values():
        for k, v in counts.items():
            out[k] += v
    return dict(out)


def verify(
    worker: WorkerProcess, messages: Sequence[tuple[bytes | None, bytes]], setup: Setup
) -> dict[str, int]:
    """Exact rows: `compare` totals plus call_event and rejected_event counts (ZERO_RESULT
    when everything is right)."""
    expected, distinct, rejected = expected_rows(messages, load_rate_plan(setup.rates_file))
    result = totals(compare(worker, expected, out=sys.stderr))
    events, doubled_events, rejects = event_counts(worker)
    result["call_event_lost"] = distinct - events
    result["call_event_doubled"] = doubled_events
    result["rejected_lost"] = rejected - rejects
    return result
