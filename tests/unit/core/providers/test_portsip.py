"""PortSIP's mapping tables and what is dead-lettered (docs/providers/portsip.md)."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest

from tests.support import provider_fixtures as pf
from worker.core.providers import portsip
from worker.core.providers.base import (
    INVALID_FIELD,
    MISSING_FIELD,
    NOT_PROVIDER_FORMAT,
    UNKNOWN_EVENT,
    UNMAPPED_VALUE,
    Normalized,
)

CTX = pf.CONTEXTS["portsip"]


def answered_cdr() -> dict[str, Any]:
    body: dict[str, Any] = pf.load("portsip", "answered_second_user")["deliveries"][0]["body"]
    return copy.deepcopy(body)


def types(result: Normalized) -> list[str]:
    return [e["type"] for e in result.events]


def only_problem(result: Normalized) -> tuple[str, str | None]:
    assert result.events == ()
    (problem,) = result.unmapped
    assert problem.message
    return problem.code, problem.field


@pytest.mark.parametrize(
    ("short", "long", "api"),
    [
        ("ext", "internal", "EXTENSION_CALL"),
        ("in", "inbound", "INBOUND_CALL"),
        ("in2out", "inbound_outbound", "INBOUND_OUTBOUND_CALL"),
        ("out", "outbound", "OUTBOUND_CALL"),
    ],
)
def test_both_direction_spellings_map_to_the_api_enum(short: str, long: str, api: str) -> None:
    for spelling in (short, long):
        body = answered_cdr() | {"direction": spelling}
        cdrs = [e for e in portsip.webhook(body, CTX).events if e["type"] == "cdr.recorded"]
        assert [c["direction"] for c in cdrs] == [api, api]


@pytest.mark.parametrize("direction", ["ext", "out"])
def test_only_inbound_calls_give_incoming_call_events(direction: str) -> None:
    result = portsip.webhook(answered_cdr() | {"direction": direction}, CTX)
    assert types(result) == ["cdr.recorded", "cdr.recorded"]
    assert result.unmapped == ()


def test_an_inbound_cdr_gives_a_cdr_per_target_and_the_incoming_call() -> None:
    result = portsip.webhook(answered_cdr(), CTX)
    assert result.unmapped == ()
    assert types(result) == ["cdr.recorded"] * 2 + [
        "incoming_call.received",
        "incoming_call.dial_started",
        "incoming_call.dial_ringing",
        "incoming_call.dial_ended",
        "incoming_call.dial_started",
        "incoming_call.dial_ringing",
        "incoming_call.dial_answered",
        "incoming_call.dial_ended",
        "incoming_call.ended",
    ]
    assert {e["call_id"] for e in result.events} == {"900000000000000001"}


@pytest.mark.parametrize(
    ("target", "outcome"),
    [
        ({"status": "answered", "answered_time": "1767693640"}, "completed"),
        ({"status": "noanswer", "status_code": 487, "end_reason": "cancelled"}, "no_answer"),
        ({"status": "fail", "status_code": 486}, "busy"),
        ({"status": "fail", "status_code": "600"}, "busy"),
        ({"status": "fail", "status_code": 503}, "failed"),
        ({"status": "noanswer", "end_reason": "caller_disconnected"}, "canceled"),
        ({"end_reason": "None"}, "no_answer"),  # no status (older PBXs), never answered
        ({"answered_time": "1767693640"}, "completed"),
    ],
)
def test_target_outcome_table(target: dict[str, Any], outcome: str) -> None:
    body = answered_cdr()
    plain = {"answered_time": "0", "status_code": 0, "end_reason": "None", "talk_duration": "0"}
    base = {k: v for k, v in body["call_targets"][0].items() if k != "status"}
    body["call_targets"] = [base | plain | target]
    (ended,) = [
        e for e in portsip.webhook(body, CTX).events if e["type"] == "incoming_call.dial_ended"
    ]
    assert ended["outcome"] == outcome


@pytest.mark.parametrize(
    ("parent", "outcome"),
    [
        ({"call_status": "answered"}, "completed"),
        ({"call_status": "noanswer", "ended_reason": ""}, "no_answer"),
        ({"call_status": "noanswer", "ended_reason": "caller_disconnect"}, "caller_hung_up"),
        ({"call_status": "fail", "status_code": "503"}, "failed"),
        ({"call_status": "fail", "status_code": "486"}, "busy"),
        ({"call_status": None, "answered_time": "0"}, "no_answer"),
        ({"call_status": None, "answered_time": "1767693640"}, "completed"),
    ],
)
def test_call_status_table(parent: dict[str, Any], outcome: str) -> None:
    body = {k: v for k, v in (answered_cdr() | parent).items() if v is not None}
    (ended,) = [e for e in portsip.webhook(body, CTX).events if e["type"] == "incoming_call.ended"]
    assert ended["outcome"] == outcome


def test_end_reason_is_read_under_both_spellings() -> None:
    body = answered_cdr()
    target = body["call_targets"][1]
    target["ended_reason"] = target.pop("end_reason")
    cdr = [e for e in portsip.webhook(body, CTX).events if e["type"] == "cdr.recorded"][1]
    assert cdr["end_reason"] == "callee_disconnected"


def test_numbers_sent_as_numbers_or_strings_are_the_same() -> None:
    as_strings = portsip.webhook(answered_cdr(), CTX)
    body = answered_cdr()
    body["start_time"] = int(body["start_time"])
    body["call_targets"][1]["talk_duration"] = 61
    body["call_targets"][1]["status_code"] = "0"
    assert portsip.webhook(body, CTX) == as_strings


def test_missing_talk_duration_is_ended_minus_answered() -> None:
    body = answered_cdr()
    del body["call_targets"][1]["talk_duration"]
    cdr = [e for e in portsip.webhook(body, CTX).events if e["type"] == "cdr.recorded"][1]
    assert cdr["duration"] == 61  # 1767693701 - 1767693640


def test_target_cost_is_the_providers() -> None:
    body = answered_cdr()
    body["call_targets"][1]["cost"] = "0.75"
    cdr = [e for e in portsip.webhook(body, CTX).events if e["type"] == "cdr.recorded"][1]
    assert cdr["cost"] == "0.75"


def test_a_cdr_without_targets_is_the_parent_itself() -> None:
    body = answered_cdr() | {"call_targets": [], "direction": "out"}
    (cdr,) = portsip.webhook(body, CTX).events
    assert cdr["cdr_id"] == "900000000000000001-0"
    assert (cdr["callee"], cdr["duration"]) == ("6000", 61)


def test_an_extension_without_a_number_is_no_dial_attempt_but_its_cdr_stays() -> None:
    body = answered_cdr()
    body["call_targets"][0]["callee"] = "5000"  # an IVR: no user's phone
    result = portsip.webhook(body, CTX)
    (problem,) = result.unmapped
    assert (problem.code, problem.field) == (UNMAPPED_VALUE, "call_targets[0].callee")
    dial_ids = {e.get("dial_id") for e in result.events} - {None}
    assert dial_ids == {"900000000000000001-2"}
    assert types(result).count("cdr.recorded") == 2


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"did": "18800606"}, (INVALID_FIELD, "did")),
        ({"did": "+14155559999"}, (UNMAPPED_VALUE, "did")),
        ({"caller": "1888722"}, (INVALID_FIELD, "caller")),
        ({"call_status": "transferred"}, (UNMAPPED_VALUE, "call_status")),
    ],
)
def test_an_unmappable_incoming_call_keeps_its_cdrs(
    change: dict[str, Any], problem: tuple[str, str]
) -> None:
    result = portsip.webhook(answered_cdr() | change, CTX)
    assert types(result) == ["cdr.recorded", "cdr.recorded"]
    assert [(u.code, u.field) for u in result.unmapped] == [problem]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"not json", (NOT_PROVIDER_FORMAT, None)),
        (b"[1, 2]", (NOT_PROVIDER_FORMAT, None)),
        (b'{"CallSid": "CA1"}', (NOT_PROVIDER_FORMAT, None)),
        (b'{"event_type": "cdr_target_ringing"}', (UNKNOWN_EVENT, "event_type")),
        (b'{"event_type": "call_cdr"}', (MISSING_FIELD, "session_id")),
        (
            b'{"event_type": "call_cdr", "session_id": "1", "direction": "sideways"}',
            (UNMAPPED_VALUE, "direction"),
        ),
        (
            b'{"event_type": "call_cdr", "session_id": "1", "direction": "in", '
            b'"ended_time": "soon"}',
            (INVALID_FIELD, "ended_time"),
        ),
    ],
)
def test_bodies_that_cannot_be_mapped(body: bytes, problem: tuple[str, str | None]) -> None:
    assert only_problem(portsip.webhook_body(body, CTX)) == problem


def test_unknown_target_status_is_unmapped() -> None:
    body = answered_cdr()
    body["call_targets"][0]["status"] = "parked"
    result = portsip.webhook(body, CTX)
    assert [(u.code, u.field) for u in result.unmapped] == [
        (UNMAPPED_VALUE, "call_targets[0].status")
    ]


def call_log_item(**fields: Any) -> dict[str, Any]:
    item: dict[str, Any] = pf.load("portsip", "late_cost")["deliveries"][0]["body"]
    return dict(item, **fields)


def test_call_log_summary_alone_is_rated() -> None:
    (event,) = portsip.call_log(call_log_item(), CTX).events
    assert (event["sequence"], event["call_id"], event["cdr_id"]) == (
        0,
        "900000000000000005",
        "910000000000000005",
    )
    rows = pf.rows_of([event])["cdr"]
    # OUTBOUND_CALL, default outbound plan 60/60: 66 s -> 120 s billed * 1.3 c/min = 2.6000
    assert [(r["cost"], r["cost_source"]) for r in rows] == [(Decimal("2.6000"), "rated")]


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"session_id": ""}, (MISSING_FIELD, "session_id")),
        ({"direction": "SIDEWAYS"}, (INVALID_FIELD, "direction")),
        ({"duration": "a lot"}, (INVALID_FIELD, "duration")),
        ({"cost": -1}, (INVALID_FIELD, "cost")),
        ({"ended_at": "2026-01-10 15:01"}, (INVALID_FIELD, "ended_at")),
    ],
)
def test_call_log_records_that_cannot_be_mapped(
    fields: dict[str, Any], problem: tuple[str, str]
) -> None:
    assert only_problem(portsip.call_log(call_log_item(**fields), CTX)) == problem


def test_call_logs_page_maps_every_item_and_rejects_other_shapes() -> None:
    page = {"count": 2, "items": [call_log_item(), call_log_item(id="910000000000000006")]}
    assert len(portsip.call_logs_page(page, CTX).events) == 2
    assert only_problem(portsip.call_logs_page({"calls": []}, CTX)) == (NOT_PROVIDER_FORMAT, None)
