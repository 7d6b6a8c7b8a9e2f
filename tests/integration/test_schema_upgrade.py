"""Schema 1 -> 2 in place on chDB (worker.adapters.clickhouse.upgrade): every row kept as it
was, is_deleted = 0, idempotent, and resumed after a crash between any two steps."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from schemas.tables import INCOMING_CALL_LOG_ITEM, ROW_TABLES
from tests.support import builders as b
from tests.support.schema_v1 import create_v1_store, insert_v1, live_table
from worker.adapters.clickhouse.store import ClickHouseStore, StoreError
from worker.adapters.clickhouse.upgrade import (
    TEMP_ITEM_TABLE,
    copy_to_temp,
    drop_temp,
    swap_temp_in,
)
from worker.core.correlation import build_call_rows

ITEM = INCOMING_CALL_LOG_ITEM.name
CALLS = (b.answered_on_second_attempt, b.nobody_answers, b.caller_hangs_up, b.late_cost_report)


@pytest.fixture
def v1_store(chdb_store_url: str) -> Iterator[ClickHouseStore]:
    """A schema-1 store holding rows of four calls, each written twice (first from part of
    its events, then from all of them), as a schema-1 worker leaves it."""
    store = ClickHouseStore(chdb_store_url, f"up_{uuid.uuid4().hex[:12]}")
    create_v1_store(store)
    for table in ROW_TABLES:
        # A background merge would collapse stored versions between two snapshots; the copy
        # is one part, which nothing merges.
        store.command(f"SYSTEM STOP MERGES `{store.database}`.`{table.name}`")
    tables = {t.name: live_table(store, t.name, t.order_by) for t in ROW_TABLES}
    for make in CALLS:
        events = [b.valid(e) for e in make()]
        for known in (events[: len(events) // 2], events):
            rows = build_call_rows(known, b.test_rates())
            for name, table_rows in rows.tables().items():
                stamped = [dict(r, ingested_at=b.T0) for r in table_rows]
                if stamped:
                    insert_v1(store, tables[name], stamped)
    yield store
    store.command(f"DROP DATABASE IF EXISTS `{store.database}` SYNC")
    store.close()


def snapshot(store: ClickHouseStore) -> dict[str, list[dict[str, Any]]]:
    """Every stored row of every row table (no FINAL: each version as stored), plus the rows
    FINAL returns, in a stable order."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table in ROW_TABLES:
        for final in ("", " FINAL"):
            columns, rows = store.query(
                f"SELECT * FROM `{store.database}`.`{table.name}`{final} "
                "ORDER BY id, version, ingested_at"
            )
            out[table.name + final] = [dict(zip(columns, r, strict=True)) for r in rows]
    return out


def without_is_deleted(snap: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    for name in (ITEM, ITEM + " FINAL"):
        assert {row.pop("is_deleted") for row in snap[name]} == {0}, name
    return snap


def table_identity(store: ClickHouseStore) -> list[tuple[object, ...]]:
    _, rows = store.query(
        "SELECT name, uuid, engine_full, metadata_modification_time FROM system.tables "
        "WHERE database = %(db)s ORDER BY name",
        {"db": store.database},
    )
    return rows


def versions(store: ClickHouseStore) -> list[object]:
    _, rows = store.query(
        f"SELECT version FROM `{store.database}`.schema_migrations ORDER BY version"
    )
    return [r[0] for r in rows]


def raw_client(store: ClickHouseStore) -> Any:
    store.connect()
    return store._client  # the steps take the driver's client


def check_upgraded(store: ClickHouseStore, before: dict[str, list[dict[str, Any]]]) -> None:
    assert without_is_deleted(snapshot(store)) == before
    assert store.pending_upgrade() is None
    assert versions(store) == [1, 2]
    _, engines = store.query(
        "SELECT name, engine_full FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": store.database, "t": ITEM},
    )
    assert str(engines[0][1]).startswith("ReplacingMergeTree(version, is_deleted) ORDER BY")
    _, temp = store.query(
        "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
        {"db": store.database, "t": TEMP_ITEM_TABLE},
    )
    assert temp == [(0,)]
    # The view shows the schema-2 columns and the FINAL rows.
    columns, latest = store.query(
        f"SELECT * FROM `{store.database}`.`{ITEM}_latest` ORDER BY id, version"
    )
    assert columns == list(INCOMING_CALL_LOG_ITEM.column_names)
    assert [dict(zip(columns, r, strict=True)) for r in latest] == [
        dict(r, is_deleted=0) for r in before[ITEM + " FINAL"]
    ]


def test_upgrade_keeps_every_row_and_a_second_run_does_nothing(
    v1_store: ClickHouseStore,
) -> None:
    before = snapshot(v1_store)
    assert len(before[ITEM]) > len(before[ITEM + " FINAL"]) > 0  # older versions stored too
    with pytest.raises(StoreError, match="stop every worker and run `ringlog migrate`"):
        v1_store.migrate()  # what a worker does at start: it never upgrades
    assert v1_store.migrate(upgrade=True) == 2
    check_upgraded(v1_store, before)

    identity = table_identity(v1_store)
    assert v1_store.migrate(upgrade=True) == 2  # nothing to do: nothing touched
    assert table_identity(v1_store) == identity
    assert versions(v1_store) == [1, 2]
    check_upgraded(v1_store, before)


def test_upgraded_store_takes_deletions_and_hides_them(v1_store: ClickHouseStore) -> None:
    v1_store.migrate(upgrade=True)
    events = [*b.answered_on_second_attempt(), b.deleted("call-2nd", "call-2nd-1", 500)]
    rows = build_call_rows([b.valid(e) for e in events], b.test_rates())
    v1_store.insert(ITEM, [dict(r, ingested_at=b.T0) for r in rows.incoming_call_log_item])
    _, dials = v1_store.query(
        f"SELECT dial_id FROM `{v1_store.database}`.`{ITEM}` FINAL "
        "WHERE incoming_call_log_id = %(p)s ORDER BY dial_id",
        {"p": rows.incoming_call_log[0]["id"]},
    )
    assert dials == [("call-2nd-2",)]


def _crash_mid_copy(client: Any, database: str) -> None:
    copy_to_temp(client, database)
    client.command(f"ALTER TABLE `{database}`.`{TEMP_ITEM_TABLE}` DELETE WHERE dial_id LIKE '%-1'")


def _crash_after_copy(client: Any, database: str) -> None:
    copy_to_temp(client, database)


def _crash_after_exchange(client: Any, database: str) -> None:
    copy_to_temp(client, database)
    swap_temp_in(client, database)


def _crash_after_drop(client: Any, database: str) -> None:
    copy_to_temp(client, database)
    swap_temp_in(client, database)
    drop_temp(client, database)


@pytest.mark.parametrize(
    "crash",
    [_crash_mid_copy, _crash_after_copy, _crash_after_exchange, _crash_after_drop],
    ids=["mid-copy", "after-copy", "after-exchange", "after-drop"],
)
def test_upgrade_resumes_after_a_crash_between_steps(
    v1_store: ClickHouseStore, crash: Callable[[Any, str], None]
) -> None:
    before = snapshot(v1_store)
    crash(raw_client(v1_store), v1_store.database)
    pending = v1_store.pending_upgrade()
    assert pending is not None
    with pytest.raises(StoreError, match="needs an upgrade"):
        v1_store.migrate()
    assert v1_store.migrate(upgrade=True) == 2
    check_upgraded(v1_store, before)
