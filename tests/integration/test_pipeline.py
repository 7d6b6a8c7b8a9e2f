"""The whole path on real Apache Kafka and chDB: exact rows read back with FINAL."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import orjson
import pytest

from tests.support import builders as b
from tests.support.expected_rows import EXPECTED, comparable
from tests.support.in_process_worker import fresh_settings, produce, read_dlq, running_worker
from tests.support.sample_vector import (
    AMENDMENTS_DIR,
    SAMPLE_DIR,
    diff_tables,
    load_expected,
    sample_messages,
)
from tests.unit.core.test_correlation import SCENARIOS

pytestmark = pytest.mark.kafka

ROW_TABLES = ("incoming_call_log", "incoming_call_log_item", "call_log", "cdr")


def shuffled_with_duplicates(events: list[dict[str, Any]], seed: int) -> list[tuple[bytes, bytes]]:
    rnd = random.Random(seed)
    messages = [b.encode(e) for e in events]
    messages += rnd.sample(messages, k=len(messages) // 3)
    rnd.shuffle(messages)
    return messages


def test_every_scenario_gives_exact_rows(kafka_bootstrap: str, chdb_store_url: str) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    events = [e for make in SCENARIOS.values() for e in make()]

    async def scenario() -> dict[str, list[dict[str, Any]]]:
        async with running_worker(settings) as run:
            await produce(settings, shuffled_with_duplicates(events, seed=11))
            await run.drained()
            return {t: run.query(f"SELECT * FROM {t} FINAL ORDER BY id") for t in ROW_TABLES}

    got = asyncio.run(scenario())
    want: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for expected in EXPECTED.values():
        for table, rows in expected.items():
            want[table].extend(rows)
    for table in ROW_TABLES:
        assert sorted((comparable(r) for r in got[table]), key=lambda r: str(r["id"])) == sorted(
            want[table], key=lambda r: str(r["id"])
        ), table


def test_call_event_keeps_each_distinct_event_once(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    events = b.answered_on_second_attempt("dup-call")

    async def scenario() -> list[dict[str, Any]]:
        async with running_worker(settings) as run:
            messages = shuffled_with_duplicates(events, seed=3)
            await produce(settings, messages)
            await run.drained()
            await produce(settings, messages)  # a producer retrying everything
            await run.drained()
            return run.query("SELECT event_id, type, payload FROM call_event FINAL")

    rows = asyncio.run(scenario())
    assert sorted(r["event_id"] for r in rows) == sorted(e["event_id"] for e in events)
    by_id = {e["event_id"]: e for e in events}
    for row in rows:
        assert orjson.loads(row["payload"]) == by_id[row["event_id"]]


def test_late_cost_report_after_restart_reloads_state(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    """The cost report arrives after the call ended AND after the worker restarted (its
    cache is empty): the call is reloaded from call_event and the rows come out exact."""
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    events = b.late_cost_report()

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with running_worker(settings) as run:
            await produce(settings, [b.encode(e) for e in events[:-1]])
            await run.drained()
            before = run.query("SELECT * FROM incoming_call_log_item FINAL")
        async with running_worker(settings) as run:
            await produce(settings, [b.encode(events[-1])])
            await run.drained()
            after = run.query("SELECT * FROM incoming_call_log_item FINAL")
        return before, after

    before, after = asyncio.run(scenario())
    assert [r["cost_source"] for r in before] == ["rated"]
    assert str(before[0]["call_cost_in_usd_cents"]) == "2.6000"  # 61 s rated before the report
    assert [comparable(r) for r in after] == EXPECTED["late_cost_report"]["incoming_call_log_item"]


def test_invalid_events_go_to_dlq_topic_and_rejected_event(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    good = b.caller_hangs_up()
    bad: list[tuple[bytes | None, bytes, str, str | None]] = [
        (b"call-hangup", b"not json", "invalid_json", None),
        (b"call-hangup", b"\xff\xfe\x00", "not_utf8", None),
        (b"call-hangup", b"[1]", "not_object", None),
        (
            b"call-hangup",
            orjson.dumps({**good[0], "project_id": "x"}),
            "invalid_field",
            "project_id",
        ),
        (b"other-key", orjson.dumps({**good[1], "event_id": "moved"}), "key_mismatch", "call_id"),
        (
            b"call-hangup",
            orjson.dumps({**good[2], "schema_version": 2}),
            "unsupported_schema_version",
            "schema_version",
        ),
    ]
    messages = [
        b.encode(good[0]),
        *[(k, v) for k, v, _, _ in bad],
        *[b.encode(e) for e in good[1:]],
    ]

    async def scenario() -> tuple[list[dict[str, Any]], list[Any], list[dict[str, Any]]]:
        async with running_worker(settings) as run:
            await produce(settings, messages)
            await run.drained()
            rejected = run.query(
                "SELECT key, error_code, error_field, payload FROM rejected_event FINAL "
                "ORDER BY `partition`, `offset`"
            )
            parents = run.query("SELECT * FROM incoming_call_log FINAL")
        dlq = await read_dlq(settings, expected=len(bad))
        return rejected, dlq, parents

    rejected, dlq, parents = asyncio.run(scenario())
    got = sorted((r["key"], r["error_code"], r["error_field"]) for r in rejected)
    want = sorted((k.decode() if k else None, code, field) for k, _, code, field in bad)
    assert got == want
    payloads = {r["error_code"]: r["payload"] for r in rejected}
    assert payloads["invalid_json"] == "not json"
    assert payloads["not_utf8"] == "//4A"  # base64 of the original bytes
    letters = [orjson.loads(m.value) for m in dlq]
    assert (
        sorted((d["source"]["key"], d["error"]["code"], d["error"]["field"]) for d in letters)
        == want
    )
    assert all(d["source"]["topic"] == settings.topic for d in letters)
    assert {d["payload"] for d in letters} >= {"not json", "[1]"}
    # the valid events around the bad ones are unaffected
    assert [comparable(p) for p in parents] == EXPECTED["caller_hangs_up"]["incoming_call_log"]


@pytest.mark.skipif(not SAMPLE_DIR.exists(), reason="shared example vector not present")
def test_shared_sample_vector_end_to_end(kafka_bootstrap: str, chdb_store_url: str) -> None:
    """Cross-check with ../shared/examples: 40 calls, shuffled, duplicated, 37 bad lines."""
    settings = fresh_settings(kafka_bootstrap, chdb_store_url, rates_file=SAMPLE_DIR / "rates.yaml")
    messages = [(k, v) for k, v in sample_messages()]

    async def scenario() -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
        async with running_worker(settings) as run:
            await produce(settings, messages)
            await run.drained()
            tables = {t: run.query(f"SELECT * FROM {t} FINAL") for t in ROW_TABLES}
            rejected = run.query("SELECT key, error_code, error_field FROM rejected_event FINAL")
        return tables, rejected

    tables, rejected = asyncio.run(scenario())
    call_of = {str(r["id"]): r["call_provider_call_id"] for r in tables["incoming_call_log"]}
    for item in tables["incoming_call_log_item"]:
        item["_call_id"] = call_of[str(item["incoming_call_log_id"])]
    expected = load_expected()
    assert diff_tables(tables, expected) == []
    want = sorted((r["key"], r["code"], r["field"]) for r in expected["rejected"])
    assert sorted((r["key"], r["error_code"], r["error_field"]) for r in rejected) == want


def _with_call_ids(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Items carry their parent's call_id (`_call_id`), the vector's natural key."""
    call_of = {str(r["id"]): r["call_provider_call_id"] for r in tables["incoming_call_log"]}
    for item in tables["incoming_call_log_item"]:
        item["_call_id"] = call_of[str(item["incoming_call_log_id"])]
    return tables


def _only_items(expected: dict[str, Any], deleted: int) -> dict[str, Any]:
    """`expected` with the item rows whose is_deleted is `deleted` (and no other table)."""
    items = [
        e for e in expected["tables"]["incoming_call_log_item"] if e["row"]["is_deleted"] == deleted
    ]
    return {"meta": expected["meta"], "tables": {"incoming_call_log_item": items}}


@pytest.mark.skipif(not AMENDMENTS_DIR.exists(), reason="shared example vector not present")
def test_amendments_vector_end_to_end_then_rebuilt(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    """../shared/examples/sample-60-calls-amendments: amendments before, between and after
    dial events, items created by amendments, manual costs, one deletion. FINAL returns
    exactly the expected rows that are not deleted; the deleted item's newest row is the
    expected one with is_deleted = 1; `ringlog rebuild` from call_event rewrites the same rows."""
    from worker.adapters.clickhouse.rebuild import rebuild
    from worker.adapters.clickhouse.store import ClickHouseStore
    from worker.core.rates import load_rate_plan

    rates_file = AMENDMENTS_DIR / "rates.yaml"
    settings = fresh_settings(kafka_bootstrap, chdb_store_url, rates_file=rates_file)
    expected = load_expected(AMENDMENTS_DIR)
    deleted = [e for e in expected["tables"]["incoming_call_log_item"] if e["row"]["is_deleted"]]
    assert len(deleted) == 1
    deleted_dial = deleted[0]["key"]["dial_id"]

    def read(run_query: Any) -> dict[str, Any]:
        return {
            "final": _with_call_ids({t: run_query(f"SELECT * FROM {t} FINAL") for t in ROW_TABLES}),
            "rejected": run_query("SELECT key, error_code, error_field FROM rejected_event FINAL"),
            "amendments": run_query(
                "SELECT event_id, type, source FROM call_event FINAL "
                "WHERE type LIKE 'incoming_call.item_%' ORDER BY event_id"
            ),
            "deleted_newest": run_query(
                "SELECT * FROM incoming_call_log_item "
                f"WHERE dial_id = '{deleted_dial}' ORDER BY version DESC LIMIT 1"
            ),
        }

    async def scenario() -> dict[str, Any]:
        async with running_worker(settings) as run:
            await produce(settings, sample_messages(AMENDMENTS_DIR))
            await run.drained()
            return read(run.query)

    got = asyncio.run(scenario())
    visible = {
        "meta": expected["meta"],
        "tables": {**expected["tables"], **_only_items(expected, 0)["tables"]},
    }
    assert diff_tables(got["final"], visible) == []
    newest = got["deleted_newest"]
    newest[0]["_call_id"] = deleted[0]["key"]["call_id"]
    assert diff_tables({"incoming_call_log_item": newest}, _only_items(expected, 1)) == []
    want = sorted((r["key"], r["code"], r["field"]) for r in expected["rejected"])
    assert sorted((r["key"], r["error_code"], r["error_field"]) for r in got["rejected"]) == want
    # The audit trail: every distinct amendment and deletion, with the source that sent it.
    stats = expected["meta"]["amendments"]
    assert len(got["amendments"]) == stats["item_amended_events"] + stats["item_deleted_events"]
    assert {r["source"] for r in got["amendments"]} == {"api"}

    with ClickHouseStore(settings.clickhouse_url, settings.database) as store:
        rebuild(store, load_rate_plan(rates_file), timeout=settings.call_timeout)

        def query(sql: str) -> list[dict[str, Any]]:
            columns, rows = store.query(sql)
            return [dict(zip(columns, row, strict=True)) for row in rows]

        rebuilt = read(query)

    def comparable_rows(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[Any]]:
        return {
            t: sorted(
                ({k: v for k, v in r.items() if k != "ingested_at"} for r in rows),
                key=lambda r: str(r["id"]),
            )
            for t, rows in tables.items()
        }

    assert comparable_rows(rebuilt["final"]) == comparable_rows(got["final"])
    assert comparable_rows({"d": rebuilt["deleted_newest"]}) == comparable_rows(
        {"d": [{k: v for k, v in newest[0].items() if k != "_call_id"}]}
    )


def test_worker_closes_a_silent_call_after_the_timeout(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    """An answered call with no end event is closed once the stream's event time has moved
    RINGLOG_CALL_TIMEOUT past its last event; a later real end event still wins."""
    from datetime import timedelta

    settings = fresh_settings(kafka_bootstrap, chdb_store_url, call_timeout=timedelta(hours=4))
    silent = [
        b.received("silent", 0),
        b.dial_started("silent", "s-1", 1),
        b.dial("answered", "silent", "s-1", 5),
    ]
    later = b.received("later", 5 * 3600)  # another call, five hours of event time later
    real_end = b.ended("silent", 6 * 3600, "completed")

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with running_worker(settings) as run:
            await produce(settings, [b.encode(e) for e in silent])
            await run.drained()
            await produce(settings, [b.encode(later)])
            await run.drained()
            closed = run.query(
                "SELECT * FROM incoming_call_log FINAL WHERE call_provider_call_id = 'silent'"
            )
            await produce(settings, [b.encode(real_end)])
            await run.drained()
            final = run.query(
                "SELECT * FROM incoming_call_log FINAL WHERE call_provider_call_id = 'silent'"
            )
        return closed, final

    closed, final = asyncio.run(scenario())
    assert [(r["status"], r["ended_at"], r["status_message"]) for r in closed] == [
        (
            "Completed",
            b.T0 + timedelta(seconds=5),
            "closed by ringlog: no end event within the call timeout",
        )
    ]
    assert [(r["status"], r["ended_at"], r["status_message"]) for r in final] == [
        ("Completed", b.T0 + timedelta(hours=6), None)
    ]
