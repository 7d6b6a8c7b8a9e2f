"""The chDB HTTP shim (devtools/chdb_http/) through ringlog's real HTTP path.

The server runs as a SUBPROCESS (`python -m devtools store serve`): chDB allows one data
path per process and this pytest process may already own another one.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from devtools.chdb_http import ServerProcess, build_request, spawn_server
from schemas.tables import (
    CALL_EVENT,
    CALL_LOG,
    CDR,
    INCOMING_CALL_LOG,
    INCOMING_CALL_LOG_ITEM,
    SCHEMA_VERSION,
)
from worker.adapters.clickhouse.store import ClickHouseStore, StoreError, StoreUnavailable

UTC = dt.UTC
PROJECT = uuid.UUID("6f1c2a4e-0d43-4b0a-9a57-2f3f0d7f1a01")
T0 = dt.datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = spawn_server(tmp_path_factory.mktemp("shim-store"), port=0)
    yield proc
    assert proc.stop() == 0  # clean exit on SIGTERM


@pytest.fixture
def store(server: ServerProcess) -> Iterator[ClickHouseStore]:
    database = f"h_{uuid.uuid4().hex[:12]}"
    s = ClickHouseStore(server.url, database)
    assert s.migrate() == s.migrate()  # idempotent
    yield s
    s.command(f"DROP DATABASE IF EXISTS `{database}`")
    s.close()


def _u(name: str) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, name)


def _incoming(call_id: str, version: int) -> dict[str, Any]:
    return {
        "id": _u(call_id),
        "project_id": PROJECT,
        "incoming_call_policy_id": _u("policy"),
        "caller_phone_number": "+14155550100",
        "routing_phone_number": "+14155550199",
        "call_provider_call_id": call_id,
        "status": "Completed" if version > 2 else "Ringing",
        "status_message": None,
        "call_duration_in_seconds": 61,
        "call_cost_in_usd_cents": Decimal("12.3456"),
        "incoming_call_cost_in_usd_cents": Decimal("0.0001"),
        "outgoing_call_cost_in_usd_cents": None,
        "started_at": T0,
        "answered_at": T0 + dt.timedelta(seconds=3, milliseconds=7),
        "ended_at": None,
        "answered_by_user_id": _u("user"),
        "current_escalation_rule_order": 2,
        "repeat_count": None,
        "dial_attempts": 3,
        "created_at": T0,
        "updated_at": T0 + dt.timedelta(milliseconds=999),
        "ingested_at": T0,
        "version": version,
    }


def _item(call_id: str, dial_id: str) -> dict[str, Any]:
    return {
        "id": _u(call_id + dial_id),
        "project_id": PROJECT,
        "incoming_call_log_id": _u(call_id),
        "dial_id": dial_id,
        "incoming_call_policy_escalation_rule_id": None,
        "user_id": _u("user"),
        "user_phone_number": "+14155550111",
        "status": "Completed",
        "status_message": "ok \t tab, \n newline, 'quote', ünïcode",
        "dial_duration_in_seconds": 10,
        "talk_duration_in_seconds": 0,
        "call_cost_in_usd_cents": Decimal("-1.5000"),
        "cost_source": "rated",
        "started_at": T0,
        "answered_at": None,
        "ended_at": T0 + dt.timedelta(seconds=10),
        "is_answered": False,
        "is_deleted": 0,
        "created_at": T0,
        "updated_at": T0,
        "ingested_at": T0,
        "version": 2,
    }


def _call_log(call_id: str) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in CALL_LOG.column_names}
    row.update(
        id=_u(call_id),
        project_id=PROJECT,
        call_provider_call_id=call_id,
        to_number="+14155550123",
        call_data=json.dumps({"a": [1, 2]}),
        status="Success",
        call_cost_in_usd_cents=Decimal("99999999999999.9999"),
        incident_id=_u("incident"),
        created_at=T0,
        updated_at=T0,
        ingested_at=T0,
        version=4,
    )
    return row


def _cdr(cdr_id: str) -> dict[str, Any]:
    row: dict[str, Any] = {name: None for name in CDR.column_names}
    row.update(
        id=_u(cdr_id),
        project_id=PROJECT,
        session_id="sess-1",
        cdr_id=cdr_id,
        caller="100",
        direction="INBOUND_CALL",
        status_code=-486,
        duration=2**40,
        cost=Decimal("0.1234"),
        started_at=T0,
        ingested_at=T0,
        version=2,
    )
    return row


def _event(call_id: str, event_id: str, offset: int) -> dict[str, Any]:
    return {
        "project_id": PROJECT,
        "call_id": call_id,
        "event_id": event_id,
        "type": "incoming_call.received",
        "occurred_at": T0 + dt.timedelta(milliseconds=offset),
        "sequence": None,
        "source": "test",
        "payload": json.dumps({"event_id": event_id, "call_id": call_id}),
        "topic": "telephony.call-events",
        "partition": offset % 4,
        "offset": offset,
        "ingested_at": T0,
        "version": 1,
    }


def _read(store: ClickHouseStore, table: str, names: tuple[str, ...], order: str) -> list[Any]:
    cols = ", ".join(f"`{n}`" for n in names)
    _, rows = store.query(f"SELECT {cols} FROM {store.database}.{table} FINAL ORDER BY {order}")
    return rows


def test_rows_round_trip_exactly_with_final(store: ClickHouseStore) -> None:
    calls = [f"CA{i:03d}" for i in range(5)]
    # versions 2 then 4: FINAL keeps the higher one
    store.insert(INCOMING_CALL_LOG.name, [_incoming(c, 2) for c in calls])
    store.insert(INCOMING_CALL_LOG.name, [_incoming(c, 4) for c in calls])
    items = [_item(c, d) for c in calls for d in ("d1", "d2")]
    store.insert(INCOMING_CALL_LOG_ITEM.name, items)
    store.insert(CALL_LOG.name, [_call_log("OB1")])
    store.insert(CDR.name, [_cdr("cdr-1"), _cdr("cdr-2")])

    names = INCOMING_CALL_LOG.column_names
    got = _read(store, INCOMING_CALL_LOG.name, names, "call_provider_call_id")
    assert got == [tuple(_incoming(c, 4)[n] for n in names) for c in calls]
    names = INCOMING_CALL_LOG_ITEM.column_names
    order = "toString(incoming_call_log_id), dial_id"  # not UUID order: it differs from Python's
    got = _read(store, INCOMING_CALL_LOG_ITEM.name, names, order)
    expected = sorted(items, key=lambda r: (str(r["incoming_call_log_id"]), r["dial_id"]))
    assert got == [tuple(r[n] for n in names) for r in expected]
    names = CALL_LOG.column_names
    assert _read(store, CALL_LOG.name, names, "id") == [tuple(_call_log("OB1")[n] for n in names)]
    names = CDR.column_names
    assert _read(store, CDR.name, names, "cdr_id") == [
        tuple(_cdr(c)[n] for n in names) for c in ("cdr-1", "cdr-2")
    ]
    # an empty result still carries the column names (a Native header block)
    cols, rows = store.query(
        f"SELECT id, version FROM {store.database}.cdr WHERE cdr_id = %(c)s", {"c": "none"}
    )
    assert (cols, rows) == (["id", "version"], [])


def test_dedup_token(store: ClickHouseStore) -> None:
    table = f"{store.database}.call_event"
    rows = [_event("CA1", f"e{i}", i) for i in range(3)]
    store.insert(CALL_EVENT.name, rows, dedup_token="topic:0:0-2")
    store.insert(CALL_EVENT.name, rows, dedup_token="topic:0:0-2")  # a retry: dropped
    assert store.query(f"SELECT count() FROM {table}")[1] == [(3,)]
    store.insert(CALL_EVENT.name, rows, dedup_token="topic:0:3-5")  # another token: written
    assert store.query(f"SELECT count() FROM {table}")[1] == [(6,)]
    assert store.query(f"SELECT count() FROM {table} FINAL")[1] == [(3,)]
    # the token was scoped to its request: a token-less insert of new rows is not dropped
    store.insert(CALL_EVENT.name, [_event("CA2", "x", 9)])
    assert store.query(f"SELECT count() FROM {table}")[1] == [(7,)]


def test_load_call_events(store: ClickHouseStore) -> None:
    rows = [_event(f"CA{i % 3}", f"e{i}", i) for i in range(9)]
    store.insert(CALL_EVENT.name, rows)
    got = store.load_call_events([(str(PROJECT), "CA0"), (str(PROJECT), "CA2"), ("bad", "CA1")])
    expected = [
        (str(PROJECT), r["call_id"], r["payload"], r["topic"], r["partition"], r["offset"])
        for r in rows
        if r["call_id"] in ("CA0", "CA2")
    ]
    assert sorted(got) == sorted(expected)


def test_bad_query_is_store_error(store: ClickHouseStore) -> None:
    with pytest.raises(StoreError, match=r"Code: 60\..*UNKNOWN_TABLE"):
        store.query("SELECT * FROM no_such_table")
    with pytest.raises(StoreError, match=r"Code: 62\."):
        store.command("CREATE TABLE (")
    assert store.query("SELECT 1")[1] == [(1,)]  # the connection is still usable


def test_clickhouse_connect_client_directly(server: ServerProcess) -> None:
    import clickhouse_connect
    from clickhouse_connect.driver.exceptions import DatabaseError

    # a plain client: sessions on (autogenerate_session_id), server-side parameters
    client = clickhouse_connect.get_client(host="127.0.0.1", port=server.port)
    assert str(client.server_version).startswith("26.")
    assert client.query("SELECT {x:UInt32} + 1 AS y", parameters={"x": 41}).result_rows == [(42,)]
    client.command("SET max_threads = 3")  # persists in the session...
    assert client.command("SELECT getSetting('max_threads')") == 3
    # ...while a URL setting applies to its request only
    assert client.command("SELECT getSetting('max_threads')", settings={"max_threads": 2}) == 2
    assert client.command("SELECT getSetting('max_threads')") == 3
    with pytest.raises(DatabaseError) as caught:
        client.query("SELECT throwIf(1, 'boom')")
    assert caught.value.code == 395
    client.close()
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/ping", timeout=5) as resp:
        assert resp.read() == b"Ok.\n"
    # GET is read-only, like ClickHouse
    url = f"http://127.0.0.1:{server.port}/?query=CREATE%20DATABASE%20nope"
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(url, timeout=5)
    assert http_error.value.code == 500
    assert http_error.value.headers["X-ClickHouse-Exception-Code"] == "164"


def test_build_request_splits_inserts() -> None:
    req = build_request("POST", {"async_insert": "0"}, b"INSERT INTO t (a) FORMAT Native\n\x01")
    assert (req.sql, req.data, req.data_format) == (b"INSERT INTO t (a)", b"\x01", "Native")
    assert req.settings == {"async_insert": "0"}
    req = build_request("POST", {"query": "INSERT INTO t FORMAT CSV", "param_x": "1"}, b"1,2\n")
    assert (req.sql, req.data, req.data_format, req.params) == (
        b"INSERT INTO t",
        b"1,2\n",
        "CSV",
        {"x": "1"},
    )
    req = build_request("POST", {"query": "SELECT"}, b" 1")
    assert (req.sql, req.data) == (b"SELECT\n 1", None)


_CLIENT_SCRIPT = """
import datetime as dt, sys, uuid
from worker.adapters.clickhouse.store import ClickHouseStore
url, db = sys.argv[1], sys.argv[2]
worker, batches, size = (int(a) for a in sys.argv[3:6])
store = ClickHouseStore(url, db)
t0 = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
for b in range(batches):
    rows = [
        {"project_id": uuid.UUID(int=worker), "call_id": f"w{worker}-{b}-{i}", "event_id": "e",
         "type": "t", "occurred_at": t0, "payload": "{}", "topic": "x", "partition": worker,
         "offset": b * size + i, "ingested_at": t0, "version": 1}
        for i in range(size)
    ]
    store.insert("call_event", rows, dedup_token=f"w{worker}:{b}")
store.close()
"""


def test_two_client_processes_insert_concurrently(store: ClickHouseStore) -> None:
    batches, size = 20, 500
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                _CLIENT_SCRIPT,
                _url(store),
                store.database,
                str(w),
                str(batches),
                str(size),
            ],
            cwd=ROOT,
        )
        for w in (1, 2)
    ]
    assert [p.wait(120) for p in procs] == [0, 0]
    table = f"{store.database}.call_event"
    _, rows = store.query(
        f"SELECT `partition`, count(), sum(`offset`), uniqExact(call_id) FROM {table} FINAL "
        "GROUP BY `partition` ORDER BY `partition`"
    )
    n = batches * size
    assert rows == [(1, n, n * (n - 1) // 2, n), (2, n, n * (n - 1) // 2, n)]


def _url(store: ClickHouseStore) -> str:
    return store.url  # no password, so the redacted URL is the URL


def test_stopped_server_is_store_unavailable(tmp_path: Path) -> None:
    proc = spawn_server(tmp_path / "store")
    store = ClickHouseStore(proc.url, "ringlog")
    store.migrate()
    assert proc.stop() == 0
    with pytest.raises(StoreUnavailable):
        store.query("SELECT 1")
    with pytest.raises(StoreUnavailable):
        store.insert(CALL_EVENT.name, [_event("CA1", "e1", 1)])
    store.close()
    # a fresh store cannot connect either
    with pytest.raises(StoreUnavailable):
        ClickHouseStore(proc.url, "ringlog").connect()
    # and the data survived the restart of the server on the same path
    again = spawn_server(tmp_path / "store")
    try:
        with ClickHouseStore(again.url, "ringlog") as reopened:
            assert reopened.migrate() == SCHEMA_VERSION
            assert reopened.query("SELECT count() FROM ringlog.schema_migrations")[1] == [(1,)]
    finally:
        again.stop()


def test_password_is_required_when_configured(tmp_path: Path) -> None:
    proc = spawn_server(
        tmp_path / "store", env={"RINGLOG_STORE_USER": "ringlog", "RINGLOG_STORE_PASSWORD": "s3cr"}
    )
    try:
        assert proc.url == f"http://ringlog:***@127.0.0.1:{proc.port}"
        with pytest.raises(StoreError, match="516") as caught:
            ClickHouseStore(f"http://ringlog:wrong@127.0.0.1:{proc.port}", "r").connect()
        assert "wrong" not in str(caught.value)
        with ClickHouseStore(f"http://ringlog:s3cr@127.0.0.1:{proc.port}", "r") as ok:
            assert ok.query("SELECT currentUser() != ''")[1] == [(True,)]
    finally:
        proc.stop()


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "lz4", "identity"])
def test_request_body_decoding(encoding: str) -> None:
    import gzip
    import zlib

    import lz4.frame  # type: ignore[import-untyped,unused-ignore]

    from worker.adapters.chdb_front.content_encoding import Decoder as _Decoder

    data = b"INSERT INTO t FORMAT Native\n" + bytes(range(256)) * 100
    packed = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "lz4": lz4.frame.compress,
        "identity": bytes,
    }[encoding](data)
    decoder = _Decoder(encoding)
    out = b"".join(decoder.feed(packed[i : i + 1000]) for i in range(0, len(packed), 1000))
    assert out + decoder.flush() == data
