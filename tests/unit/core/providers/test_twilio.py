"""Twilio's mapping tables, times, prices and what is dead-lettered (docs/providers/twilio.md)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support import builders as b
from tests.support import provider_fixtures as pf
from worker.core.providers import twilio
from worker.core.providers.base import (
    INVALID_FIELD,
    MISSING_FIELD,
    NOT_PROVIDER_FORMAT,
    UNKNOWN_EVENT,
    UNMAPPED_VALUE,
    Normalized,
)

CTX = pf.CONTEXTS["twilio"]
RECEIVED = datetime(2026, 1, 6, 10, 0, 5, 123000, tzinfo=UTC)
PARENT, CHILD = "CA" + "1" * 32, "CA" + "2" * 32


def child(status: str, seq: int = 1, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "b" * 32,
        "CallSid": CHILD,
        "ParentCallSid": PARENT,
        "Direction": "outbound-dial",
        "From": pf.TWILIO_NUMBER,
        "To": pf.ALICE_PHONE,
        "CallStatus": status,
        "SequenceNumber": str(seq),
        "Timestamp": "Tue, 06 Jan 2026 10:00:32 +0000",
        "CallbackSource": "call-progress-events",
        **extra,
    }


def outbound(status: str, seq: int = 1, **extra: str) -> dict[str, str]:
    form = child(status, seq, **extra)
    del form["ParentCallSid"]
    return form | {"Direction": "outbound-api", "CallSid": PARENT}


def parent(status: str, **extra: str) -> dict[str, str]:
    return outbound(status, 0, **extra) | {"Direction": "inbound", "To": pf.TWILIO_NUMBER}


def action(dial_status: str, parent_status: str = "in-progress", **extra: str) -> dict[str, str]:
    return {
        "AccountSid": "AC" + "b" * 32,
        "CallSid": PARENT,
        "CallStatus": parent_status,
        "Direction": "inbound",
        "From": "+14155550123",
        "To": pf.TWILIO_NUMBER,
        "DialCallSid": CHILD,
        "DialCallStatus": dial_status,
        "DialCallDuration": "0",
        **extra,
    }


def only_event(result: Normalized) -> dict[str, Any]:
    assert result.unmapped == ()
    (event,) = result.events
    return event


def only_problem(result: Normalized) -> tuple[str, str | None]:
    assert result.events == ()
    (problem,) = result.unmapped
    assert problem.message
    return problem.code, problem.field


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("completed", "completed"),
        ("busy", "busy"),
        ("no-answer", "no_answer"),
        ("failed", "failed"),
        ("canceled", "canceled"),
    ],
)
def test_child_final_status_is_the_dial_outcome(status: str, outcome: str) -> None:
    event = only_event(twilio.status_callback(child(status, SipResponseCode="487"), CTX))
    assert event["type"] == "incoming_call.dial_ended"
    assert (event["call_id"], event["dial_id"], event["outcome"]) == (PARENT, CHILD, outcome)
    assert event["occurred_at"] == "2026-01-06T10:00:32.000Z"
    assert event["sequence"] == 1
    assert event["status_message"] == f"twilio {status}, SIP 487"


@pytest.mark.parametrize(
    ("status", "kind"),
    [("ringing", "incoming_call.dial_ringing"), ("in-progress", "incoming_call.dial_answered")],
)
def test_child_progress(status: str, kind: str) -> None:
    assert only_event(twilio.status_callback(child(status), CTX))["type"] == kind


def test_completed_child_reports_its_talk_time() -> None:
    event = only_event(twilio.status_callback(child("completed", 3, CallDuration="42"), CTX))
    assert event["billable_seconds"] == 42


def test_first_callback_of_a_leg_starts_it_even_when_it_is_the_final_one() -> None:
    # A <Number> subscribed to `completed` only: one callback, SequenceNumber 0.
    result = twilio.status_callback(child("completed", 0, CallDuration="42"), CTX)
    started, ended = result.events
    assert started["type"] == "incoming_call.dial_started"
    assert started["occurred_at"] == "2026-01-06T09:59:50.000Z"  # 10:00:32 - CallDuration 42 s
    assert started["user_id"] == CTX.user(pf.ALICE_PHONE)  # no query: the number's user
    assert ended["outcome"] == "completed"


def test_dial_started_takes_the_routing_services_query() -> None:
    query = {
        "user_id": b.BOB,
        "escalation_rule_id": b.RULE,
        "escalation_rule_order": "3",
        "repeat_count": "1",
    }
    event = only_event(twilio.status_callback(child("initiated", 0), CTX, query))
    assert event["user_id"] == b.BOB
    assert event["user_phone_number"] == pf.ALICE_PHONE
    assert (event["escalation_rule_id"], event["escalation_rule_order"]) == (b.RULE, 3)
    assert event["repeat_count"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"user_id": "not-a-uuid"}, "user_id"),
        ({"escalation_rule_order": "0"}, "escalation_rule_order"),
        ({"repeat_count": "-1"}, "repeat_count"),
    ],
)
def test_a_bad_query_value_is_unmapped_not_guessed(query: dict[str, str], field: str) -> None:
    assert only_problem(twilio.status_callback(child("initiated", 0), CTX, query)) == (
        INVALID_FIELD,
        field,
    )


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        ("completed", "no_answer"),  # Twilio answered the caller itself; dials say who answered
        ("busy", "busy"),
        ("no-answer", "no_answer"),
        ("failed", "failed"),
        ("canceled", "caller_hung_up"),
    ],
)
def test_parent_final_status_ends_the_incoming_call(status: str, outcome: str) -> None:
    event = only_event(twilio.status_callback(parent(status), CTX))
    assert (event["type"], event["call_id"], event["outcome"]) == (
        "incoming_call.ended",
        PARENT,
        outcome,
    )


@pytest.mark.parametrize("status", ["initiated", "ringing", "in-progress"])
def test_parent_progress_adds_nothing(status: str) -> None:
    assert twilio.status_callback(parent(status).copy() | {"SequenceNumber": "1"}, CTX) == (
        Normalized()
    )


@pytest.mark.parametrize(
    ("status", "ringlog"),
    [
        ("completed", "Success"),
        ("busy", "Busy"),
        ("no-answer", "Missed Call"),
        ("failed", "Error"),
        ("canceled", "Error"),
    ],
)
def test_outbound_status_table(status: str, ringlog: str) -> None:
    event = only_event(twilio.status_callback(outbound(status, 2), CTX))
    assert (event["type"], event["status"]) == ("outbound_call.ended", ringlog)


def test_outbound_first_callback_places_the_call_with_its_relations() -> None:
    query = {"incident_id": b.RULE, "message": "hello", "user_id": b.ALICE}
    event = only_event(twilio.status_callback(outbound("initiated", 0), CTX, query))
    assert event["type"] == "outbound_call.placed"
    assert (event["to_number"], event["from_number"]) == (pf.ALICE_PHONE, pf.TWILIO_NUMBER)
    assert (event["incident_id"], event["user_id"]) == (b.RULE, b.ALICE)
    assert event["call_data"] == {"message": "hello"}


def test_answered_by_machine_is_kept_in_the_message() -> None:
    form = outbound("completed", 2, AnsweredBy="machine_start", SipResponseCode="200")
    event = only_event(twilio.status_callback(form, CTX))
    assert event["status_message"] == "twilio completed, SIP 200, answered by machine_start"


@pytest.mark.parametrize(
    ("dial_status", "outcome"),
    [
        ("completed", "completed"),
        ("answered", "completed"),
        ("busy", "busy"),
        ("no-answer", "no_answer"),
        ("failed", "failed"),
        ("canceled", "canceled"),
    ],
)
def test_dial_action_outcome_at_receipt_time(dial_status: str, outcome: str) -> None:
    ctx = dataclasses.replace(CTX, received_at=RECEIVED)
    event = only_event(twilio.dial_action(action(dial_status, DialCallDuration="7"), ctx))
    assert (event["dial_id"], event["outcome"], event["billable_seconds"]) == (CHILD, outcome, 7)
    assert event["occurred_at"] == "2026-01-06T10:00:05.123Z"


def test_dial_action_after_the_caller_left_ends_the_call_as_a_hang_up() -> None:
    ctx = dataclasses.replace(CTX, received_at=RECEIVED)
    dial, ended = twilio.dial_action(action("no-answer", "completed"), ctx).events
    assert dial["outcome"] == "canceled"
    assert (ended["type"], ended["outcome"]) == ("incoming_call.ended", "caller_hung_up")
    # An answered leg ended by the caller is a normal end, not a hang-up while ringing.
    (answered,) = twilio.dial_action(action("completed", "completed"), ctx).events
    assert answered["outcome"] == "completed"


def test_voice_webhook_and_dial_action_need_the_receipt_time() -> None:
    form = {
        "AccountSid": "AC" + "b" * 32,
        "CallSid": PARENT,
        "From": "+14155550123",
        "To": pf.TWILIO_NUMBER,
        "Direction": "inbound",
    }
    assert only_problem(twilio.voice_webhook(form, CTX)) == (MISSING_FIELD, "received_at")
    assert only_problem(twilio.dial_action(action("busy"), CTX)) == (MISSING_FIELD, "received_at")
    ctx = dataclasses.replace(CTX, received_at=RECEIVED)
    event = only_event(twilio.voice_webhook(form, ctx))
    assert (event["incoming_call_policy_id"], event["occurred_at"]) == (
        b.POLICY,
        "2026-01-06T10:00:05.123Z",
    )


def test_a_number_without_policy_is_unmapped() -> None:
    ctx = dataclasses.replace(CTX, received_at=RECEIVED)
    form = {"AccountSid": "AC" + "b" * 32, "CallSid": PARENT, "From": "+14155550123"}
    form |= {"To": "+14155559999", "Direction": "inbound"}
    assert only_problem(twilio.voice_webhook(form, ctx)) == (UNMAPPED_VALUE, "To")


def resource(**fields: Any) -> dict[str, Any]:
    return {
        "sid": CHILD,
        "parent_call_sid": PARENT,
        "price": "-0.01400",
        "price_unit": "USD",
        "duration": "42",
        "status": "completed",
        "date_updated": "Tue, 06 Jan 2026 10:03:04 +0000",
    } | fields


@pytest.mark.parametrize(
    ("price", "cents"), [("-0.01400", "1.40000"), ("-0.200", "20.000"), ("0.00", "0.00")]
)
def test_price_becomes_cents_of_its_leg(price: str, cents: str) -> None:
    event = only_event(twilio.call_resource(resource(price=price), CTX))
    assert event["type"] == "call.cost_reported"
    assert (event["call_id"], event["leg_id"]) == (PARENT, CHILD)
    assert (event["cost_usd_cents"], event["billable_seconds"]) == (cents, 42)
    assert event["occurred_at"] == "2026-01-06T10:03:04.000Z"


def test_price_of_a_parent_leg_is_its_own_call() -> None:
    event = only_event(twilio.call_resource(resource(sid=PARENT, parent_call_sid=None), CTX))
    assert (event["call_id"], event["leg_id"]) == (PARENT, PARENT)


def test_null_price_reports_nothing_yet() -> None:
    assert twilio.call_resource(resource(price=None), CTX) == Normalized()


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"price_unit": "EUR"}, (UNMAPPED_VALUE, "price_unit")),
        ({"price": "0.05"}, (UNMAPPED_VALUE, "price")),
        ({"price": "abc"}, (INVALID_FIELD, "price")),
        ({"date_updated": "yesterday"}, (INVALID_FIELD, "date_updated")),
        ({"sid": "CA123"}, (INVALID_FIELD, "sid")),
    ],
)
def test_price_that_cannot_be_mapped(fields: dict[str, Any], problem: tuple[str, str]) -> None:
    assert only_problem(twilio.call_resource(resource(**fields), CTX)) == problem


def test_a_price_fetched_twice_is_one_event_and_a_new_price_another() -> None:
    first = only_event(twilio.call_resource(resource(), CTX))
    assert only_event(twilio.call_resource(resource(), CTX)) == first
    assert (
        only_event(twilio.call_resource(resource(price="-0.02"), CTX))["event_id"]
        != (first["event_id"])
    )


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"\xff\xfe", (NOT_PROVIDER_FORMAT, None)),
        (b'{"event_type": "call_cdr"}', (NOT_PROVIDER_FORMAT, None)),
        (b"hello=world", (NOT_PROVIDER_FORMAT, None)),
        (b"", (NOT_PROVIDER_FORMAT, None)),
    ],
)
def test_a_body_that_is_not_twilio(body: bytes, problem: tuple[str, None]) -> None:
    assert only_problem(twilio.form_body(body, CTX)) == problem


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        (child("queued-later"), (UNMAPPED_VALUE, "CallStatus")),
        (child("ringing", CallbackSource="conference-events"), (UNKNOWN_EVENT, None)),
        (child("ringing", Direction="trunking-originating"), (UNMAPPED_VALUE, "Direction")),
        (child("ringing", Timestamp="not a date"), (INVALID_FIELD, "Timestamp")),
        (child("ringing", CallSid="redacted"), (INVALID_FIELD, "CallSid")),
        (child("ringing", SequenceNumber="x"), (INVALID_FIELD, "SequenceNumber")),
        (action("ringing"), (UNMAPPED_VALUE, "DialCallStatus")),
        (
            {k: v for k, v in child("ringing").items() if k != "CallStatus"},
            (MISSING_FIELD, "CallStatus"),
        ),
    ],
)
def test_unmappable_requests(form: dict[str, str], problem: tuple[str, str | None]) -> None:
    ctx = dataclasses.replace(CTX, received_at=RECEIVED)
    assert only_problem(twilio.webhook(form, ctx)) == problem


def test_an_outbound_leg_to_a_number_that_is_not_e164_is_unmapped() -> None:
    result = twilio.status_callback(outbound("initiated", 0, To="client:alice"), CTX)
    assert only_problem(result) == (INVALID_FIELD, "To")


def test_requests_are_told_apart_like_the_gateway_routes_them() -> None:
    for name in pf.names("twilio"):
        for delivery in pf.load("twilio", name)["deliveries"]:
            if delivery["kind"] != "form":
                continue
            ctx = CTX
            if "received_at" in delivery:
                ctx = dataclasses.replace(CTX, received_at=RECEIVED)
            form, query = delivery["form"], delivery.get("query", {})
            routed = pf.normalize("twilio", delivery)
            by_content = twilio.webhook(form, ctx, query)
            assert [e["type"] for e in by_content.events] == [e["type"] for e in routed.events]
