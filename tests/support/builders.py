"""Builders of contract events for tests: readable scenarios, exact bytes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from worker.core.decode import ValidEvent, decode
from worker.core.rates import RatePlan, load_rate_plan

PROJECT = "1fb17c23-90c1-42cf-93ac-94af0f21ddb6"
POLICY = "49eb0d00-e6c9-411a-ad60-6a82ab5e7b10"
RULE = "b91148e8-f7a0-4efe-ad29-c39aa50fccb1"
ALICE = "1e2a2c05-b127-413f-be0b-3177a247e4e1"
BOB = "604ea2ff-af50-4de3-a329-cfd3606de4eb"
T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
RATES_FILE = Path(__file__).parent / "fixtures" / "rates.yaml"

_ids = itertools.count(1)


def test_rates() -> RatePlan:
    return load_rate_plan(RATES_FILE)


def at(seconds: float) -> str:
    """T0 + seconds as RFC 3339 (millisecond precision, Z)."""
    return (
        (T0 + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def event(type_: str, call_id: str, t: float, **fields: Any) -> dict[str, Any]:
    return {
        "event_id": fields.pop("event_id", f"evt-{next(_ids)}"),
        "type": type_,
        "occurred_at": at(t),
        "project_id": fields.pop("project_id", PROJECT),
        "call_id": call_id,
        "source": "test",
        **fields,
    }


def encode(ev: dict[str, Any]) -> tuple[bytes, bytes]:
    """(key, value) as a producer would send them."""
    return str(ev["call_id"]).encode(), orjson.dumps(ev)


def valid(ev: dict[str, Any]) -> ValidEvent:
    key, value = encode(ev)
    decoded = decode(key, value)
    assert isinstance(decoded, ValidEvent), decoded
    return decoded


def received(call: str, t: float, routing: str = "+15550100", **kw: Any) -> dict[str, Any]:
    return event(
        "incoming_call.received",
        call,
        t,
        incoming_call_policy_id=POLICY,
        caller_phone_number="+447700900123",
        routing_phone_number=routing,
        **kw,
    )


def dial_started(
    call: str, dial: str, t: float, user: str = ALICE, phone: str = "+15550111", **kw: Any
) -> dict[str, Any]:
    return event(
        "incoming_call.dial_started",
        call,
        t,
        dial_id=dial,
        user_id=user,
        user_phone_number=phone,
        escalation_rule_id=RULE,
        **kw,
    )


def dial(type_: str, call: str, dial_id: str, t: float, **kw: Any) -> dict[str, Any]:
    return event(f"incoming_call.dial_{type_}", call, t, dial_id=dial_id, **kw)


def ended(call: str, t: float, outcome: str, **kw: Any) -> dict[str, Any]:
    return event("incoming_call.ended", call, t, outcome=outcome, **kw)


def cost(call: str, leg: str, t: float, cents: Any, **kw: Any) -> dict[str, Any]:
    return event("call.cost_reported", call, t, leg_id=leg, cost_usd_cents=cents, **kw)


# -- scenarios (used by the pure tests and by the pipeline tests on Kafka + chDB) ----------


def answered_on_second_attempt(call: str = "call-2nd") -> list[dict[str, Any]]:
    """Alice does not answer (30 s ring), Bob answers after 10 s and talks 61 s."""
    return [
        received(call, 0),
        dial_started(call, f"{call}-1", 1, escalation_rule_order=1, repeat_count=0),
        dial("ringing", call, f"{call}-1", 1.5),
        dial("ended", call, f"{call}-1", 31, outcome="no_answer", status_message="no answer"),
        dial_started(
            call,
            f"{call}-2",
            31.2,
            user=BOB,
            phone="+15550222",
            escalation_rule_order=2,
            repeat_count=0,
        ),
        dial("ringing", call, f"{call}-2", 31.5),
        dial("answered", call, f"{call}-2", 41.2),
        dial("ended", call, f"{call}-2", 102.2, outcome="completed"),
        ended(call, 102.5, "completed"),
    ]


def nobody_answers(call: str = "call-none") -> list[dict[str, Any]]:
    return [
        received(call, 0, routing="+442071838750"),
        dial_started(call, f"{call}-1", 1, escalation_rule_order=1, repeat_count=0),
        dial("ended", call, f"{call}-1", 21, outcome="busy"),
        dial_started(call, f"{call}-2", 21.5, escalation_rule_order=1, repeat_count=1),
        dial("ended", call, f"{call}-2", 41.5, outcome="failed", status_message="503"),
        ended(call, 44.0, "no_answer", status_message="no one answered"),
    ]


def caller_hangs_up(call: str = "call-hangup") -> list[dict[str, Any]]:
    return [
        received(call, 0),
        dial_started(call, f"{call}-1", 1, escalation_rule_order=1, repeat_count=0),
        dial("ringing", call, f"{call}-1", 1.2),
        dial("ended", call, f"{call}-1", 9.001, outcome="canceled"),
        ended(call, 9.0, "caller_hung_up"),
    ]


def outbound_call(call: str = "CA-out-1") -> list[dict[str, Any]]:
    return [
        event(
            "outbound_call.placed",
            call,
            0,
            to_number="+4915550333",
            from_number="+15550100",
            call_data={"message": "Incident #7", "retry": 1},
            incident_id="23ec7c0c-5a3a-401c-ab11-f5e05646aa7a",
            user_id=ALICE,
        ),
        event("outbound_call.answered", call, 5.5),
        event("outbound_call.ended", call, 50.4, status="Success", status_message="completed"),
    ]


def cdr_record(call: str = "pbx-77") -> list[dict[str, Any]]:
    return [
        event(
            "cdr.recorded",
            call,
            100,
            cdr_id="cdr-1",
            caller="101",
            callee="+4915550444",
            direction="OUTBOUND_CALL",
            started_at=at(0),
            rang_at=at(1),
            answered_at="",
            ended_at=at(30),
            status_code=200,
            duration=45,
            end_reason="CALLER_DISCONNECTED",
            trunk="trunk-1",
        ),
        event(
            "cdr.recorded",
            call,
            101,
            cdr_id="cdr-2",
            caller="101",
            callee="102",
            direction="EXTENSION_CALL",
            duration=20,
            cost="0.75",
        ),
        event(
            "cdr.recorded",
            call,
            102,
            cdr_id="cdr-3",
            caller="101",
            callee="103",
            direction="EXTENSION_CALL",
            duration=20,
        ),
    ]


def late_cost_report(call: str = "call-late") -> list[dict[str, Any]]:
    """Answered call whose dial leg gets a provider cost ten minutes after it ended."""
    return [
        received(call, 0),
        dial_started(call, f"{call}-1", 1, escalation_rule_order=1, repeat_count=0),
        dial("answered", call, f"{call}-1", 3),
        dial("ended", call, f"{call}-1", 64, outcome="completed"),
        ended(call, 64.5, "completed"),
        cost(call, f"{call}-1", 664.5, "3.14159", billable_seconds=60),
    ]


def amended(call: str, dial_id: str, t: float, **fields: Any) -> dict[str, Any]:
    """A manual correction of one item, as the query API publishes it (source = api)."""
    return event("incoming_call.item_amended", call, t, dial_id=dial_id, source="api", **fields)


def deleted(call: str, dial_id: str, t: float, **kw: Any) -> dict[str, Any]:
    """A manual deletion of one item, as the query API publishes it (source = api)."""
    return event("incoming_call.item_deleted", call, t, dial_id=dial_id, source="api", **kw)
