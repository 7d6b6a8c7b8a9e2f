"""Cluster mode's DDL (schemas/cluster_ddl.py), as far as one machine allows: every statement
parses in the ClickHouse engine, the sharding keys are those docs/clickhouse-cluster.md
names, and on ingested rows every version of a row and every item of a call hash to the same
shard (what FINAL on a Distributed table needs)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from schemas.cluster_ddl import SHARD_KEYS, cluster_ddl_statements, sharding_key
from schemas.tables import ALL_TABLES, ROW_TABLES, TABLES_BY_NAME
from tests.support import builders as b
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.core.correlation import build_call_rows

DOC = Path(__file__).resolve().parents[2] / "docs" / "clickhouse-cluster.md"


@pytest.fixture()
def store(chdb_store_url: str) -> ClickHouseStore:
    store = ClickHouseStore(chdb_store_url, f"cluster_{uuid.uuid4().hex[:8]}")
    store.migrate()
    return store


def test_every_statement_parses(store: ClickHouseStore) -> None:
    statements = cluster_ddl_statements("ringlog", "ringlog_cluster")
    assert len(statements) == 1 + 3 * len(ALL_TABLES) + 2
    for sql in statements:
        _, rows = store.query("SELECT formatQuerySingleLine(%(q)s)", {"q": sql})
        normalised = str(rows[0][0])
        assert "ON CLUSTER ringlog_cluster" in normalised, normalised
    engines = [s for s in statements if "ReplicatedReplacingMergeTree" in s]
    item = next(s for s in engines if "incoming_call_log_item_local" in s)
    assert "'{replica}', `version`, `is_deleted`)" in item


def test_the_sharding_keys_are_the_documented_ones() -> None:
    assert set(SHARD_KEYS) == {t.name for t in ALL_TABLES}
    rows = re.findall(r"^\| `(\w+)` \| (.+) \|$", DOC.read_text(), re.M)
    documented = {table: tuple(re.findall(r"`(\w+)`", keys)) for table, keys in rows}
    assert {t: documented[t] for t in SHARD_KEYS} == SHARD_KEYS
    for table in ALL_TABLES:
        assert set(SHARD_KEYS[table.name]) <= set(table.column_names)


def stamped(table: str, row: dict[str, Any]) -> dict[str, Any]:
    """The wall-clock columns the pipeline sets when it writes a row."""
    now = datetime.now(UTC)
    for column in ("created_at", "updated_at", "ingested_at"):
        if column in TABLES_BY_NAME[table].column_names and row.get(column) is None:
            row[column] = now
    return row


def test_every_version_of_a_row_and_every_item_of_a_call_share_a_shard(
    store: ClickHouseStore,
) -> None:
    calls = [b.answered_on_second_attempt(f"call-{n}") for n in range(12)]
    calls += [b.nobody_answers(f"none-{n}") for n in range(12)]
    calls += [b.outbound_call(f"CA-out-{n}") for n in range(6)]
    calls += [b.cdr_record(f"pbx-{n}") for n in range(6)]
    for events in calls:
        # an early version (half the events) and the final one, both stored
        for known in (events[: max(1, len(events) // 2)], events):
            rows = build_call_rows([b.valid(e) for e in known], b.test_rates())
            for table, table_rows in rows.tables().items():
                store.insert(str(table), [stamped(str(table), dict(r)) for r in table_rows])
    for row_table in ROW_TABLES:
        key = ", ".join(f"`{c}`" for c in row_table.order_by)
        _, spread = store.query(
            f"SELECT max(n) FROM (SELECT uniqExact({sharding_key(row_table)}) AS n "
            f"FROM {store.database}.{row_table.name} GROUP BY {key})"
        )
        assert spread == [(1,)], row_table.name
    for shards in range(2, 9):
        _, apart = store.query(
            f"SELECT count() FROM {store.database}.incoming_call_log_item AS i "
            f"JOIN {store.database}.incoming_call_log AS p ON i.incoming_call_log_id = p.id "
            f"WHERE cityHash64(i.project_id, i.incoming_call_log_id) % {shards} "
            f"!= cityHash64(p.project_id, p.id) % {shards}"
        )
        assert apart == [(0,)], shards
    _, items = store.query(f"SELECT count() FROM {store.database}.incoming_call_log_item")
    assert int(str(items[0][0])) > 24  # the join above had rows to compare
