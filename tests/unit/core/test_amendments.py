"""Manual corrections (DESIGN.md section 3, "Amendments"): hand-computed rows.

The base call is `answered_on_second_attempt` ("call-2nd", rows in
tests/support/expected_rows.py): Alice's attempt call-2nd-1 is not answered (rated 0.0000),
Bob's call-2nd-2 is answered and costs 2.6000; the incoming leg costs 1.9592.
"""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from tests.support import builders as b
from tests.support.expected_rows import EXPECTED, D, comparable
from worker.core.correlation import CallRows, build_call_rows, row_id

CALL = "call-2nd"
FIRST, SECOND = f"{CALL}-1", f"{CALL}-2"
OTHER_RULE = "0d1f3c55-6a57-4c4e-9a43-2b7b3e1f0a99"


def rows_of(events: list[dict[str, Any]]) -> CallRows:
    decoded = [b.valid(e) for e in events]
    random.Random(len(events)).shuffle(decoded)  # the order must never matter
    return build_call_rows(decoded, b.test_rates())


def base() -> list[dict[str, Any]]:
    return b.answered_on_second_attempt(CALL)


def base_parent(**changes: Any) -> dict[str, Any]:
    row = dict(EXPECTED["answered_on_second_attempt"]["incoming_call_log"][0])
    row.update(changes)
    return row


def base_item(dial_id: str, **changes: Any) -> dict[str, Any]:
    items = EXPECTED["answered_on_second_attempt"]["incoming_call_log_item"]
    row = dict(next(i for i in items if i["dial_id"] == dial_id))
    row.update(changes)
    return row


def items_by_dial(rows: CallRows) -> dict[str, dict[str, Any]]:
    return {str(i["dial_id"]): comparable(i) for i in rows.incoming_call_log_item}


@pytest.mark.parametrize(
    "when", [-5.0, 20.0, 31.1, 500.0], ids=["before", "between", "amid", "after"]
)
def test_amendment_overrides_its_columns_whatever_its_time(when: float) -> None:
    """Before the call, between its dial events or long after: the same override."""
    fix = b.amended(
        CALL,
        FIRST,
        when,
        status="Completed",
        status_message="fixed by hand",
        call_cost_usd_cents="1.5",
    )
    rows = rows_of([*base(), fix])
    assert items_by_dial(rows) == {
        FIRST: base_item(
            FIRST,
            status="Completed",
            status_message="fixed by hand",
            call_cost_in_usd_cents=D("1.5000"),
            cost_source="manual",
        ),  # durations, times, is_answered and the user still come from the dial events
        SECOND: base_item(SECOND),
    }
    assert [comparable(r) for r in rows.incoming_call_log] == [
        base_parent(
            outgoing_call_cost_in_usd_cents=D("4.1000"),  # 1.5 manual + 2.6 rated
            call_cost_in_usd_cents=D("6.0592"),  # 1.9592 + 4.1
        )
    ]


def test_later_amendment_wins_per_field_by_time_then_sequence_then_event_id() -> None:
    first = b.amended(
        CALL, FIRST, 200, status="Busy", call_cost_usd_cents=1, user_id=b.BOB, event_id="a-1"
    )
    later_time = b.amended(CALL, FIRST, 300, status="Failed", event_id="a-0")
    same_time_higher_sequence = b.amended(
        CALL, FIRST, 300, status_message="by sequence", sequence=2, event_id="a-2"
    )
    same_time_lower_sequence = b.amended(
        CALL, FIRST, 300, status_message="loses", sequence=1, event_id="a-9"
    )
    same_time_same_sequence = b.amended(
        CALL, FIRST, 400, escalation_rule_id=OTHER_RULE, sequence=0, event_id="b-2"
    )
    loses_by_event_id = b.amended(
        CALL, FIRST, 400, escalation_rule_id=b.RULE, sequence=0, event_id="b-1"
    )
    events = [
        *base(),
        first,
        later_time,
        same_time_higher_sequence,
        same_time_lower_sequence,
        same_time_same_sequence,
        loses_by_event_id,
    ]
    assert items_by_dial(rows_of(events))[FIRST] == base_item(
        FIRST,
        status="Failed",  # a-0 at 300 beats a-1 at 200 (time before event_id)
        status_message="by sequence",
        call_cost_in_usd_cents=D("1.0000"),  # only a-1 carries a cost
        cost_source="manual",
        user_id=b.BOB,
        incoming_call_policy_escalation_rule_id=OTHER_RULE,  # b-2 after b-1
    )


def test_amended_phone_user_and_answer_leave_computed_and_parent_columns_alone() -> None:
    """The rated cost stays on the number the dial events carry; the parent's answer columns
    come from the dial events only."""
    fixes = [
        b.amended(CALL, SECOND, 300, user_phone_number="+4915550999", user_id=b.ALICE),
        b.amended(CALL, FIRST, 301, is_answered=True),
    ]
    rows = rows_of([*base(), *fixes])
    assert items_by_dial(rows) == {
        FIRST: base_item(FIRST, is_answered=True),
        SECOND: base_item(SECOND, user_phone_number="+4915550999", user_id=b.ALICE),
    }
    assert [comparable(r) for r in rows.incoming_call_log] == [base_parent()]


def test_amendment_of_an_unknown_dial_creates_the_item() -> None:
    created = b.amended(CALL, "manual-1", 400, user_id=b.BOB, call_cost_usd_cents="0.25")
    rows = rows_of([*base(), created])
    assert items_by_dial(rows)["manual-1"] == {
        "id": row_id("incoming_call_log_item", b.PROJECT, CALL, "manual-1"),
        "project_id": b.PROJECT,
        "incoming_call_log_id": row_id("incoming_call_log", b.PROJECT, CALL),
        "dial_id": "manual-1",
        "incoming_call_policy_escalation_rule_id": None,
        "user_id": b.BOB,
        "user_phone_number": None,
        "status": None,
        "status_message": None,
        "dial_duration_in_seconds": None,
        "talk_duration_in_seconds": None,
        "call_cost_in_usd_cents": D("0.2500"),
        "cost_source": "manual",
        "started_at": None,
        "answered_at": None,
        "ended_at": None,
        "is_answered": False,
        "is_deleted": 0,
    }
    assert [comparable(r) for r in rows.incoming_call_log] == [
        base_parent(
            dial_attempts=3,
            outgoing_call_cost_in_usd_cents=D("2.8500"),
            call_cost_in_usd_cents=D("4.8092"),
        )
    ]


def test_dial_events_fill_an_item_that_an_amendment_created() -> None:
    created = b.amended(CALL, SECOND, -30, status_message="created through the API")
    rows = rows_of([*base(), created])
    assert items_by_dial(rows)[SECOND] == base_item(
        SECOND, status_message="created through the API"
    )


def test_a_call_known_only_through_an_amendment() -> None:
    rows = rows_of([b.amended("api-only", "d-9", 10, status="Busy", call_cost_usd_cents="3")])
    assert [comparable(r) for r in rows.incoming_call_log] == [
        {
            "id": row_id("incoming_call_log", b.PROJECT, "api-only"),
            "project_id": b.PROJECT,
            "incoming_call_policy_id": None,
            "caller_phone_number": None,
            "routing_phone_number": None,
            "call_provider_call_id": "api-only",
            "status": "Initiated",  # no dial event: nothing started
            "status_message": None,
            "call_duration_in_seconds": None,
            "call_cost_in_usd_cents": None,  # the incoming leg is not known
            "incoming_call_cost_in_usd_cents": None,
            "outgoing_call_cost_in_usd_cents": D("3.0000"),
            "started_at": None,
            "answered_at": None,
            "ended_at": None,
            "answered_by_user_id": None,
            "current_escalation_rule_order": None,
            "repeat_count": None,
            "dial_attempts": 1,
        }
    ]
    assert [i["status"] for i in rows.incoming_call_log_item] == ["Busy"]
    assert rows.incoming_call_log[0]["version"] == 2


@pytest.mark.parametrize("when", [-10.0, 35.0, 900.0], ids=["before", "between", "after"])
def test_deleted_item_leaves_costs_and_attempts_but_still_drives_the_parent(when: float) -> None:
    """Deleting Bob's answered attempt: the parent keeps Completed, Bob as the answerer and
    rule order 2, but counts one attempt and no outgoing cost."""
    rows = rows_of([*base(), b.deleted(CALL, SECOND, when)])
    assert items_by_dial(rows) == {
        FIRST: base_item(FIRST),
        SECOND: base_item(SECOND, is_deleted=1),
    }
    assert [comparable(r) for r in rows.incoming_call_log] == [
        base_parent(
            dial_attempts=1,
            outgoing_call_cost_in_usd_cents=D("0.0000"),
            call_cost_in_usd_cents=D("1.9592"),
        )
    ]


def test_deletion_is_final_even_before_a_later_amendment() -> None:
    events = [
        *base(),
        b.deleted(CALL, FIRST, 200),
        b.amended(CALL, FIRST, 300, call_cost_usd_cents="7", status="Busy"),
    ]
    rows = rows_of(events)
    assert items_by_dial(rows)[FIRST] == base_item(
        FIRST,
        status="Busy",
        call_cost_in_usd_cents=D("7.0000"),
        cost_source="manual",
        is_deleted=1,
    )
    parent_row = rows.incoming_call_log[0]
    assert parent_row["outgoing_call_cost_in_usd_cents"] == Decimal("2.6000")  # deleted: no 7
    assert parent_row["dial_attempts"] == 1


def test_deletion_alone_creates_no_row() -> None:
    assert rows_of([b.deleted("ghost", "d-1", 0)]).tables() == {
        name: [] for name in rows_of([]).tables()
    }
    rows = rows_of([*base(), b.deleted(CALL, "never-dialled", 50)])
    assert sorted(items_by_dial(rows)) == [FIRST, SECOND]
    assert [comparable(r) for r in rows.incoming_call_log] == [base_parent()]


def test_amendments_and_deletions_raise_the_version_of_every_row_of_the_call() -> None:
    """A row rebuilt without the correction must never outrank the one with it."""
    events = base()
    plain = rows_of(events)
    amended = rows_of([*events, b.amended(CALL, FIRST, 200, status="Busy")])
    deleted = rows_of(
        [*events, b.amended(CALL, FIRST, 200, status="Busy"), b.deleted(CALL, FIRST, 300)]
    )
    versions = [
        {r["version"] for r in (*rows.incoming_call_log, *rows.incoming_call_log_item)}
        for rows in (plain, amended, deleted)
    ]
    assert versions == [{18}, {20}, {22}]  # 2 x distinct events: 9, 10, 11
    duplicate = rows_of(
        [*events, *events[:2], b.amended(CALL, FIRST, 200, status="Busy", event_id="x")]
    )
    again = rows_of([*events, b.amended(CALL, FIRST, 200, status="Busy", event_id="x")])
    assert duplicate.incoming_call_log[0]["version"] == again.incoming_call_log[0]["version"] == 20
