"""ClickHouseStore against embedded chDB: DDL, migrations, inserts, FINAL, dedup, lookups.

chDB allows one data path per process, so every test shares the session's path
(`chdb_store_url` in conftest.py) and isolates itself with its own database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from devtools.traffic import generate_events
from schemas.ddl import ddl_statements, render_sql
from schemas.tables import (
    ALL_TABLES,
    CALL_EVENT,
    INCOMING_CALL_LOG,
    SCHEMA_VERSION,
    TABLES_BY_NAME,
)
from tests.support.fakes import FakeRecord
from worker.adapters.clickhouse.store import (
    ClickHouseStore,
    StoreError,
    StoreUnavailable,
    redact_url,
)
from worker.core.batch_plan import BatchPlanner
from worker.core.call_event_rows import CallEventRows
from worker.core.decode import ValidEvent, decode_record
from worker.core.native_fast_path import VALIDATOR as NATIVE
from worker.core.rates import load_rate_plan

UTC = dt.UTC
PROJECT = "6f1c2a4e-0d43-4b0a-9a57-2f3f0d7f1a01"
OTHER_PROJECT = "0b7d9f5e-4c1a-4e7e-8a8e-5d2b1c3a4f02"


@pytest.fixture
def store(chdb_store_url: str) -> Iterator[ClickHouseStore]:
    database = f"t_{uuid.uuid4().hex[:12]}"
    s = ClickHouseStore(chdb_store_url, database)
    s.migrate()
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{database}`")
    s.close()


def _call_log_row(call_id: str, version: int, **values: object) -> dict[str, object]:
    t0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
    row: dict[str, object] = {
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, call_id)),
        "project_id": PROJECT,
        "call_provider_call_id": call_id,
        "status": "Ringing",
        "dial_attempts": 1,
        "created_at": t0,
        "updated_at": t0,
        "ingested_at": t0,
        "version": version,
    }
    row.update(values)
    return row


def _event_row(project_id: str, call_id: str, event_id: str, offset: int) -> dict[str, object]:
    return {
        "project_id": project_id,
        "call_id": call_id,
        "event_id": event_id,
        "type": "incoming_call.received",
        "occurred_at": dt.datetime(2024, 5, 1, 12, 0, 0, offset % 1000 * 1000, tzinfo=UTC),
        "sequence": None,
        "source": "test",
        "payload": f'{{"event_id": "{event_id}", "call_id": "{call_id}"}}',
        "topic": "telephony.call-events",
        "partition": offset % 4,
        "offset": offset,
        "ingested_at": dt.datetime(2024, 5, 1, 12, 0, 1, tzinfo=UTC),
        "version": 1,
    }


# ---- DDL -----------------------------------------------------------------------------------


def test_ddl_statements_shape() -> None:
    statements = ddl_statements("ringlog")
    assert statements[0] == "CREATE DATABASE IF NOT EXISTS `ringlog`"
    assert len(statements) == 1 + 2 * len(ALL_TABLES) + 1
    for table in ALL_TABLES:
        create = next(
            s for s in statements if f"TABLE IF NOT EXISTS `ringlog`.`{table.name}`\n" in s
        )
        # Only item rows can be deleted (DESIGN.md section 3, "Amendments").
        engine = (
            "ReplacingMergeTree(`version`, `is_deleted`)"
            if table.name == "incoming_call_log_item"
            else "ReplacingMergeTree(`version`)"
        )
        assert f"ENGINE = {engine}\n" in create
        assert "PARTITION BY" not in create
        assert "SETTINGS non_replicated_deduplication_window = 1000" in create
        assert f"ORDER BY ({', '.join(f'`{c}`' for c in table.order_by)})" in create
    assert "`partition` Int32" in render_sql()
    with pytest.raises(ValueError):
        ddl_statements("bad-name; DROP")


def test_committed_sql_is_current() -> None:
    committed = Path(__file__).resolve().parents[2] / "schemas" / "clickhouse.sql"
    assert committed.read_text(encoding="utf-8") == render_sql("ringlog")


# ---- migrate ---------------------------------------------------------------------------------


def test_migrate_twice_is_idempotent(store: ClickHouseStore) -> None:
    assert store.migrate() == SCHEMA_VERSION
    assert store.migrate() == SCHEMA_VERSION
    _, rows = store.query(f"SELECT version, description FROM {store.database}.schema_migrations")
    assert rows == [(SCHEMA_VERSION, f"ringlog schema {SCHEMA_VERSION}")]


def _in_a_fresh_process(script: str) -> str:
    """What `script` prints, run by a new interpreter that imports this checkout."""
    root = Path(__file__).resolve().parents[2]
    prelude = f"import sys\nsys.path.insert(0, {str(root)!r})\n"
    done = subprocess.run(
        [sys.executable, "-c", prelude + script],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def test_migrate_records_the_version_without_importing_pandas(tmp_path: Path) -> None:
    """A fresh process (the worker's start): the version row is recorded with its time, and
    nothing imports pandas (clickhouse-connect's `insert` of Python rows did, 0.4-0.6 s)."""
    printed = _in_a_fresh_process(
        "import datetime as dt\n"
        "from worker.adapters.clickhouse.store import ClickHouseStore\n"
        f"s = ClickHouseStore('chdb://{tmp_path}', 'ringlog')\n"
        "before = dt.datetime.now(dt.UTC)\n"
        "s.migrate()\n"
        "_, rows = s.query('SELECT version, applied_at, description FROM schema_migrations')\n"
        "(version, applied_at, description), = rows\n"
        "assert before - dt.timedelta(seconds=1) <= applied_at <= dt.datetime.now(dt.UTC)\n"
        "print(version, description, 'pandas' in sys.modules)\n"
    )
    assert printed == f"{SCHEMA_VERSION} ringlog schema {SCHEMA_VERSION} False\n"


def test_tables_and_views_have_exactly_the_declared_columns(store: ClickHouseStore) -> None:
    _, rows = store.query(
        "SELECT table, name, type FROM system.columns WHERE database = %(db)s "
        "ORDER BY table, position",
        {"db": store.database},
    )
    live: dict[str, list[tuple[str, str]]] = {}
    for table, name, ch_type in rows:
        assert isinstance(table, str) and isinstance(name, str) and isinstance(ch_type, str)
        live.setdefault(table, []).append((name, ch_type))
    expected = {t.name: list(t.columns) for t in ALL_TABLES}
    expected |= {f"{t.name}_latest": list(t.columns) for t in ALL_TABLES}
    expected["schema_migrations"] = [
        ("version", "UInt32"),
        ("applied_at", "DateTime64(3, 'UTC')"),
        ("description", "String"),
    ]
    assert live == expected
    _, engines = store.query(
        "SELECT name, engine FROM system.tables WHERE database = %(db)s ORDER BY name",
        {"db": store.database},
    )
    engine_of = {str(name): str(engine) for name, engine in engines}
    for t in ALL_TABLES:
        assert engine_of[t.name] == "ReplacingMergeTree"
        assert engine_of[f"{t.name}_latest"] == "View"


def test_migrate_detects_schema_drift(store: ClickHouseStore) -> None:
    store.command(f"ALTER TABLE {store.database}.cdr ADD COLUMN surprise String")
    with pytest.raises(StoreError, match="schema drift"):
        store.migrate()


# ---- insert, FINAL, dedup -------------------------------------------------------------------


def test_final_keeps_highest_version_even_if_inserted_first(store: ClickHouseStore) -> None:
    store.insert("incoming_call_log", [_call_log_row("CA1", 3, status="Completed")])
    store.insert("incoming_call_log", [_call_log_row("CA1", 2, status="Ringing")])
    store.insert("incoming_call_log", [_call_log_row("CA2", 1, status="Ringing")])
    db = store.database
    _, raw = store.query(f"SELECT count() FROM {db}.incoming_call_log")
    assert raw == [(3,)]
    sql = "SELECT call_provider_call_id, status, version FROM {} ORDER BY 1"
    _, final = store.query(sql.format(f"{db}.incoming_call_log FINAL"))
    assert final == [("CA1", "Completed", 3), ("CA2", "Ringing", 1)]
    _, latest = store.query(sql.format(f"{db}.incoming_call_log_latest"))
    assert latest == final


def test_dedup_token_drops_a_retried_batch(store: ClickHouseStore) -> None:
    rows = [_event_row(PROJECT, "CA1", f"e{i}", i) for i in range(10)]
    store.insert("call_event", rows, dedup_token="telephony.call-events:0:0-9")
    store.insert("call_event", rows, dedup_token="telephony.call-events:0:0-9")
    # Same token, different content: still a retry as far as ClickHouse is concerned.
    store.insert("call_event", rows[:3], dedup_token="telephony.call-events:0:0-9")
    _, count = store.query(f"SELECT count() FROM {store.database}.call_event")
    assert count == [(10,)]
    store.insert("call_event", rows[:3], dedup_token="telephony.call-events:0:10-12")
    _, count = store.query(f"SELECT count() FROM {store.database}.call_event")
    assert count == [(13,)]


def test_round_trip_of_types(store: ClickHouseStore) -> None:
    plus2 = dt.timezone(dt.timedelta(hours=2))
    answered = dt.datetime(2024, 5, 1, 14, 0, 5, 987654, tzinfo=plus2)  # 12:00:05.987 UTC
    user = uuid.UUID("11111111-2222-3333-4444-555555555555")
    row = _call_log_row(
        "CA9",
        7,
        incoming_call_policy_id="aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
        answered_by_user_id=user,
        call_cost_in_usd_cents=Decimal("12345678901234.5678"),
        incoming_call_cost_in_usd_cents=Decimal("1.13755"),  # rounds half-up, not truncated
        outgoing_call_cost_in_usd_cents=Decimal("0.0001"),
        answered_at=answered,
        ended_at=dt.datetime(2024, 5, 1, 12, 1, 0, 1000),  # naive = UTC
        call_duration_in_seconds=None,
        status_message="caller said \"hi\" \\ 'bye' ☎",
    )
    store.insert("incoming_call_log", [row])
    names, rows = store.query(
        "SELECT incoming_call_policy_id, answered_by_user_id, call_cost_in_usd_cents, "
        "incoming_call_cost_in_usd_cents, outgoing_call_cost_in_usd_cents, answered_at, "
        "ended_at, started_at, call_duration_in_seconds, caller_phone_number, status_message, "
        "toString(answered_at), current_escalation_rule_order "
        f"FROM {store.database}.incoming_call_log FINAL"
    )
    assert names[0] == "incoming_call_policy_id"
    assert rows == [
        (
            uuid.UUID("aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"),
            user,
            Decimal("12345678901234.5678"),
            Decimal("1.1376"),
            Decimal("0.0001"),
            dt.datetime(2024, 5, 1, 12, 0, 5, 987000, tzinfo=UTC),
            dt.datetime(2024, 5, 1, 12, 1, 0, 1000, tzinfo=UTC),
            None,
            None,
            None,
            "caller said \"hi\" \\ 'bye' ☎",
            "2024-05-01 12:00:05.987",
            None,
        )
    ]
    # The Decimal comes back with exactly 4 fractional digits.
    cost = rows[0][3]
    assert isinstance(cost, Decimal) and cost.as_tuple().exponent == -4


def test_insert_rejects_unknown_table_and_column(store: ClickHouseStore) -> None:
    with pytest.raises(StoreError, match="unknown table"):
        store.insert("nope", [{"a": 1}])
    with pytest.raises(StoreError, match="unknown column"):
        store.insert("incoming_call_log", [_call_log_row("CA1", 1, colour="red")])
    with pytest.raises(StoreError, match="call_cost_in_usd_cents"):
        store.insert("incoming_call_log", [_call_log_row("CA1", 1, call_cost_in_usd_cents="x")])
    store.insert("incoming_call_log", [])  # no-op


def test_bad_sql_is_a_store_error_not_unavailable(store: ClickHouseStore) -> None:
    with pytest.raises(StoreError):
        store.query("SELEKT 1")
    with pytest.raises(StoreError):
        store.query(f"SELECT * FROM {store.database}.no_such_table")


def test_unqualified_names_resolve_in_the_store_database(store: ClickHouseStore) -> None:
    _, rows = store.query("SELECT currentDatabase(), count() FROM schema_migrations")
    assert rows == [(store.database, 1)]


# ---- load_call_events -----------------------------------------------------------------------


def test_load_call_events_returns_exactly_the_requested_keys(store: ClickHouseStore) -> None:
    rows = [
        _event_row(PROJECT, "CA1", "e1", 10),
        _event_row(PROJECT, "CA1", "e2", 11),
        _event_row(PROJECT, "CA2", "e1", 12),
        _event_row(OTHER_PROJECT, "CA1", "e1", 13),  # same call_id, other project
        _event_row(PROJECT, "CA3", "e1", 14),
    ]
    store.insert("call_event", rows)
    # A second copy of an event (replay) is collapsed by FINAL.
    store.insert("call_event", [_event_row(PROJECT, "CA1", "e2", 11)])
    got = store.load_call_events([(PROJECT, "CA1"), (OTHER_PROJECT, "CA1"), (PROJECT, "CA9")])
    payload = '{{"event_id": "{}", "call_id": "{}"}}'
    assert sorted(set(got)) == [
        (OTHER_PROJECT, "CA1", payload.format("e1", "CA1"), "telephony.call-events", 1, 13),
        (PROJECT, "CA1", payload.format("e1", "CA1"), "telephony.call-events", 2, 10),
        (PROJECT, "CA1", payload.format("e2", "CA1"), "telephony.call-events", 3, 11),
    ]
    assert store.load_call_events([]) == []
    assert store.load_call_events([("not-a-uuid", "CA1")]) == []


def test_load_call_events_across_many_projects_sharing_call_ids(store: ClickHouseStore) -> None:
    """The lookup groups call_ids by project: each (project, call) pair, and only those, comes
    back, whatever the projects share (the same call_ids in 40 projects, some absent)."""
    projects = [str(uuid.UUID(int=n + 1)) for n in range(40)]
    stored = [(p, f"CA{c}") for i, p in enumerate(projects) for c in range(i % 5)]
    store.insert("call_event", [_event_row(p, c, "e1", n) for n, (p, c) in enumerate(stored)])
    wanted = [(p, f"CA{c}") for p in projects for c in range(0, 5, 2)]
    got = store.load_call_events(wanted + [(p.upper(), "CA0") for p in projects[:3]])
    assert sorted((r[0], r[1]) for r in got) == sorted(set(wanted) & set(stored))


def test_load_call_events_chunks_large_key_sets(store: ClickHouseStore) -> None:
    # 6000 keys with long call ids: ~1.3 MB of SQL literals, far above the default
    # max_query_size (256 KiB), so this needs both the chunking and the raised setting.
    pad = "x" * 150
    rows = [_event_row(PROJECT, f"C{i}{pad}", "e1", i) for i in range(6000)]
    store.insert("call_event", rows)
    keys = [(PROJECT, f"C{i}{pad}") for i in range(0, 12000, 2)]  # half of them present
    got = store.load_call_events(keys)
    assert sorted(r[1] for r in got) == sorted(f"C{i}{pad}" for i in range(0, 6000, 2))


def test_second_process_on_the_same_path_gets_a_clear_unavailable(
    store: ClickHouseStore, chdb_store_url: str
) -> None:
    # This process holds the session's chDB path open (the store fixture).
    printed = _in_a_fresh_process(
        "from worker.adapters.clickhouse.store import ClickHouseStore, StoreUnavailable\n"
        f"s = ClickHouseStore({chdb_store_url!r}, 'ringlog')\n"
        "try:\n"
        "    s.query('SELECT 1')\n"
        "except StoreUnavailable as exc:\n"
        "    print('UNAVAILABLE', exc)\n"
    )
    assert printed.startswith("UNAVAILABLE the chDB store ")
    assert "locked by another process (probably a running `ringlog worker`)" in printed
    assert "`ringlog sql` goes through the worker's HTTP port" in printed


# ---- connection handling --------------------------------------------------------------------


def test_redact_url() -> None:
    assert redact_url("http://user:s3cret@host:8123/db") == "http://user:***@host:8123/db"
    assert redact_url("https://u:p%40ss@h/?password=x&a=1") == "https://u:***@h/?password=***&a=1"
    assert redact_url("chdb:///var/lib/ringlog") == "chdb:///var/lib/ringlog"


def test_relative_chdb_path_is_resolved_without_connecting(tmp_path: Path) -> None:
    s = ClickHouseStore("chdb://./var/clickhouse", "ringlog")
    assert s.url == f"chdb://{Path.cwd().resolve() / 'var' / 'clickhouse'}"
    assert s.embedded
    with pytest.raises(StoreError):
        ClickHouseStore("ftp://h/x", "ringlog")
    with pytest.raises(StoreError):
        ClickHouseStore("chdb:///x", "bad name")


def test_unreachable_server_is_unavailable_and_hides_the_password() -> None:
    s = ClickHouseStore("http://bob:hunter2@127.0.0.1:1/ringlog?connect_timeout=1", "ringlog")
    assert s.url == "http://bob:***@127.0.0.1:1?connect_timeout=1"
    with pytest.raises(StoreUnavailable) as info:
        s.query("SELECT 1")
    assert "hunter2" not in str(info.value)
    assert "bob:***@127.0.0.1:1" in str(info.value)


def test_tables_module_is_consistent() -> None:
    assert TABLES_BY_NAME["call_event"] is CALL_EVENT
    assert INCOMING_CALL_LOG.order_by == ("project_id", "call_provider_call_id")


def test_load_call_events_keys_with_quotes_backslashes_and_control_characters(
    store: ClickHouseStore,
) -> None:
    """The keys travel as a JSON string literal in the statement: any call_id round-trips."""
    odd = ["it's", 'say "hi"', "back\\slash", "tab\there\n", "\x00\x01\x7f", "☎ 電話", "{x}%s"]
    store.insert("call_event", [_event_row(PROJECT, c, "e1", i) for i, c in enumerate(odd)])
    got = store.load_call_events([(PROJECT, c) for c in odd] + [(PROJECT, "it")])
    assert sorted(r[1] for r in got) == sorted(odd)
    # The worst case of escaping still fits one statement (the chunks are sized for it).
    worst = [(PROJECT, f"{i:05d}" + "\x01" * 123) for i in range(5000)]
    assert store.load_call_events(worst) == []


@contextlib.contextmanager
def _formats_sent(store: ClickHouseStore) -> Iterator[list[str]]:
    """The format of each insert `store` sends meanwhile."""
    client = store._connected_client()
    sent: list[str] = []
    original = client.raw_insert

    def spy(*args: object, **kwargs: object) -> object:
        sent.append(str(kwargs["fmt"]))
        return original(*args, **kwargs)

    client.raw_insert = spy
    try:
        yield sent
    finally:
        client.raw_insert = original


# ---- call_event rows in RowBinary ------------------------------------------------------------


def test_call_event_rows_in_row_binary_store_what_their_json_stores(
    store: ClickHouseStore, chdb_store_url: str
) -> None:
    """A plan's call_event rows go as the decoder's RowBinary; ClickHouse must store exactly
    what the JSON of the same rows as dicts stores (`worker.core.call_event_rows`)."""
    plus1 = dt.timezone(dt.timedelta(hours=1))
    block = CallEventRows(dt.datetime(2026, 12, 2, 21, 0, 0, 999999, tzinfo=plus1))
    native = 0
    for offset, message in enumerate(generate_events(300, seed=5, invalid_share=0.0)):
        position = ("telephony.call-events", offset % 4, 10**12 + offset)
        record = FakeRecord(*position, message.key, message.value)
        ev, row = decode_record(record)
        assert isinstance(ev, ValidEvent)
        row = row if offset % 5 else None  # some left to the Python encoder
        native += row is not None
        block.add(record, ev, row)
    assert native > 200 or NATIVE is None

    as_json = ClickHouseStore(chdb_store_url, f"{store.database}_json")
    as_json.migrate()
    try:
        with _formats_sent(store) as sent:
            store.insert("call_event", block)
        assert sent == ["Native" if NATIVE is not None else "RowBinary"]
        as_json.insert("call_event", list(block))
        select = (
            "SELECT *, toString(occurred_at), toString(ingested_at) "
            "FROM {}.call_event ORDER BY offset"
        )
        names, binary = store.query(select.format(store.database))
        _, json = as_json.query(select.format(as_json.database))
    finally:
        as_json.command(f"DROP DATABASE IF EXISTS `{as_json.database}`")
        as_json.close()
    assert binary == json
    assert len(binary) > 250  # the generator's redeliveries are one row each
    first = dict(zip(names, binary[0], strict=True))
    assert first["toString(ingested_at)"] == "2026-12-02 20:00:00.999"
    assert {row[names.index("sequence")] is None for row in binary} == {True, False}


def test_row_binary_of_other_columns_is_refused(store: ClickHouseStore) -> None:
    class Stale(CallEventRows):
        types = (*CallEventRows.types[:-1], "DateTime")

    block = Stale(dt.datetime(2026, 1, 1, tzinfo=UTC))
    message = next(iter(generate_events(1, seed=1, invalid_share=0.0)))
    record = FakeRecord("t", 0, 0, message.key, message.value)
    ev, row = decode_record(record)
    assert isinstance(ev, ValidEvent)
    block.add(record, ev, row)
    with pytest.raises(StoreError, match=r"call_event: RowBinary rows do not match .*ingested_at"):
        store.insert("call_event", block)


# ---- the rows tables in RowBinary ----------------------------------------------------------


def _as_json_only(store: ClickHouseStore, chdb_store_url: str) -> ClickHouseStore:
    """A second database whose inserts all go as JSONEachRow (no native encoder)."""
    as_json = ClickHouseStore(chdb_store_url, f"{store.database}_json")
    as_json.migrate()
    as_json._plans = {name: replace(plan, encoder=None) for name, plan in as_json._plans.items()}
    return as_json


def _same_rows_both_ways(
    store: ClickHouseStore,
    chdb_store_url: str,
    tables: Mapping[str, Sequence[Mapping[str, object]]],
) -> dict[str, list[tuple[object, ...]]]:
    """Insert `tables` into `store` (RowBinary sent as a Native block, asserted) and as JSON;
    assert ClickHouse holds the same rows (the times as text too); return them."""
    as_json = _as_json_only(store, chdb_store_url)
    stored: dict[str, list[tuple[object, ...]]] = {}
    try:
        for table, rows in tables.items():
            with _formats_sent(store) as sent:
                store.insert(table, rows)
            assert sent == ["Native"], table
            as_json.insert(table, rows)
            times = [
                f"toString({name})"
                for name, kind in TABLES_BY_NAME[table].columns
                if "DateTime64" in kind
            ]
            select = f"SELECT *, {', '.join(times)} FROM {{}}.{table} ORDER BY id, version"
            _, binary = store.query(select.format(store.database))
            _, json = as_json.query(select.format(as_json.database))
            assert binary == json, table
            assert len(binary) == len(rows), table
            stored[table] = binary
    finally:
        as_json.command(f"DROP DATABASE IF EXISTS `{as_json.database}`")
        as_json.close()
    return stored


@pytest.mark.skipif(NATIVE is None, reason="ringlog_native is not built")
def test_planned_rows_in_row_binary_store_what_their_json_stores(
    store: ClickHouseStore, chdb_store_url: str
) -> None:
    """The rows tables of planned traffic go in RowBinary (values.InsertPlan.row_binary):
    ClickHouse must store exactly what the JSON of the same dicts stores."""
    planner = BatchPlanner(load_rate_plan(None), dt.timedelta(hours=4), 100_000)
    records = [
        FakeRecord("telephony.call-events", 0, offset, m.key, m.value)
        for offset, m in enumerate(generate_events(3000, seed=11, invalid_share=0.0))
    ]
    plan = planner.plan(planner.decode(records), [], dt.datetime(2026, 12, 2, 23, 0, tzinfo=UTC))
    tables = {str(table): rows for table, rows in plan.tables.items()}
    assert set(tables) == {"incoming_call_log", "incoming_call_log_item", "call_log", "cdr"}
    stored = _same_rows_both_ways(store, chdb_store_url, tables)
    assert all(len(rows) > 20 for rows in stored.values())


@pytest.mark.skipif(NATIVE is None, reason="ringlog_native is not built")
def test_edge_values_in_row_binary_store_what_their_json_stores(
    store: ClickHouseStore, chdb_store_url: str
) -> None:
    plus = dt.timezone(dt.timedelta(hours=5, minutes=30))
    utc0 = dt.timezone(dt.timedelta(0))  # UTC, but not the `datetime.UTC` object
    full: dict[str, object] = dict.fromkeys(INCOMING_CALL_LOG.column_names)
    rows: list[dict[str, object]] = []
    cases: list[tuple[object, object, dt.datetime]] = [
        (Decimal("1.13755"), Decimal("-1.13755"), dt.datetime(2024, 5, 1, 12, 0, 0, 999999)),
        (Decimal("0.00005"), Decimal("-0.00004999"), dt.datetime(2024, 5, 1, 17, 30, 0, 1, plus)),
        (Decimal("99999999999999.9999"), Decimal("-0"), dt.datetime(1970, 1, 1, 0, 0, 0, 999, UTC)),
        (Decimal("1.2E+3"), Decimal("0E-12"), dt.datetime(2105, 12, 31, 23, 59, 59, 999999, utc0)),
        (Decimal("0." + "9" * 40), Decimal("12"), dt.datetime(2026, 3, 29, 2, 30, 0, 500, UTC)),
    ]
    for i, (cost, other, when) in enumerate(cases):
        row = full | _call_log_row(f"CA-edge-{i}", i + 1)  # every column: RowBinary
        row |= {
            "incoming_call_policy_id": uuid.UUID(int=i),
            "answered_by_user_id": str(uuid.UUID(int=2**128 - 1 - i)).upper(),
            "caller_phone_number": "+15551230000",
            "status_message": "☎ " * (i * 40) + "\"quoted\" \\ 'x'",
            "call_cost_in_usd_cents": cost,
            "incoming_call_cost_in_usd_cents": other,
            "call_duration_in_seconds": 2**32 - 1 if i == 0 else i,
            "started_at": when,
            "answered_at": when if i % 2 else None,
            "version": 2**64 - 1 - i,
        }
        rows.append(row)
    stored = _same_rows_both_ways(store, chdb_store_url, {"incoming_call_log": rows})
    at = INCOMING_CALL_LOG.column_names.index("call_cost_in_usd_cents")
    costs = [row[at] for row in stored["incoming_call_log"]]  # by id: the order of `cases`
    expected = ("1.1376", "0.0001", "99999999999999.9999", "1200.0000", "1.0000")
    assert sorted(map(str, costs)) == sorted(expected)


# ---- Native blocks -------------------------------------------------------------------------


def _plain(kind: str) -> str:
    """`kind` without LowCardinality, as the Native blocks declare it."""
    while (start := kind.find("LowCardinality(")) >= 0:
        inner, depth, end = start + len("LowCardinality("), 1, start + len("LowCardinality(")
        while depth:
            depth += {"(": 1, ")": -1}.get(kind[end], 0)
            end += 1
        kind = kind[:start] + kind[inner : end - 1] + kind[end:]
    return kind


@pytest.mark.skipif(NATIVE is None, reason="ringlog_native is not built")
def test_native_blocks_are_clickhouses_own_native_bytes(store: ClickHouseStore) -> None:
    """`NativeBlockWriter` turns RowBinary rows into exactly the bytes ClickHouse writes for
    the same rows in its Native format (columns as their plain types): ClickHouse's own
    RowBinary and Native outputs of one SELECT, for every table the worker writes, with NULLs,
    empty and non-ASCII strings, arrays and the types' bounds among the rows."""
    import ringlog_native

    planner = BatchPlanner(load_rate_plan(None), dt.timedelta(hours=4), 100_000)
    records = [
        FakeRecord("telephony.call-events", offset % 4, offset, m.key, m.value)
        for offset, m in enumerate(generate_events(600, seed=7, invalid_share=0.1))
    ]
    plan = planner.plan(planner.decode(records), [], dt.datetime(2026, 12, 3, 18, 0, tzinfo=UTC))
    for table_name, planned in plan.tables.items():
        store.insert(str(table_name), planned)
    store.insert("call_event", plan.event_rows)
    store.insert("rejected_event", plan.rejected_rows)
    edge = _call_log_row("CA-ß-☎", 2**64 - 1, status_message="", call_duration_in_seconds=0)
    store.insert("incoming_call_log", [edge])
    store.command(
        f"INSERT INTO `{store.database}`.api_key VALUES "
        "(generateUUIDv4(), generateUUIDv4(), 'k', NULL, ['a', '', 'ü'], 'h', now64(3), NULL, "
        "'2106-01-01 00:00:00', 1), (generateUUIDv4(), generateUUIDv4(), '', 'admin', [], '', "
        "'1970-01-01 00:00:00', now64(3), NULL, 0)"
    )
    client = store._connected_client()
    for name in ("call_event", "rejected_event", "api_key", *map(str, plan.tables)):
        columns = TABLES_BY_NAME[name].columns
        select = ", ".join(f"CAST(`{n}` AS {_plain(kind)}) AS `{n}`" for n, kind in columns)
        sql = (
            f"SELECT {select} FROM `{store.database}`.`{name}` ORDER BY ALL "
            "SETTINGS max_threads = 1, max_block_size = 100000"
        )
        count = int(str(store.query(f"SELECT count() FROM `{store.database}`.`{name}`")[1][0][0]))
        assert count >= 2, name
        row_binary = client.raw_query(sql, fmt="RowBinary")
        native = client.raw_query(sql, fmt="Native")
        writer = ringlog_native.NativeBlockWriter(list(columns))
        assert writer.block(row_binary, count) == native, name


@pytest.mark.skipif(NATIVE is None, reason="ringlog_native is not built")
def test_call_event_rows_are_stored_alike_as_a_native_block_or_as_row_binary(
    store: ClickHouseStore, chdb_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan's call_event rows go as a Native block joined in the writer's own buffer
    (`InsertPlan.native_of_rows`), or, without the native writer, as their RowBinary body:
    the same rows stored either way, every column."""
    from worker.adapters.clickhouse import values

    planner = BatchPlanner(load_rate_plan(None), dt.timedelta(hours=4), 100_000)
    records = [
        FakeRecord("telephony.call-events", offset % 4, offset, m.key, m.value)
        for offset, m in enumerate(generate_events(400, seed=11, invalid_share=0.0))
    ]
    plan = planner.plan(planner.decode(records), [], dt.datetime(2026, 12, 5, 6, 0, tzinfo=UTC))
    store.insert("call_event", plan.event_rows)
    other = ClickHouseStore(chdb_store_url, f"t_{uuid.uuid4().hex[:12]}")
    other.migrate()
    try:
        monkeypatch.setattr(values, "NATIVE_MODULE", None)
        other.insert("call_event", plan.event_rows)
        sql = "SELECT * FROM `{}`.call_event ORDER BY `partition`, `offset`"
        _, native = store.query(sql.format(store.database))
        _, row_binary = other.query(sql.format(other.database))
        assert len(native) == len(plan.event_rows) > 300
        assert native == row_binary
    finally:
        other.command(f"DROP DATABASE IF EXISTS `{other.database}`")
        other.close()


def _row_binary(row: tuple[int | None, str, list[str]]) -> bytes:
    """RowBinary of a (Nullable(UInt32), String, Array(String)) row (lengths under 128)."""
    n, s, a = row
    out = bytearray(b"\x01" if n is None else b"\x00" + n.to_bytes(4, "little"))
    out += bytes([len(s.encode())]) + s.encode() + bytes([len(a)])
    for item in a:
        out += bytes([len(item.encode())]) + item.encode()
    return bytes(out)


@pytest.mark.skipif(NATIVE is None, reason="ringlog_native is not built")
def test_a_native_block_writer_that_keeps_its_buffers_writes_each_block_as_a_fresh_one() -> None:
    """A writer keeps its columns' buffers (and the body it joins rows into) from one block
    to the next (no fresh pages per batch): blocks of many rows, then few, then none, then
    many again, and after a refused body, are each exactly what a new writer makes of them
    (itself held to ClickHouse's own Native bytes by the test above), whether given the body
    or its rows and their common last column."""
    import ringlog_native

    columns = [("n", "Nullable(UInt32)"), ("s", "String"), ("a", "Array(String)"), ("t", "UInt64")]
    kept = ringlog_native.NativeBlockWriter(columns)
    sizes = (3000, 5, 0, 1, 4000, 2)
    for at, size in enumerate(sizes):
        rows = [
            _row_binary(
                (None if i % 3 == 0 else i * 7 + at, "ß" * (i % 5), ["x" * (i % 4)] * (i % 3))
            )
            for i in range(size)
        ]
        suffix = (at * 1000 + size).to_bytes(8, "little")
        body = b"".join(row + suffix for row in rows)
        if at == 4:
            with pytest.raises(ValueError, match="not 4001 rows"):
                kept.block(body, size + 1)
            with pytest.raises(ValueError, match="not 4000 rows"):
                kept.block_of_rows(rows, suffix[:7])
        want = ringlog_native.NativeBlockWriter(columns).block(body, size)
        assert kept.block(body, size) == want, size
        assert kept.block_of_rows(rows, suffix) == want, size
        assert ringlog_native.NativeBlockWriter(columns).block_of_rows(rows, suffix) == want


@pytest.mark.skipif(NATIVE is None, reason="ringlog_native is not built")
def test_a_native_block_of_rows_that_are_not_the_columns_is_refused() -> None:
    import ringlog_native

    writer = ringlog_native.NativeBlockWriter([("n", "Nullable(UInt32)"), ("s", "String")])
    assert writer.block(b"\x00\x07\x00\x00\x00\x01x", 1)  # (7, "x")
    cases = (
        (b"\x00\x07\x00\x00\x00\x01x", 2),  # too few bytes
        (b"\x00\x07\x00\x00\x00\x02x", 1),  # a string longer than the body
        (b"\x00\x07\x00\x00\x00\x01xy", 1),  # bytes after the last row
        (b"\x02\x07\x00\x00\x00\x01x", 1),  # not a null flag
        (b"", 2**62),  # more rows than bytes: refused before anything is sized by them
    )
    for body, rows in cases:
        with pytest.raises(ValueError, match=r"not \d+ rows of the columns: row \d+, column"):
            writer.block(body, rows)
    with pytest.raises(ValueError, match="column m: Native of Map"):
        ringlog_native.NativeBlockWriter([("m", "Map(String, String)")])
