"""The generator's calls as FreeSWITCH `mod_json_cdr` posts: one CDR per leg, after it hung
up (values URL-encoded, as `encode-values` does by default).

An incoming call is an inbound A leg (`originate_disposition` = the call's result) and one
bridged B leg per dial (`originator` = the A leg's uuid; its `hangup_cause` says how it
ended); an outbound call is a leg FreeSWITCH originated (`direction` outbound). Times are µs.

Not expressible (skipped): PBX CDR calls; calls left open (a CDR is written at hangup); a
dial answered without an answer time (a B leg's `answer_uepoch` is its answer); an outbound
call ended `Low Balance`, or `Error` after it was answered (an answered leg is `Success`).
No escalation rule ids and no `call_data` / relation ids: a CDR carries no ringlog fields.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

import orjson

from devtools.traffic.call import Call
from devtools.traffic.native.model import (
    Encoded,
    Post,
    closed_incoming_problem,
    encodable,
    incoming_of,
    outbound_of,
)

_NAMESPACE = uuid.UUID("7b1f5a3e-4c2d-5e6f-8a9b-0c1d2e3f4a5b")
# The call's (A leg's) result: `originate_disposition`, the last bridge's result.
_DISPOSITION = {
    "completed": "SUCCESS",
    "no_answer": "NO_ANSWER",
    "busy": "USER_BUSY",
    "failed": "USER_NOT_REGISTERED",
    "caller_hung_up": "ORIGINATOR_CANCEL",
}
# A B leg's hangup_cause by its dial outcome (an answered leg clears normally).
_CAUSE = {
    "completed": "NORMAL_CLEARING",
    "no_answer": "NO_ANSWER",
    "busy": "USER_BUSY",
    "failed": "USER_NOT_REGISTERED",
    "canceled": "ORIGINATOR_CANCEL",
}
_OUTBOUND_CAUSE = {
    "Success": "NORMAL_CLEARING",
    "Missed Call": "NO_ANSWER",
    "Busy": "USER_BUSY",
    "Error": "NORMAL_TEMPORARY_FAILURE",
}


def leg_uuid(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "|".join(parts)))


def encode(calls: Iterable[Call]) -> Encoded:
    out = Encoded()
    for call in encodable(calls, out, _problem):
        a_leg = out.renamed[call.call_id] = leg_uuid(call.call_id)
        if call.kind == "outbound":
            out.posts.append(_outbound(call, a_leg))
            continue
        incoming = incoming_of(call)
        for dial in incoming.dials:
            b_leg = out.renamed[dial.dial_id] = leg_uuid(call.call_id, dial.dial_id)
            assert dial.ended_ms is not None and dial.outcome is not None  # closed calls only
            billsec = dial.billable
            if billsec is None:
                billsec = _billsec(dial.answered_ms, dial.ended_ms)
            variables = _times(dial.started_ms, dial.answered_ms, dial.ended_ms, billsec)
            variables.update(
                direction="outbound",
                uuid=b_leg,
                originator=a_leg,
                hangup_cause=_CAUSE[dial.outcome],
            )
            out.posts.append(_cdr(variables, incoming.caller, dial.phone))
        answered = incoming.answered
        assert incoming.end_ms is not None and incoming.outcome is not None
        answered_ms = answered.answered_ms if answered else None
        variables = _times(
            incoming.start_ms,
            answered_ms,
            incoming.end_ms,
            _billsec(answered_ms, incoming.end_ms),
        )
        disposition = _DISPOSITION[incoming.outcome]
        variables.update(
            direction="inbound",
            uuid=a_leg,
            originate_disposition=disposition,
            hangup_cause="NORMAL_CLEARING" if answered else disposition,
        )
        out.posts.append(_cdr(variables, incoming.caller, incoming.routing))
    return out


def _problem(call: Call) -> str | None:
    if call.kind == "outbound":
        leg = outbound_of(call)
        if call.open:
            return "left open (no end): a CDR exists only once the call ended"
        if leg.status == "Low Balance":
            return "outbound call ended Low Balance: no hangup cause says it"
        if leg.status == "Error" and leg.answered_ms is not None:
            return "outbound call dropped after the answer: an answered leg is Success"
        return None
    return closed_incoming_problem(call, "")


def _billsec(answered_ms: int | None, ended_ms: int) -> int:
    return 0 if answered_ms is None else math.ceil((ended_ms - answered_ms) / 1000)


def _times(start_ms: int, answered_ms: int | None, end_ms: int, billsec: int) -> dict[str, str]:
    answer = answered_ms * 1000 if answered_ms is not None else 0
    return {
        "start_epoch": str(start_ms // 1000),
        "start_uepoch": str(start_ms * 1000),
        "answer_epoch": str(answer // 1_000_000),
        "answer_uepoch": str(answer),
        "end_epoch": str(end_ms // 1000),
        "end_uepoch": str(end_ms * 1000),
        "duration": str(math.ceil((end_ms - start_ms) / 1000)),
        "billsec": str(billsec),
    }


def _cdr(variables: dict[str, str], caller: str, destination: str) -> Post:
    """The CDR body as mod_json_cdr posts it; the leg's first caller profile names its
    parties (the dialled endpoint is the user's number: a gateway dial)."""
    encoded = {k: quote(v, safe="") for k, v in variables.items()}
    profile = {
        "caller_id_number": quote(caller, safe=""),
        "destination_number": quote(destination, safe=""),
        "uuid": variables["uuid"],
        "context": "public",
    }
    body: dict[str, Any] = {
        "switchname": "fs-sim",
        "channel_data": {"state": "CS_REPORTING", "direction": variables["direction"]},
        "variables": encoded,
        "callflow": [{"profile_index": "1", "caller_profile": profile}],
    }
    end_ms = int(variables["end_uepoch"]) // 1000
    return Post("cdr", end_ms, body=orjson.dumps(body))


def _outbound(call: Call, leg: str) -> Post:
    placed = outbound_of(call)
    assert placed.ended_ms is not None and placed.status is not None
    billsec = placed.billable
    if billsec is None:
        billsec = _billsec(placed.answered_ms, placed.ended_ms)
    variables = _times(placed.placed_ms, placed.answered_ms, placed.ended_ms, billsec)
    variables.update(direction="outbound", uuid=leg, hangup_cause=_OUTBOUND_CAUSE[placed.status])
    return _cdr(variables, placed.from_number, placed.to_number)
