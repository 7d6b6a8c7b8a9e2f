"""Pure rules of DESIGN.md section 3: status, durations, costs, ids and versions."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.support import builders as b
from tests.support.expected_rows import EXPECTED, comparable, t
from worker.core.correlation import (
    ID_NAMESPACE,
    TIMEOUT_MESSAGE,
    CallRows,
    build_call_rows,
    row_id,
)

SCENARIOS: dict[str, Callable[[], list[dict[str, Any]]]] = {
    "answered_on_second_attempt": b.answered_on_second_attempt,
    "nobody_answers": b.nobody_answers,
    "caller_hangs_up": b.caller_hangs_up,
    "outbound_call": b.outbound_call,
    "cdr_record": b.cdr_record,
    "late_cost_report": b.late_cost_report,
}


def rows_of(events: list[dict[str, Any]], **kw: Any) -> CallRows:
    return build_call_rows([b.valid(e) for e in events], b.test_rates(), **kw)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_rows_are_exact(name: str) -> None:
    rows = rows_of(SCENARIOS[name]()).tables()
    expected = EXPECTED[name]
    for table, table_rows in rows.items():
        want = expected.get(table, [])
        assert [comparable(r) for r in table_rows] == want, table


def test_version_counts_distinct_events_and_audit_times_are_event_time() -> None:
    events = b.answered_on_second_attempt()
    rows = rows_of(events + events[:3])  # duplicates change nothing
    parent = rows.incoming_call_log[0]
    assert parent["version"] == 2 * len(events)
    assert parent["created_at"] == t(0)
    assert parent["updated_at"] == t(102.5)
    assert all(item["version"] == parent["version"] for item in rows.incoming_call_log_item)


def test_fewer_events_never_outrank_more() -> None:
    events = b.late_cost_report()
    partial = rows_of(events[:-1]).incoming_call_log[0]
    full = rows_of(events).incoming_call_log[0]
    assert partial["version"] < full["version"]


def test_ids_are_deterministic_uuid5() -> None:
    first = rows_of(b.nobody_answers()).incoming_call_log[0]["id"]
    again = rows_of(list(reversed(b.nobody_answers()))).incoming_call_log[0]["id"]
    assert first == again == row_id("incoming_call_log", b.PROJECT, "call-none")
    other_project = row_id("incoming_call_log", "6cad4a26-8d11-4ece-9738-f7d93d9c1724", "call-none")
    assert other_project != first


def test_parent_status_progression() -> None:
    call = "prog"
    evs = [b.received(call, 0)]
    assert rows_of(evs).incoming_call_log[0]["status"] == "Initiated"
    evs.append(b.dial_started(call, "d1", 1))
    assert rows_of(evs).incoming_call_log[0]["status"] == "Ringing"
    assert rows_of(evs).incoming_call_log_item[0]["status"] == "Ringing"
    evs.append(b.dial("ended", call, "d1", 20, outcome="no_answer"))
    evs.append(b.dial_started(call, "d2", 21))
    assert rows_of(evs).incoming_call_log[0]["status"] == "Escalated"
    evs.append(b.dial("answered", call, "d2", 25))
    rows = rows_of(evs)
    assert rows.incoming_call_log[0]["status"] == "Connected"
    assert rows.incoming_call_log_item[1]["status"] == "Connected"
    assert rows.incoming_call_log[0]["call_cost_in_usd_cents"] is None  # not ended yet
    assert rows.incoming_call_log_item[1]["talk_duration_in_seconds"] is None
    assert rows.open


def test_answered_only_through_outcome_completed_has_null_talk_and_cost() -> None:
    call = "oc"
    rows = rows_of(
        [
            b.received(call, 0),
            b.dial_started(call, "d1", 1),
            b.dial("ended", call, "d1", 50, outcome="completed"),
            b.ended(call, 51, "completed"),
        ]
    )
    item = rows.incoming_call_log_item[0]
    assert item["status"] == "Completed" and item["is_answered"] is True
    assert item["talk_duration_in_seconds"] is None
    assert item["call_cost_in_usd_cents"] is None
    parent = rows.incoming_call_log[0]
    assert parent["answered_by_user_id"] == b.ALICE
    assert parent["answered_at"] is None  # no dial_answered event to take it from
    # outgoing sums the known item costs; the unknown one contributes nothing
    assert parent["outgoing_call_cost_in_usd_cents"] == Decimal("0.0000")


def test_billable_seconds_of_dial_ended_win_over_cost_report_and_timestamps() -> None:
    call = "bill"
    rows = rows_of(
        [
            b.dial_started(call, "d1", 0),
            b.dial("answered", call, "d1", 2),
            b.dial("ended", call, "d1", 100, outcome="completed", billable_seconds=30),
            b.event(
                "call.cost_reported", call, 200, leg_id="d1", cost_usd_cents=1, billable_seconds=77
            ),
        ]
    )
    item = rows.incoming_call_log_item[0]
    assert item["talk_duration_in_seconds"] == 30
    assert item["call_cost_in_usd_cents"] == Decimal("1.0000")
    assert item["cost_source"] == "provider"


def test_latest_cost_report_wins_by_occurred_at_then_sequence() -> None:
    call = "corr"
    base = [b.received(call, 0), b.ended(call, 10, "no_answer")]
    first = b.cost(call, call, 20, "1.00", sequence=5)
    correction = b.cost(call, call, 20, "2.00", sequence=6)
    for order in ([first, correction], [correction, first]):
        parent = rows_of(base + order).incoming_call_log[0]
        assert parent["incoming_call_cost_in_usd_cents"] == Decimal("2.0000")
        assert parent["call_cost_in_usd_cents"] == Decimal("2.0000")


def test_cost_report_alone_creates_no_row() -> None:
    rows = rows_of([b.cost("lonely", "lonely", 0, 5)])
    assert all(not r for r in rows.tables().values())


def test_answered_by_is_the_earliest_answer() -> None:
    call = "two-answers"
    rows = rows_of(
        [
            b.received(call, 0),
            b.dial_started(call, "d1", 1, user=b.ALICE),
            b.dial_started(call, "d2", 1, user=b.BOB),
            b.dial("answered", call, "d2", 5),
            b.dial("answered", call, "d1", 6),
        ]
    )
    parent = rows.incoming_call_log[0]
    assert parent["answered_by_user_id"] == b.BOB
    assert parent["answered_at"] == t(5)


def test_negative_interval_gives_null_duration_not_negative() -> None:
    call = "neg"
    rows = rows_of([b.received(call, 100), b.ended(call, 50, "no_answer")])
    assert rows.incoming_call_log[0]["call_duration_in_seconds"] is None
    assert rows.incoming_call_log[0]["call_cost_in_usd_cents"] is None


def test_outbound_status_null_until_ended_and_unanswered_costs_zero() -> None:
    call = "CA-open"
    placed = b.event(
        "outbound_call.placed",
        call,
        0,
        to_number="+15550999",
        from_number="+15550100",
        call_data={},
    )
    row = rows_of([placed]).call_log[0]
    assert row["status"] is None and row["call_duration_in_seconds"] == 0
    ended = b.event("outbound_call.ended", call, 30, status="Missed Call")
    row = rows_of([placed, ended]).call_log[0]
    assert row["status"] == "Missed Call"
    assert row["call_duration_in_seconds"] == 0
    assert row["call_cost_in_usd_cents"] == Decimal("0.0000")


def test_timeout_close_and_a_later_real_end_wins() -> None:
    call = "silent"
    evs = [b.received(call, 0), b.dial_started(call, "d1", 1), b.dial("answered", call, "d1", 5)]
    timeout = timedelta(hours=4)
    not_yet = rows_of(evs, now=t(5) + timeout - timedelta(milliseconds=1), timeout=timeout)
    assert not_yet.incoming_call_log[0]["status"] == "Connected"
    closed = rows_of(evs, now=t(5) + timeout, timeout=timeout)
    parent = closed.incoming_call_log[0]
    assert parent["status"] == "Completed"
    assert parent["status_message"] == TIMEOUT_MESSAGE
    assert parent["ended_at"] == t(5)
    assert parent["call_duration_in_seconds"] == 5
    assert not closed.open
    real = rows_of(
        [*evs, b.ended(call, 7 * 3600, "completed")], now=t(8 * 3600), timeout=timeout
    ).incoming_call_log[0]
    assert real["status_message"] is None and real["ended_at"] == t(7 * 3600)
    assert real["version"] > parent["version"]  # the real end outranks the timeout close

    unanswered = rows_of(evs[:2], now=t(1) + timeout, timeout=timeout).incoming_call_log[0]
    assert unanswered["status"] == "NoAnswer"


def test_conflicting_payloads_for_one_event_id_resolve_the_same_in_any_order() -> None:
    call = "conflict"
    a = b.ended(call, 10, "no_answer", event_id="same")
    c = b.ended(call, 10, "busy", event_id="same")
    base = [b.received(call, 0)]
    first = rows_of([*base, a, c]).incoming_call_log[0]["status"]
    second = rows_of([*base, c, a]).incoming_call_log[0]["status"]
    assert first == second


@given(st.text(max_size=40), st.text(max_size=40), st.lists(st.text(max_size=20), max_size=3))
def test_row_id_is_uuid5_of_the_joined_names(table: str, project: str, natural: list[str]) -> None:
    name = "|".join((table, project, *natural))
    try:
        expected = str(uuid.uuid5(ID_NAMESPACE, name))
    except UnicodeEncodeError:  # lone surrogates: both refuse
        with pytest.raises(UnicodeEncodeError):
            row_id(table, project, *natural)
        return
    assert row_id(table, project, *natural) == expected
