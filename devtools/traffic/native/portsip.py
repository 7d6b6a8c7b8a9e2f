"""The generator's incoming calls as PortSIP `call_cdr` webhooks: one per call, after it
ended, the parent (the caller and the DID) with one `call_targets` entry per dial.

Numbers and times are strings, as PortSIP sends them; times are whole Unix seconds, so every
time is floored to the second. A target's outcome is told by `status`, `status_code` and
`end_reason` (docs/providers/portsip.md): a busy target is `fail` + 486, a cancelled one
`noanswer` + `caller_disconnect`.

Not expressible (skipped): outbound calls and PBX CDR calls (PortSIP reports them as CDRs
only, not as call logs); calls left open (the CDR is sent at the end); a dial answered
without an answer time nor a talk time (PortSIP would report 0 s of talk). No escalation rule
ids: PortSIP does not know ringlog's rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson

from devtools.traffic.call import Call
from devtools.traffic.native.model import (
    Dial,
    Encoded,
    Post,
    closed_incoming_problem,
    encodable,
    incoming_of,
)

RESOLUTION_MS = 1000
# call outcome -> (call_status, status_code, ended_reason)
_PARENT = {
    "completed": ("answered", "200", "callee_disconnected"),
    "no_answer": ("noanswer", "408", "timeout"),
    "caller_hung_up": ("noanswer", "487", "caller_disconnect"),
    "busy": ("fail", "486", "busy"),
    "failed": ("fail", "503", "service_unavailable"),
}
# dial outcome -> (status, status_code, end_reason)
_TARGET = {
    "completed": ("answered", 200, "callee_disconnected"),
    "no_answer": ("noanswer", 408, "timeout"),
    "canceled": ("noanswer", 487, "caller_disconnect"),
    "busy": ("fail", 486, "busy"),
    "failed": ("fail", 503, "service_unavailable"),
}


def session_id(generator_id: str) -> str:
    """PortSIP's numeric session id for a generator call id."""
    return str(int(hashlib.sha256(generator_id.encode()).hexdigest()[:15], 16))


def _unix(ms: int | None) -> str:
    return "0" if ms is None else str(ms // 1000)


def encode(calls: Iterable[Call]) -> Encoded:
    out = Encoded()
    for call in encodable(calls, out, _problem):
        session = out.renamed[call.call_id] = session_id(call.call_id)
        incoming = incoming_of(call)
        targets = []
        for n, dial in enumerate(incoming.dials, start=1):
            out.renamed[dial.dial_id] = f"{session}-{n}"  # the normalizer's dial id
            targets.append(_target(dial, incoming.caller))
        assert incoming.end_ms is not None and incoming.outcome is not None
        answered = incoming.answered
        status, code, reason = _PARENT[incoming.outcome]
        payload: dict[str, Any] = {
            "event_type": "call_cdr",
            "session_id": session,
            "call_id": f"{session}@pbx.example.com",  # the SIP Call-ID
            "direction": "in",
            "caller": incoming.caller,
            "caller_domain": "sip.example.net",
            "callee": incoming.routing,
            "callee_domain": "pbx.example.com",
            "did": incoming.routing,
            "start_time": _unix(incoming.start_ms),
            "answered_time": _unix(answered.answered_ms if answered else None),
            "ended_time": _unix(incoming.end_ms),
            "call_status": status,
            "status_code": code,
            "ended_reason": reason,
            "call_targets": targets,
        }
        out.posts.append(Post("call-cdr", incoming.end_ms, body=orjson.dumps(payload)))
    return out


def _problem(call: Call) -> str | None:
    problem = closed_incoming_problem(call, "PortSIP reports it as a CDR, not a call log")
    if problem == "a dial answered without an answer time":
        # an answered target without answered_time says its talk time, if it knows one
        if all(d.billable is not None for d in incoming_of(call).dials if d.answered_ms is None):
            return None
        return "a dial answered without an answer time nor a talk time"
    return problem


def _target(dial: Dial, caller: str) -> dict[str, Any]:
    assert dial.outcome is not None and dial.ended_ms is not None
    status, code, reason = _TARGET[dial.outcome]
    target: dict[str, Any] = {
        "caller": caller,
        "callee": dial.phone,
        "destination": f"sip:{dial.phone}@pbx.example.com",
        "start_time": _unix(dial.started_ms),
        "ring_time": _unix(dial.ringing_ms),
        "answered_time": _unix(dial.answered_ms),
        "ended_time": _unix(dial.ended_ms),
        "status": status,
        "status_code": code,
        "end_reason": reason,
        "call_type": "normal_call",
    }
    if dial.outcome == "completed" and dial.billable is not None:
        target["talk_duration"] = str(dial.billable)
    return target
