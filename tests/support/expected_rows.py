"""Hand-computed rows of the builder scenarios (tests/support/builders.py) under
tests/support/fixtures/rates.yaml.

Every number here was worked out from the contract by hand; the comments show the arithmetic.
Shared by the pure tests and the pipeline tests, so both assert the same exact rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from tests.support.builders import ALICE, BOB, POLICY, PROJECT, RULE, T0
from worker.core.correlation import row_id


def t(seconds: float) -> Any:
    from datetime import timedelta

    return T0 + timedelta(seconds=seconds)


def D(text: str) -> Decimal:
    return Decimal(text)


def parent(call: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": row_id("incoming_call_log", PROJECT, call),
        "project_id": PROJECT,
        "incoming_call_policy_id": POLICY,
        "caller_phone_number": "+447700900123",
        "routing_phone_number": "+15550100",
        "call_provider_call_id": call,
        "status_message": None,
        "answered_at": None,
        "answered_by_user_id": None,
        "started_at": t(0),
    }
    row.update(overrides)
    return row


def item(call: str, dial_id: str, **overrides: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": row_id("incoming_call_log_item", PROJECT, call, dial_id),
        "project_id": PROJECT,
        "incoming_call_log_id": row_id("incoming_call_log", PROJECT, call),
        "dial_id": dial_id,
        "incoming_call_policy_escalation_rule_id": RULE,
        "user_id": ALICE,
        "user_phone_number": "+15550111",
        "status_message": None,
        "answered_at": None,
        "is_answered": False,
        "is_deleted": 0,
        "talk_duration_in_seconds": 0,
        "call_cost_in_usd_cents": D("0.0000"),
        "cost_source": "rated",
    }
    row.update(overrides)
    return row


EXPECTED: dict[str, dict[str, list[dict[str, Any]]]] = {
    "answered_on_second_attempt": {
        "incoming_call_log": [
            parent(
                "call-2nd",
                status="Completed",
                call_duration_in_seconds=103,  # 102.5 s rounded up
                incoming_call_cost_in_usd_cents=D("1.9592"),  # 0.5 + 0.85 * 103 / 60
                outgoing_call_cost_in_usd_cents=D("2.6000"),
                call_cost_in_usd_cents=D("4.5592"),
                answered_at=t(41.2),
                ended_at=t(102.5),
                answered_by_user_id=BOB,
                current_escalation_rule_order=2,
                repeat_count=0,
                dial_attempts=2,
            )
        ],
        "incoming_call_log_item": [
            item(
                "call-2nd",
                "call-2nd-1",
                status="NoAnswer",
                status_message="no answer",
                dial_duration_in_seconds=30,
                started_at=t(1),
                ended_at=t(31),
            ),
            item(
                "call-2nd",
                "call-2nd-2",
                status="Completed",
                user_id=BOB,
                user_phone_number="+15550222",
                dial_duration_in_seconds=71,
                talk_duration_in_seconds=61,  # 102.2 - 41.2
                call_cost_in_usd_cents=D("2.6000"),  # 61 s -> 120 s billed at 1.3 c/min
                started_at=t(31.2),
                answered_at=t(41.2),
                ended_at=t(102.2),
                is_answered=True,
            ),
        ],
    },
    "nobody_answers": {
        "incoming_call_log": [
            parent(
                "call-none",
                routing_phone_number="+442071838750",
                status="NoAnswer",
                status_message="no one answered",
                call_duration_in_seconds=44,
                incoming_call_cost_in_usd_cents=D("12.0000"),  # 44 s -> 60 s at 12 c/min
                outgoing_call_cost_in_usd_cents=D("0.0000"),
                call_cost_in_usd_cents=D("12.0000"),
                ended_at=t(44),
                current_escalation_rule_order=1,
                repeat_count=1,
                dial_attempts=2,
            )
        ],
        "incoming_call_log_item": [
            item(
                "call-none",
                "call-none-1",
                status="Busy",
                dial_duration_in_seconds=20,
                started_at=t(1),
                ended_at=t(21),
            ),
            item(
                "call-none",
                "call-none-2",
                status="Failed",
                status_message="503",
                dial_duration_in_seconds=20,
                started_at=t(21.5),
                ended_at=t(41.5),
            ),
        ],
    },
    "caller_hangs_up": {
        "incoming_call_log": [
            parent(
                "call-hangup",
                status="CallerHungUp",
                call_duration_in_seconds=9,
                incoming_call_cost_in_usd_cents=D("0.6275"),  # 0.5 + 0.85 * 9 / 60
                outgoing_call_cost_in_usd_cents=D("0.0000"),
                call_cost_in_usd_cents=D("0.6275"),
                ended_at=t(9),
                current_escalation_rule_order=1,
                repeat_count=0,
                dial_attempts=1,
            )
        ],
        "incoming_call_log_item": [
            item(
                "call-hangup",
                "call-hangup-1",
                status="CallerHungUp",
                dial_duration_in_seconds=9,  # 8.001 s rounds up
                started_at=t(1),
                ended_at=t(9.001),
            ),
        ],
    },
    "outbound_call": {
        "call_log": [
            {
                "id": row_id("call_log", PROJECT, "CA-out-1"),
                "project_id": PROJECT,
                "call_provider_call_id": "CA-out-1",
                "to_number": "+4915550333",
                "from_number": "+15550100",
                "call_data": {"message": "Incident #7", "retry": 1},
                "status": "Success",
                "status_message": "completed",
                "call_duration_in_seconds": 45,  # 50.4 - 5.5 = 44.9 s, rounded up
                "call_cost_in_usd_cents": D("1.1375"),  # 0.5 + 0.85 * 45 / 60
                "cost_source": "rated",
                "user_id": ALICE,
                "team_id": None,
                "incident_id": "23ec7c0c-5a3a-401c-ab11-f5e05646aa7a",
                "alert_id": None,
                "monitor_id": None,
                "scheduled_maintenance_id": None,
                "status_page_id": None,
                "status_page_announcement_id": None,
                "on_call_duty_policy_id": None,
                "on_call_duty_policy_escalation_rule_id": None,
                "on_call_duty_policy_schedule_id": None,
                "started_at": t(0),
                "answered_at": t(5.5),
                "ended_at": t(50.4),
            }
        ]
    },
    "cdr_record": {
        "cdr": [
            {
                "id": row_id("cdr", PROJECT, "cdr-1"),
                "project_id": PROJECT,
                "session_id": "pbx-77",
                "cdr_id": "cdr-1",
                "caller": "101",
                "caller_domain": None,
                "caller_display_name": None,
                "callee": "+4915550444",
                "callee_domain": None,
                "callee_display_name": None,
                "started_at": t(0),
                "rang_at": t(1),
                "answered_at": None,
                "ended_at": t(30),
                "sip_call_id": None,
                "direction": "OUTBOUND_CALL",
                "end_reason": "CALLER_DISCONNECTED",
                "reroute_reason": None,
                "status_code": 200,
                "destination": None,
                "outbound_caller_id": None,
                "did_cid": None,
                "trunk": "trunk-1",
                "duration": 45,
                "cost": D("1.1375"),
                "billed_account": None,
                "service_number": None,
                "user_data": None,
                "cost_source": "rated",
            },
            {
                "id": row_id("cdr", PROJECT, "cdr-2"),
                "project_id": PROJECT,
                "session_id": "pbx-77",
                "cdr_id": "cdr-2",
                "caller": "101",
                "caller_domain": None,
                "caller_display_name": None,
                "callee": "102",
                "callee_domain": None,
                "callee_display_name": None,
                "started_at": None,
                "rang_at": None,
                "answered_at": None,
                "ended_at": None,
                "sip_call_id": None,
                "direction": "EXTENSION_CALL",
                "end_reason": None,
                "reroute_reason": None,
                "status_code": None,
                "destination": None,
                "outbound_caller_id": None,
                "did_cid": None,
                "trunk": None,
                "duration": 20,
                "cost": D("0.7500"),
                "billed_account": None,
                "service_number": None,
                "user_data": None,
                "cost_source": "provider",
            },
            {
                "id": row_id("cdr", PROJECT, "cdr-3"),
                "project_id": PROJECT,
                "session_id": "pbx-77",
                "cdr_id": "cdr-3",
                "caller": "101",
                "caller_domain": None,
                "caller_display_name": None,
                "callee": "103",
                "callee_domain": None,
                "callee_display_name": None,
                "started_at": None,
                "rang_at": None,
                "answered_at": None,
                "ended_at": None,
                "sip_call_id": None,
                "direction": "EXTENSION_CALL",
                "end_reason": None,
                "reroute_reason": None,
                "status_code": None,
                "destination": None,
                "outbound_caller_id": None,
                "did_cid": None,
                "trunk": None,
                "duration": 20,
                "cost": None,  # extension calls are not rated
                "billed_account": None,
                "service_number": None,
                "user_data": None,
                "cost_source": None,
            },
        ]
    },
    "late_cost_report": {
        "incoming_call_log": [
            parent(
                "call-late",
                status="Completed",
                call_duration_in_seconds=65,
                incoming_call_cost_in_usd_cents=D("1.4208"),  # 0.5 + 0.85 * 65 / 60
                outgoing_call_cost_in_usd_cents=D("3.1416"),  # the provider's 3.14159
                call_cost_in_usd_cents=D("4.5624"),
                answered_at=t(3),
                ended_at=t(64.5),
                answered_by_user_id=ALICE,
                current_escalation_rule_order=1,
                repeat_count=0,
                dial_attempts=1,
            )
        ],
        "incoming_call_log_item": [
            item(
                "call-late",
                "call-late-1",
                status="Completed",
                dial_duration_in_seconds=63,
                talk_duration_in_seconds=60,  # the cost report's billable_seconds
                call_cost_in_usd_cents=D("3.1416"),
                cost_source="provider",
                started_at=t(1),
                answered_at=t(3),
                ended_at=t(64),
                is_answered=True,
            ),
        ],
    },
}

WALL_CLOCK = ("ingested_at",)
EVENT_TIME_AUDIT = ("created_at", "updated_at", "version")


def comparable(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with the audit columns dropped and values normalised for comparison."""
    import orjson

    out: dict[str, Any] = {}
    for key, value in row.items():
        if key in WALL_CLOCK or key in EVENT_TIME_AUDIT or key.startswith("_"):
            continue
        if key == "call_data" and isinstance(value, str):
            value = orjson.loads(value)
        elif isinstance(value, uuid.UUID):
            value = str(value)  # ClickHouse returns UUID columns as uuid.UUID
        out[key] = value
    return out
