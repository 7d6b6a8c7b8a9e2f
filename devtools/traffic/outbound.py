"""The outbound-call scenario: a notification call placed to a number, answered or not."""

from __future__ import annotations

import math
import random
from typing import Any

from devtools.traffic import status_messages
from devtools.traffic.call import Call, maybe_leave_open
from devtools.traffic.costs import report_cost
from devtools.traffic.values import phone, uuid4
from schemas.tables import OUTBOUND_RELATION_IDS

_CALL_DATA_MESSAGES = (
    "Incident #{n} created: API latency high",
    "Monitor {n} is down",
    "Scheduled maintenance starts in 15 minutes",
    "Alert {n} acknowledged?",
    "Press 1 to acknowledge incident #{n}",
    "Störung #{n}: Datenbank nicht erreichbar",
)


def play_outbound(call: Call, rng: random.Random, open_share: float) -> None:
    """Fill `call` with `placed` / `answered` / `ended` and maybe a late cost report."""
    _place(call, rng)
    te, talk = _answer_and_end(call, rng)
    maybe_leave_open(call, rng, open_share)
    if not call.open and rng.random() < 0.45:
        report_cost(call, rng, call.call_id, te, talk / 1000, 1.3)


def _place(call: Call, rng: random.Random) -> None:
    n = rng.randrange(1, 10_000)
    # free-form JSON the worker must keep as is, sometimes nested
    call_data: dict[str, Any] = {
        "message": rng.choice(_CALL_DATA_MESSAGES).format(n=n),
        "retry": rng.randint(0, 3),
    }
    if rng.random() < 0.3:
        call_data["meta"] = {
            "severity": rng.choice(("critical", "high", "low")),
            "ids": [n, n + 1],
            "nested": {"ok": rng.random() < 0.5, "ratio": 0.25},
        }
    # optional ids of what the call is about (incident, alert, team...)
    relations = {name: uuid4(rng) for name in rng.sample(OUTBOUND_RELATION_IDS, rng.randint(0, 5))}
    call.add(
        call.start_ms,
        "outbound_call.placed",
        to_number=phone(rng),
        from_number=rng.choice(call.project.caller_ids),
        call_data=call_data,
        **relations,
    )


def _answer_and_end(call: Call, rng: random.Random) -> tuple[int, int]:
    """Add `answered` (if it was) and `ended`; returns (end_ms, talk_ms)."""
    t = call.start_ms
    r = rng.random()
    extra: dict[str, Any] = {}
    talk = 0
    if r < 0.55:
        ta = t + rng.randint(3_000, 25_000)
        call.add(ta, "outbound_call.answered")
        talk = min(int(rng.lognormvariate(10.3, 0.9)), 1_800_000) + 1_000
        te = ta + talk
        status = "Success" if rng.random() < 0.95 else "Error"  # dropped mid-call
        if status == "Error":
            extra["status_message"] = rng.choice(status_messages.FAILED)
        if rng.random() < 0.6:
            extra["billable_seconds"] = math.ceil(talk / 1000)
    elif r < 0.77:
        te = t + rng.randint(20_000, 45_000)
        status = "Missed Call"
        if rng.random() < 0.4:
            extra["billable_seconds"] = 0
    elif r < 0.87:
        te = t + rng.randint(1_000, 5_000)
        status = "Busy"
        extra["status_message"] = rng.choice(status_messages.BUSY)
    elif r < 0.96:
        te = t + rng.randint(200, 4_000)
        status = "Error"
        extra["status_message"] = rng.choice(status_messages.FAILED)
    else:
        te = t + rng.randint(100, 800)
        status = "Low Balance"
        extra["status_message"] = "Project balance too low to place the call"
    call.add(te, "outbound_call.ended", status=status, **extra)
    return te, talk
