"""A plain valid event of any type for a call: the base that the invalid cases break."""

from __future__ import annotations

import random
from typing import Any

from devtools.traffic.call import Call
from devtools.traffic.values import phone, uuid4


def synthetic_event(rng: random.Random, call: Call, typ: str, ms: int) -> dict[str, Any]:
    """A valid event of `typ` for `call` at `ms`, with every field the contract needs."""
    obj: dict[str, Any] = {
        "event_id": uuid4(rng),
        "type": typ,
        "occurred_at": call.clock.fmt(ms, rng),
        "project_id": call.project.id,
        "call_id": call.call_id,
    }
    if call.source is not None:
        obj["source"] = call.source
    # drawn for every type so that the rng calls do not depend on `typ`
    user = rng.choice(call.project.users)
    policy = rng.choice(call.project.policies)
    dial_id = f"{call.call_id}-{rng.randint(1, 9)}"
    if typ == "incoming_call.received":
        obj.update(
            incoming_call_policy_id=policy.id,
            caller_phone_number=phone(rng),
            routing_phone_number=policy.routing_number,
        )
    elif typ == "incoming_call.dial_started":
        rule = policy.rules[0]
        obj.update(
            dial_id=dial_id,
            user_id=user.id,
            user_phone_number=user.phone,
            escalation_rule_id=rule.id,
            escalation_rule_order=rule.order,
            repeat_count=0,
        )
    elif typ in ("incoming_call.dial_ringing", "incoming_call.dial_answered"):
        obj["dial_id"] = dial_id
    elif typ == "incoming_call.dial_ended":
        obj.update(dial_id=dial_id, outcome="no_answer")
    elif typ == "incoming_call.ended":
        obj["outcome"] = "no_answer"
    elif typ == "outbound_call.placed":
        obj.update(
            to_number=phone(rng),
            from_number=rng.choice(call.project.caller_ids),
            call_data={"message": "Incident acknowledged?", "retry": 0},
            team_id=uuid4(rng),
        )
    elif typ == "outbound_call.ended":
        obj.update(status="Success", billable_seconds=12)
    elif typ == "call.cost_reported":
        obj.update(leg_id=call.call_id, cost_usd_cents=1.3, billable_seconds=42)
    elif typ == "cdr.recorded":
        obj.update(
            cdr_id=uuid4(rng),
            caller=phone(rng),
            callee=phone(rng),
            direction="INBOUND_CALL",
            started_at=call.clock.fmt(ms - 30_000, rng),
            ended_at=call.clock.fmt(ms, rng),
            duration=12,
        )
    return obj
