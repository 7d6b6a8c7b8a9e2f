"""The PBX scenario: one `cdr.recorded` per call, with PortSIP field names, after it ended."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from devtools.traffic.call import Call
from devtools.traffic.costs import cost_value
from devtools.traffic.values import digit_id, hex_id, phone, uuid4

CDR_DIRECTIONS = ("INBOUND_CALL", "OUTBOUND_CALL", "EXTENSION_CALL", "INBOUND_OUTBOUND_CALL")

# fields a PBX may leave out of a CDR
_OPTIONAL_FIELDS = ("caller_display_name", "sip_call_id", "trunk", "billed_account", "user_data")


@dataclass(frozen=True, slots=True)
class _Timing:
    rang_ms: int
    answered_ms: int | None  # None: not answered
    ended_ms: int
    duration: int  # billed seconds
    status_code: int
    end_reason: str


def record_cdr(call: Call, rng: random.Random) -> None:
    """Add the call's CDR, sent a few seconds after the call ended."""
    direction, caller, callee = _parties(rng)
    t0 = call.start_ms
    timing = _timing(rng, t0)

    def ts(ms: int) -> str:
        return call.clock.fmt(ms, rng)

    ans = timing.answered_ms
    rec: dict[str, Any] = {
        # PBXs number their CDRs in their own ways: a UUID or a plain number
        "cdr_id": uuid4(rng) if rng.random() < 0.6 else digit_id(rng, 9).lstrip("0") + "7",
        "caller": caller,
        "caller_domain": "pbx.example.com",
        "caller_display_name": rng.choice(("Jürgen Müller", "Front desk", "Ana López", "")),
        "callee": callee,
        "callee_domain": rng.choice(("sip.example.net", "pbx.example.com")),
        "callee_display_name": rng.choice(("Helpdesk", "On-call", "Support")),
        "started_at": ts(t0),
        "rang_at": ts(timing.rang_ms) if rng.random() < 0.85 else "",
        "answered_at": ts(ans) if ans is not None else "",
        "ended_at": ts(timing.ended_ms),
        "sip_call_id": f"{hex_id(rng, 16)}@10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}",
        "direction": direction,
        "end_reason": timing.end_reason,
        # free text: PBXs send values outside their own enums
        "reroute_reason": rng.choice(("", "FORWARD_BUSY", "NO_ANSWER", "dnd-override-custom")),
        "status_code": timing.status_code,
        "destination": callee,
        "outbound_caller_id": rng.choice(call.project.caller_ids),
        "did_cid": phone(rng),
        "trunk": rng.choice(("trunk-eu-1", "trunk-us-2", "sip-trunk-au")),
        "duration": timing.duration,
        "billed_account": f"acct-{rng.randint(1000, 9999)}",
        "service_number": phone(rng),
        "user_data": rng.choice(("", "queue=support", '{"ticket": 4711}')),
    }
    if rng.random() < 0.4:
        rec["cost"] = cost_value(rng, timing.duration, 1.1)
    for name in _OPTIONAL_FIELDS:
        if rng.random() < 0.15:
            del rec[name]
    call.add(timing.ended_ms + rng.randint(200, 3_000), "cdr.recorded", **rec)


def _parties(rng: random.Random) -> tuple[str, str, str]:
    """(direction, caller, callee): extensions are 3-digit numbers, the rest E.164."""
    direction = rng.choices(CDR_DIRECTIONS, weights=(40, 35, 15, 10))[0]
    ext = f"{rng.randint(100, 199)}"
    if direction == "EXTENSION_CALL":
        caller, callee = ext, f"{rng.randint(200, 299)}"
    elif direction == "INBOUND_CALL":
        caller, callee = phone(rng), phone(rng)
    else:
        caller, callee = (ext if rng.random() < 0.5 else phone(rng)), phone(rng)
    return direction, caller, callee


def _timing(rng: random.Random, t0: int) -> _Timing:
    rang = t0 + rng.randint(100, 1_500)
    if rng.random() < 0.7:
        ans = rang + rng.randint(2_000, 20_000)
        talk = int(rng.lognormvariate(10.5, 1.0)) + 1_000
        end_reason = rng.choice(("BYE", "caller hangup", "callee hangup"))
        return _Timing(rang, ans, ans + talk, math.ceil(talk / 1000), 200, end_reason)
    end = rang + rng.randint(5_000, 40_000)
    status_code, end_reason = rng.choice(
        ((408, "timeout"), (486, "busy"), (487, "cancelled"), (503, "unavailable"))
    )
    return _Timing(rang, None, end, 0, status_code, end_reason)
