"""Every panel of the analysts' dashboard (deploy/grafana/ringlog-calls-dashboard.json) runs
against the embedded engine over generated traffic written by the worker's own planner and
store, and returns exactly what this test computes in Python from the same events (through
the pure core's rows), so a panel cannot silently break when a column changes."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from devtools.calls_dashboard import DASHBOARD, PANELS, render
from devtools.planner_load import Record, as_records, load
from devtools.traffic import generate_calls
from tests.support import builders as b
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.core.batch_plan import BatchPlanner
from worker.core.correlation import build_call_rows
from worker.core.decode import Rejection, ValidEvent, decode

TIME_FILTER = (
    "{col} BETWEEN toDateTime64('2000-01-01 00:00:00', 3, 'UTC') "
    "AND toDateTime64('2100-01-01 00:00:00', 3, 'UTC')"
)


def concrete(sql: str) -> str:
    """The data source's macros as the test's ClickHouse SQL."""
    out = sql
    while "$__timeFilter(" in out:
        head, _, rest = out.partition("$__timeFilter(")
        col, _, tail = rest.partition(")")
        out = head + TIME_FILTER.format(col=col) + tail
    while "$__timeInterval(" in out:
        head, _, rest = out.partition("$__timeInterval(")
        col, _, tail = rest.partition(")")
        out = head + f"toStartOfHour({col})" + tail
    return out


@pytest.fixture(scope="module")
def world(chdb_store_url: str) -> tuple[ClickHouseStore, list[Record]]:
    messages = as_records(
        generate_calls(400, seed=9, oversized=0, open_share=0.0, invalid_share=0.03)
    )
    store = ClickHouseStore(chdb_store_url, f"dash_{uuid.uuid4().hex[:8]}")
    store.migrate()
    planner = BatchPlanner(b.test_rates(), timedelta(hours=4), 100_000)
    load(store, planner, messages, batch=1000)
    return store, messages


def core_rows(messages: list[Record]) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """The pure core's rows per table for the valid events, and each call's producer."""
    by_call: dict[tuple[str, str], list[ValidEvent]] = defaultdict(list)
    sources: dict[str, str] = {}
    for m in messages:
        decoded = decode(m.key, m.value or b"")
        if isinstance(decoded, ValidEvent):
            e = decoded.event
            by_call[(e.project_id, e.call_id)].append(decoded)
            if e.type == "incoming_call.received" and e.source:
                sources[f"{e.project_id}|{e.call_id}"] = e.source
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for events in by_call.values():
        for table, rows in build_call_rows(events, b.test_rates()).tables().items():
            tables[str(table)].extend(dict(r) for r in rows)
    return tables, sources


def run(store: ClickHouseStore, title: str) -> list[tuple[Any, ...]]:
    sql = next(s for t, _, s in PANELS if t == title)
    return [tuple(r) for r in store.query(concrete(sql))[1]]


def rate(answered: int, calls: int) -> float:
    return round(answered / calls, 3)


def close(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> None:
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        for a, e in zip(g, w, strict=True):
            if isinstance(e, float):
                assert abs(float(a) - e) < 0.0006, (g, w)
            else:
                assert a == e, (g, w)


def test_the_committed_dashboard_is_the_generated_one() -> None:
    assert DASHBOARD.read_text() == render(), "run python -m devtools.calls_dashboard"
    panels = json.loads(DASHBOARD.read_text())["panels"]
    assert [p["title"] for p in panels] == [t for t, _, _ in PANELS]


def test_every_panel_returns_what_the_events_say(
    world: tuple[ClickHouseStore, list[Record]],
) -> None:
    store, messages = world
    tables, sources = core_rows(messages)
    calls = [r for r in tables["incoming_call_log"] if r["started_at"] is not None]
    assert len(calls) > 100

    hours: dict[datetime, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        hours[c["started_at"].replace(minute=0, second=0, microsecond=0)].append(c)
    close(
        [
            (t.replace(tzinfo=UTC) if t.tzinfo is None else t, n, r)
            for t, n, r in run(store, "Incoming calls and answer rate")
        ],
        [
            (t, len(cs), rate(sum(c["answered_by_user_id"] is not None for c in cs), len(cs)))
            for t, cs in sorted(hours.items())
        ],
    )

    waits = sorted(
        int((c["answered_at"] - c["started_at"]) / timedelta(milliseconds=1))
        for c in calls
        if c["answered_at"] is not None
    )
    close(
        run(store, "Time to answer (seconds)"),
        [
            (
                round(waits[int(0.5 * len(waits))] / 1000, 1),
                round(waits[int(0.9 * len(waits))] / 1000, 1),
            )
        ],
    )

    depth = Counter(c["dial_attempts"] for c in calls)
    assert run(store, "Escalation depth (dial attempts per call)") == [
        (str(k), v) for k, v in sorted(depth.items())
    ]

    numbers = Counter(c["routing_phone_number"] for c in calls)
    unanswered = Counter(
        c["routing_phone_number"] for c in calls if c["answered_by_user_id"] is None
    )
    top = sorted(numbers, key=lambda n: (-numbers[n], n))[:10]
    assert run(store, "Busiest numbers") == [(n, numbers[n], unanswered[n]) for n in top]

    policies: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        policies[str(c["incoming_call_policy_id"])].append(c)
    top_policies = sorted(policies, key=lambda p: (-len(policies[p]), p))[:10]
    close(
        run(store, "Busiest policies"),
        [
            (
                p,
                len(policies[p]),
                rate(
                    sum(c["answered_by_user_id"] is not None for c in policies[p]), len(policies[p])
                ),
            )
            for p in top_policies
        ],
    )

    def total(rows: list[dict[str, Any]], column: str) -> Decimal:
        return sum((r[column] for r in rows if r[column] is not None), Decimal(0))

    outbound = [r for r in tables["call_log"] if r["started_at"] is not None]
    cdrs = [r for r in tables["cdr"] if r["started_at"] is not None]
    assert run(store, "Cost by direction (US cents)") == [
        ("incoming legs", total(calls, "incoming_call_cost_in_usd_cents")),
        ("forwarded to users", total(calls, "outgoing_call_cost_in_usd_cents")),
        ("outbound calls", total(outbound, "call_cost_in_usd_cents")),
        ("PBX CDRs", total(cdrs, "cost")),
    ]

    prefixes: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        prefixes[(c["routing_phone_number"] or "")[:3]].append(c)
    cents = {p: total(cs, "call_cost_in_usd_cents") for p, cs in prefixes.items()}
    top_prefixes = sorted(prefixes, key=lambda p: (-cents[p], p))[:20]
    assert run(store, "Cost by called prefix (US cents)") == [
        (p, len(prefixes[p]), cents[p]) for p in top_prefixes
    ]

    providers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in calls:
        providers[sources.get(f"{c['project_id']}|{c['call_provider_call_id']}", "(none)")].append(
            c
        )
    provider_cents = {p: total(cs, "call_cost_in_usd_cents") for p, cs in providers.items()}
    assert run(store, "Cost by provider (US cents)") == [
        (p, len(providers[p]), provider_cents[p])
        for p in sorted(providers, key=lambda p: (-provider_cents[p], p))
    ]

    rejected: Counter[tuple[str, str]] = Counter()
    for m in messages:
        decoded = decode(m.key, m.value or b"")
        if isinstance(decoded, Rejection):
            rejected[(decoded.code, decoded.field or "")] += 1
    assert sum(rejected.values()) > 5
    assert run(store, "Dead letters by reason") == [
        (code, field, n)
        for (code, field), n in sorted(rejected.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
