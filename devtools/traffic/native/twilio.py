"""The generator's calls as Twilio Programmable Voice webhooks (form posts, signed by the
sender): the voice webhook, each leg's status callbacks, and the answered leg's `<Dial
action>`.

The routing service dials with `<Dial answerOnBridge="true" action=...>` and one `<Number
statusCallback=...?user_id=...&escalation_rule_id=...>` per user, so the caller's leg stays
unanswered until a user answers and a caller who hangs up while it rings is `canceled`.
Twilio writes `Timestamp` in whole seconds (RFC 2822): every time is floored to the second.

Not expressible (skipped): PBX CDR calls; an outbound call ended `Low Balance` (no Twilio
status) or `Error` after it was answered (Twilio says `completed`). An outbound call's
`call_data` is not sent (a callback URL's query carries flat strings only).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from devtools.traffic.call import Call
from devtools.traffic.native.model import Encoded, Post, encodable, outbound_of, timeline

ACCOUNT_SID = "AC" + "5" * 32
RESOLUTION_MS = 1000
_SID = re.compile(r"^CA[0-9a-f]{32}$")
_PARENT_STATUS = {
    "completed": "completed",
    "no_answer": "no-answer",
    "busy": "busy",
    "failed": "failed",
    "caller_hung_up": "canceled",
}
_DIAL_STATUS = {
    "completed": "completed",
    "no_answer": "no-answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "canceled",
}
_OUTBOUND_STATUS = {"Missed Call": "no-answer", "Busy": "busy", "Error": "failed"}
_RULE_FIELDS = ("escalation_rule_id", "escalation_rule_order", "repeat_count")


def sid(generator_id: str) -> str:
    """A Twilio CallSid for a generator id (kept when it already is one)."""
    if _SID.match(generator_id):
        return generator_id
    return "CA" + hashlib.sha256(generator_id.encode()).hexdigest()[:32]


def timestamp(ms: int) -> str:
    return format_datetime(datetime.fromtimestamp(ms // 1000, UTC))


def encode(calls: Iterable[Call]) -> Encoded:
    out = Encoded()
    for call in encodable(calls, out, _problem):
        out.renamed[call.call_id] = sid(call.call_id)
        if call.kind == "incoming":
            out.posts.extend(_incoming(call, out.renamed))
        else:
            out.posts.extend(_outbound(call))
    return out


def _problem(call: Call) -> str | None:
    if call.kind == "cdr":
        return "PBX CDR (cdr.recorded): Twilio has no CDR webhook"
    if call.kind == "incoming" and _unordered_attempts(call):
        return (
            "dials with different rule fields started in one second: whole seconds lose their order"
        )
    if call.kind == "outbound":
        placed = outbound_of(call)
        if placed.status == "Low Balance":
            return "outbound call ended Low Balance: no Twilio CallStatus"
        if placed.status == "Error" and placed.answered_ms is not None:
            return "outbound call dropped after the answer: Twilio says completed"
    return None


def _unordered_attempts(call: Call) -> bool:
    """The call's latest attempt (its rule order and repeat count) is picked by time; dials
    started within one second are ordered by event id instead, so they must agree."""
    seen: dict[int, tuple[Any, ...]] = {}
    for ms, f in timeline(call):
        if f["type"] == "incoming_call.dial_started":
            rule = tuple(f.get(k) for k in _RULE_FIELDS)
            if seen.setdefault(ms // RESOLUTION_MS, rule) != rule:
                return True
    return False


def _form(call_sid: str, **fields: str) -> dict[str, str]:
    return {"AccountSid": ACCOUNT_SID, "CallSid": call_sid, "ApiVersion": "2010-04-01", **fields}


def _incoming(call: Call, renamed: dict[str, str]) -> list[Post]:
    parent = sid(call.call_id)
    posts: list[Post] = []
    caller = routing = ""
    children: dict[str, tuple[str, dict[str, str]]] = {}  # dial id -> (To, callback query)
    sequence: dict[str, int] = {}
    for ms, f in timeline(call):
        kind = f["type"]
        if kind == "incoming_call.received":
            caller, routing = f["caller_phone_number"], f["routing_phone_number"]
            form = _form(parent, From=caller, To=routing, Direction="inbound", CallStatus="ringing")
            posts.append(Post("voice", ms - ms % RESOLUTION_MS, form))
            continue
        if kind == "incoming_call.ended":
            status = _PARENT_STATUS[f["outcome"]]
            form = _form(parent, From=caller, To=routing, Direction="inbound", CallStatus=status)
            posts.append(_callback(form, ms, 1, {}))
            continue
        dial_id = f["dial_id"]
        child = renamed.setdefault(dial_id, sid(dial_id))
        if kind == "incoming_call.dial_started":
            query = {"user_id": f["user_id"]}
            query.update({k: str(f[k]) for k in _RULE_FIELDS if f.get(k) is not None})
            children[dial_id] = (f["user_phone_number"], query)
        to, query = children[dial_id]
        status = {
            "incoming_call.dial_started": "initiated",
            "incoming_call.dial_ringing": "ringing",
            "incoming_call.dial_answered": "in-progress",
        }.get(kind) or _DIAL_STATUS[f["outcome"]]
        form = _form(
            child,
            ParentCallSid=parent,
            From=caller,
            To=to,
            Direction="outbound-dial",
            CallStatus=status,
        )
        duration = f.get("billable_seconds")
        if status == "completed" and duration is not None:
            form["CallDuration"] = str(duration)
        seq = sequence[dial_id] = sequence.get(dial_id, -1) + 1
        posts.append(_callback(form, ms, seq, query))
        if status == "completed":
            posts.append(_dial_action(parent, child, ms, duration))
    return posts


def _callback(form: dict[str, str], ms: int, seq: int, query: dict[str, str]) -> Post:
    form = {
        **form,
        "Timestamp": timestamp(ms),
        "SequenceNumber": str(seq),
        "CallbackSource": "call-progress-events",
    }
    return Post("status", ms - ms % RESOLUTION_MS, form, query)


def _dial_action(parent: str, child: str, ms: int, duration: int | None) -> Post:
    """`<Dial action>` once the answered leg hangs up (the caller is still on the call)."""
    form = _form(parent, CallStatus="in-progress", DialCallSid=child, DialCallStatus="completed")
    if duration is not None:
        form["DialCallDuration"] = str(duration)
    return Post("dial-action", ms - ms % RESOLUTION_MS, form)


def _outbound(call: Call) -> list[Post]:
    leg = outbound_of(call)
    call_sid = sid(call.call_id)
    base = _form(call_sid, From=leg.from_number, To=leg.to_number, Direction="outbound-api")
    # The placing service puts the relation ids on the call's StatusCallback URL.
    query = dict(leg.relations)
    posts = [_callback({**base, "CallStatus": "initiated"}, leg.placed_ms, 0, query)]
    seq = 0
    if leg.answered_ms is not None:
        seq += 1
        posts.append(_callback({**base, "CallStatus": "in-progress"}, leg.answered_ms, seq, query))
    if leg.ended_ms is not None and leg.status is not None:
        seq += 1
        ended: dict[str, Any] = {**base}
        if leg.status == "Success":
            ended["CallStatus"] = "completed"
            if leg.billable is not None:
                ended["CallDuration"] = str(leg.billable)
        else:
            ended["CallStatus"] = _OUTBOUND_STATUS[leg.status]
        posts.append(_callback(ended, leg.ended_ms, seq, query))
    return posts
