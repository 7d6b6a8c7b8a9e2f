"""Validation of the producer contract: every rejection has a precise code and field."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest

from tests.support import builders as b
from tests.support.sample_vector import SAMPLE_DIR, load_expected, sample_messages
from worker.core.decode import Rejection, ValidEvent, decode, validate_object


def check(value: Any, key: bytes | None = b"c1", raw: bytes | None = None) -> Rejection:
    result = decode(key, raw if raw is not None else orjson.dumps(value))
    assert isinstance(result, Rejection), result
    return result


def dial_started(**changes: Any) -> dict[str, Any]:
    ev = b.dial_started("c1", "d1", 0, escalation_rule_order=1, repeat_count=0)
    ev.update(changes)
    return {k: v for k, v in ev.items() if v is not ...}


CASES: list[tuple[str, Any, str, str | None, str]] = [
    ("not json", b"hello", "invalid_json", None, "payload is not JSON"),
    ("nan", b'{"a": NaN}', "invalid_json", None, "payload is not JSON"),
    ("array", [1, 2], "not_object", None, "payload must be a JSON object, got list"),
    ("scalar", 42, "not_object", None, "payload must be a JSON object, got int"),
    ("string", "x", "not_object", None, "payload must be a JSON object, got str"),
    ("missing type", dial_started(type=...), "missing_field", "type", "type is required"),
    (
        "unknown type",
        dial_started(type="incoming_call.transferred"),
        "unknown_type",
        "type",
        "unknown event type 'incoming_call.transferred'",
    ),
    (
        "schema 2",
        dial_started(schema_version=2),
        "unsupported_schema_version",
        "schema_version",
        "schema_version 2 is not supported (only 1)",
    ),
    (
        "missing event_id",
        dial_started(event_id=...),
        "missing_field",
        "event_id",
        "event_id is required",
    ),
    (
        "long event_id",
        dial_started(event_id="e" * 129),
        "invalid_field",
        "event_id",
        "event_id length must be 1..128, got 129",
    ),
    (
        "empty call_id",
        dial_started(call_id=""),
        "invalid_field",
        "call_id",
        "call_id length must be 1..128, got 0",
    ),
    (
        "bad uuid",
        dial_started(project_id="nope"),
        "invalid_field",
        "project_id",
        "project_id must be a UUID",
    ),
    (
        # A canonical UUID followed by a newline: no UUID column can store it.
        "uuid with a trailing newline",
        dial_started(project_id="5dbf5e05-2d47-5f81-948a-449b75d3d063\n"),
        "invalid_field",
        "project_id",
        "project_id must be a UUID",
    ),
    (
        "uuid wrong type",
        dial_started(user_id=5),
        "invalid_field",
        "user_id",
        "user_id must be a UUID",
    ),
    (
        "no offset",
        dial_started(occurred_at="2024-05-01T08:00:00"),
        "invalid_field",
        "occurred_at",
        "occurred_at must be an RFC 3339 timestamp with offset",
    ),
    (
        "epoch",
        dial_started(occurred_at=1714550400),
        "invalid_field",
        "occurred_at",
        "occurred_at must be an RFC 3339 timestamp with offset",
    ),
    (
        "hour 25",
        dial_started(occurred_at="2024-05-01T25:00:00Z"),
        "invalid_field",
        "occurred_at",
        "occurred_at must be an RFC 3339 timestamp with offset",
    ),
    (
        "feb 30",
        dial_started(occurred_at="2024-02-30T01:00:00Z"),
        "invalid_field",
        "occurred_at",
        "occurred_at must be an RFC 3339 timestamp with offset",
    ),
    (
        "bad e164",
        dial_started(user_phone_number="0044 20 7946"),
        "invalid_field",
        "user_phone_number",
        "user_phone_number must be an E.164 phone number",
    ),
    (
        "negative sequence",
        dial_started(sequence=-1),
        "invalid_field",
        "sequence",
        "sequence must be >= 0",
    ),
    (
        "string sequence",
        dial_started(sequence="3"),
        "invalid_field",
        "sequence",
        "sequence must be an integer",
    ),
    (
        "rule order 0",
        dial_started(escalation_rule_order=0),
        "invalid_field",
        "escalation_rule_order",
        "escalation_rule_order must be >= 1",
    ),
    (
        "missing dial_id",
        dial_started(dial_id=...),
        "missing_field",
        "dial_id",
        "dial_id is required",
    ),
    (
        "long source",
        dial_started(source="s" * 65),
        "invalid_field",
        "source",
        "source length must be 0..64, got 65",
    ),
    (
        "bad outcome",
        b.dial("ended", "c1", "d1", 0, outcome="maybe"),
        "invalid_field",
        "outcome",
        "outcome must be one of completed, no_answer, busy, failed, canceled",
    ),
    (
        "negative billable",
        b.dial("ended", "c1", "d1", 0, outcome="busy", billable_seconds=-1),
        "invalid_field",
        "billable_seconds",
        "billable_seconds must be >= 0",
    ),
    (
        "negative cost",
        b.cost("c1", "c1", 0, -1),
        "invalid_field",
        "cost_usd_cents",
        "cost_usd_cents must be >= 0",
    ),
    (
        "cost not decimal",
        b.cost("c1", "c1", 0, "ten"),
        "invalid_field",
        "cost_usd_cents",
        "cost_usd_cents must be a decimal",
    ),
    (
        "cost bool",
        b.cost("c1", "c1", 0, True),
        "invalid_field",
        "cost_usd_cents",
        "cost_usd_cents must be a decimal",
    ),
    (
        "call_data list",
        b.event(
            "outbound_call.placed",
            "c1",
            0,
            to_number="+15550100",
            from_number="+15550101",
            call_data=[1],
        ),
        "invalid_field",
        "call_data",
        "call_data must be a JSON object",
    ),
    (
        "bad outbound status",
        b.event("outbound_call.ended", "c1", 0, status="Done"),
        "invalid_field",
        "status",
        "status must be one of Success, Error, Low Balance, Missed Call, Busy",
    ),
    (
        "negative cdr duration",
        b.event("cdr.recorded", "c1", 0, cdr_id="x", duration=-5),
        "invalid_field",
        "duration",
        "duration must be >= 0",
    ),
]


@pytest.mark.parametrize(
    ("value", "code", "field", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_rejections_name_code_and_field(
    value: Any, code: str, field: str | None, message: str
) -> None:
    raw = value if isinstance(value, bytes) else None
    rej = check(value, raw=raw)
    assert (rej.code, rej.field) == (code, field)
    assert rej.message.startswith(message), rej.message


def test_not_utf8() -> None:
    rej = check(None, raw=b'{"event_id": "\xff\xfe"}')
    assert rej.code == "not_utf8" and rej.field is None


def test_key_must_be_the_call_id() -> None:
    ev = b.received("c1", 0)
    assert check(ev, key=b"other").code == "key_mismatch"
    assert check(ev, key=None).code == "key_mismatch"
    assert isinstance(decode(b"c1", orjson.dumps(ev)), ValidEvent)


def test_nulls_are_absent_extra_fields_ignored_and_time_normalised() -> None:
    ev = b.dial("ended", "c1", "d1", 0, outcome="busy", status_message=None, x_new_field=[1])
    ev["occurred_at"] = "2024-05-01T03:00:00.123999-05:00"
    ev["sequence"] = None
    decoded = decode(b"c1", orjson.dumps(ev))
    assert isinstance(decoded, ValidEvent)
    assert decoded.event.occurred_at == datetime(2024, 5, 1, 8, 0, 0, 123000, tzinfo=UTC)
    assert decoded.event.sequence is None


def test_cost_accepts_number_or_string_exactly() -> None:
    for value, want in ((4.8524, "4.8524"), ("4.8524", "4.8524"), (3, "3"), ("0.10", "0.10")):
        decoded = decode(b"c1", orjson.dumps(b.cost("c1", "c1", 0, value)))
        assert isinstance(decoded, ValidEvent)
        assert decoded.event.cost_usd_cents == Decimal(want)  # type: ignore[attr-defined]


def test_cdr_empty_string_time_is_absent() -> None:
    ev = b.event("cdr.recorded", "c1", 0, cdr_id="x", answered_at="", started_at=b.at(1))
    decoded = decode(b"c1", orjson.dumps(ev))
    assert isinstance(decoded, ValidEvent)
    assert decoded.event.answered_at is None  # type: ignore[attr-defined]


@pytest.mark.skipif(not SAMPLE_DIR.exists(), reason="shared example vector not present")
def test_sample_vector_rejections_match_code_and_field() -> None:
    expected = {r["line"]: r for r in load_expected()["rejected"]}
    seen = {}
    for line, (key, value) in enumerate(sample_messages()):
        result = decode(key, value)
        if isinstance(result, Rejection):
            seen[line] = (result.code, result.field)
    assert seen == {line: (r["code"], r["field"]) for line, r in expected.items()}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("caller_phone_number", "+15550100\n"),  # `$` used to let a trailing newline through
        ("caller_phone_number", "+1٥٥٥٠١٠٠"),  # digits of another script
        ("occurred_at", "2024-05-01T08:00:00Z\n"),
        ("occurred_at", "2024-05-01T08:00:00.123+02:00\n"),
        ("occurred_at", "2024-05-01T08:00:0٠Z"),
    ],
)
def test_phone_numbers_and_times_are_matched_whole_on_ascii_digits(field: str, value: str) -> None:
    event = {
        "event_id": "e1",
        "type": "incoming_call.received",
        "occurred_at": "2024-05-01T08:00:00Z",
        "project_id": "1fb17c23-90c1-42cf-93ac-94af0f21ddb6",
        "call_id": "c",
        "incoming_call_policy_id": "1fb17c23-90c1-42cf-93ac-94af0f21ddb6",
        "caller_phone_number": "+15550111",
        "routing_phone_number": "+15550100",
        field: value,
    }
    rejection = validate_object(event)
    assert isinstance(rejection, Rejection)
    assert (rejection.code, rejection.field) == ("invalid_field", field)
