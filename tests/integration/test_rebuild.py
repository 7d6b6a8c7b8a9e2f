"""`ringlog rebuild`: rows recomputed from call_event with another rate plan, no Kafka."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import builders as b
from tests.support.call_rows import ROW_TABLES, Tables, by_call, expected_tables, read_tables
from tests.support.in_process_worker import fresh_settings, produce, running_worker
from tests.unit.core.test_correlation import SCENARIOS
from worker.adapters.clickhouse.rebuild import rebuild
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.core.rates import load_rate_plan
from worker.service.settings import Settings

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
OTHER_PROJECT = "7a8f4f3e-58a6-4a43-9f4e-2b0f6c0c9d01"
COST_COLUMNS = {
    "call_cost_in_usd_cents",
    "incoming_call_cost_in_usd_cents",
    "outgoing_call_cost_in_usd_cents",
    "cost",
}
NEW_PLAN = """\
- {direction: outbound, prefix: "", connect_fee_cents: 1, rate_cents_per_minute: 2.5,
   initial_increment_seconds: 30, subsequent_increment_seconds: 6}
- {direction: outbound, prefix: "49", connect_fee_cents: 0, rate_cents_per_minute: 0.4,
   initial_increment_seconds: 1, subsequent_increment_seconds: 1}
- {direction: inbound, prefix: "", connect_fee_cents: 0.25, rate_cents_per_minute: 1.1,
   initial_increment_seconds: 1, subsequent_increment_seconds: 1}
"""


@pytest.fixture
def new_plan(tmp_path: Path) -> Path:
    path = tmp_path / "new-rates.yaml"
    path.write_text(NEW_PLAN)
    return path


def ingest(settings: Settings, events: list[dict[str, Any]]) -> None:
    async def go() -> None:
        async with running_worker(settings) as run:
            await produce(settings, [b.encode(e) for e in events])
            await run.drained()

    asyncio.run(go())


def store_of(settings: Settings) -> ClickHouseStore:
    return ClickHouseStore(settings.clickhouse_url, settings.database)


def test_rebuild_with_a_new_plan_equals_a_fresh_ingestion_with_it(
    kafka_bootstrap: str, chdb_store_url: str, new_plan: Path
) -> None:
    events = [e for make in SCENARIOS.values() for e in make()]
    old = fresh_settings(kafka_bootstrap, chdb_store_url)
    ingest(old, events)
    with store_of(old) as store:
        before = read_tables(store)
        progress: list[tuple[int, int]] = []
        stats = rebuild(
            store,
            load_rate_plan(new_plan),
            chunk=2,  # several pages of keys
            progress=lambda done, total: progress.append((done, total)),
        )
        after = read_tables(store)

    fresh = fresh_settings(kafka_bootstrap, chdb_store_url, rates_file=new_plan)
    ingest(fresh, events)
    with store_of(fresh) as store:
        want = read_tables(store)

    calls = len(SCENARIOS)
    assert stats.calls == calls
    assert stats.events == len(events)
    assert progress[0] == (0, calls) and progress[-1] == (calls, calls)
    for table in ROW_TABLES:
        assert after[table] == want[table], table  # every column but ingested_at, version too
    # only costs moved, and some of them really did
    changed = 0
    for table in ROW_TABLES:
        assert len(before[table]) == len(after[table])
        for old_row, new_row in zip(before[table], after[table], strict=True):
            diff = {k for k in old_row if old_row[k] != new_row[k]}
            assert diff <= COST_COLUMNS, (table, diff)
            changed += bool(diff)
    assert changed >= 5
    assert after == expected_tables(by_call(events), load_rate_plan(new_plan))


def answered(call: str, t0: float, project: str = b.PROJECT) -> list[dict[str, Any]]:
    dial = f"{call}-1"
    kw = {"project_id": project}
    return [
        b.received(call, t0, **kw),
        b.dial_started(call, dial, t0 + 1, escalation_rule_order=1, repeat_count=0, **kw),
        b.dial("answered", call, dial, t0 + 3, **kw),
        b.dial("ended", call, dial, t0 + 64, outcome="completed", **kw),
        b.ended(call, t0 + 65, "completed", **kw),
    ]


def test_project_and_since_select_the_right_calls(
    kafka_bootstrap: str, chdb_store_url: str, new_plan: Path
) -> None:
    since = b.T0 + timedelta(hours=1)
    early = answered("rb-early", 0)
    late = answered("rb-late", 3700)
    # all its events but one are before `since`: selected, and rebuilt from ALL its events
    straddling = [*answered("rb-straddle", 10), b.cost("rb-straddle", "rb-straddle-1", 3650, "7")]
    other_project = answered("rb-other", 3800, project=OTHER_PROJECT)
    calls = [early, late, straddling, other_project]
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    ingest(settings, [e for call in calls for e in call])
    new_rates = load_rate_plan(new_plan)

    with store_of(settings) as store:
        before = read_tables(store)
        stats = rebuild(
            store, new_rates, project=b.PROJECT, since=since, chunk=1, collect_keys=True
        )
        after = read_tables(store)
        assert sorted(stats.keys) == sorted([(b.PROJECT, "rb-late"), (b.PROJECT, "rb-straddle")])
        assert stats.calls == 2 and stats.events == len(late) + len(straddling)
        # the selected calls have the new plan's rows, the others are untouched
        want = _merge(expected_tables([late, straddling], new_rates), expected_tables([early]))
        want = _merge(want, expected_tables([other_project]))
        assert after == want
        assert after != before

        # each filter alone; naive `since` is UTC
        only_since = rebuild(store, new_rates, since=since.replace(tzinfo=None), collect_keys=True)
        assert sorted(c for _, c in only_since.keys) == ["rb-late", "rb-other", "rb-straddle"]
        only_project = rebuild(store, new_rates, project=OTHER_PROJECT, collect_keys=True)
        assert only_project.keys == [(OTHER_PROJECT, "rb-other")]
        nothing = rebuild(store, new_rates, since=b.T0 + timedelta(days=1), collect_keys=True)
        assert nothing.calls == 0 and nothing.keys == []
        everything = rebuild(store, new_rates, chunk=3, collect_keys=True)
        assert everything.calls == 4
        assert read_tables(store) == expected_tables(calls, new_rates)


def _merge(a: Tables, c: Tables) -> Tables:
    return {t: sorted(a[t] + c[t], key=lambda r: str(r["id"])) for t in ROW_TABLES}


def test_cli_refuses_an_embedded_store_owned_by_a_worker(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    """chDB allows one process per data directory: while this process (a running worker)
    holds it, `ringlog rebuild` says to stop the worker or use a server."""
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)

    async def go() -> subprocess.CompletedProcess[str]:
        async with running_worker(settings):
            return await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "worker.cli", "rebuild"],
                cwd=ROOT,
                env={
                    **os.environ,
                    "RINGLOG_CLICKHOUSE_URL": chdb_store_url,
                    "RINGLOG_DATABASE": settings.database,
                    "COLUMNS": "300",
                },
                capture_output=True,
                text=True,
                timeout=120,
            )

    done = asyncio.run(go())
    message = re.sub(r"\s+", " ", done.stderr)
    assert done.returncode == 1, done
    assert "rebuild failed" in message
    assert "locked by another process" in message
    assert "stop the worker first" in message
    assert "python -m devtools store serve" in message
