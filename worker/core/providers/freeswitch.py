"""FreeSWITCH `mod_json_cdr` CDRs -> canonical events (docs/providers/freeswitch.md).

One CDR describes one leg, whole (FreeSWITCH posts it after the leg's hangup), so each CDR
maps on its own, with no state, and a retried POST gives the same events (same ids):

* a leg with the `originator` variable (set by originate/bridge to the A-leg's uuid) is a
  dialled B leg: `dial_started`, `dial_answered` (if answered), `dial_ended` on the call
  `originator`, `dial_id` = its uuid;
* else an `inbound` leg is the A leg of an incoming call (`call_id` = its uuid):
  `incoming_call.received` and `incoming_call.ended`;
* else an `outbound` leg is a call FreeSWITCH placed itself (API originate):
  `outbound_call.placed`, `outbound_call.answered` (if answered), `outbound_call.ended`.

Times are `*_uepoch` (µs since the epoch, UTC; "0" = the step never happened). Values are
URL-encoded by mod_json_cdr's default `encode-values`, so each one is decoded before use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final
from urllib.parse import unquote

import orjson

from worker.core.providers.base import (
    INVALID_FIELD,
    MISSING_FIELD,
    NOT_PROVIDER_FORMAT,
    UNMAPPED_VALUE,
    Normalized,
    ProviderContext,
    Unmapped,
    event_id,
)
from worker.core.providers.hangup_causes import unanswered_outcome
from worker.core.providers.provider_times import from_epoch_micros, rfc3339

SOURCE: Final = "freeswitch"

# A-leg result (its `originate_disposition`, the last bridge's result, else its own
# `hangup_cause`) -> `incoming_call.ended` outcome, when no leg of the call answered it.
_CALL_OUTCOME_OF_DIAL: Final = {
    "no_answer": "no_answer",
    "busy": "busy",
    "failed": "failed",
    "canceled": "caller_hung_up",
}
# Normal clearing of an A leg: it was answered (by a bridge or an application) and ended.
_NORMAL_CAUSES: Final = frozenset({"NORMAL_CLEARING", "NORMAL_UNSPECIFIED", "SUCCESS"})
# OneUptime's CallStatus for a call FreeSWITCH placed, by the dial outcome of its leg.
_OUTBOUND_STATUS: Final = {
    "no_answer": "Missed Call",
    "canceled": "Missed Call",
    "busy": "Busy",
    "failed": "Error",
}


@dataclass(frozen=True, slots=True)
class LegTimes:
    started: datetime
    answered: datetime | None
    ended: datetime


def parse_cdr(body: bytes | str) -> Mapping[str, Any] | Unmapped:
    """The JSON body of a `mod_json_cdr` POST, or why it is not one."""
    try:
        data: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        # FreeSWITCH prints `nan` for call-quality figures of silent legs: not JSON.
        return Unmapped(NOT_PROVIDER_FORMAT, f"CDR body is not valid JSON: {exc}")
    if not isinstance(data, dict) or not isinstance(data.get("variables"), dict):
        return Unmapped(
            NOT_PROVIDER_FORMAT, "not a mod_json_cdr CDR: no `variables` object", "variables"
        )
    return data


def normalize_body(body: bytes | str, ctx: ProviderContext) -> Normalized:
    parsed = parse_cdr(body)
    if isinstance(parsed, Unmapped):
        return Normalized(unmapped=(parsed,))
    return normalize_cdr(parsed, ctx)


def normalize_cdr(cdr: Mapping[str, Any], ctx: ProviderContext) -> Normalized:
    variables = cdr.get("variables")
    if not isinstance(variables, Mapping):
        return Normalized.unmappable(
            NOT_PROVIDER_FORMAT, "not a mod_json_cdr CDR: no `variables`", None
        )
    leg = _Leg(cdr, variables)
    uuid = leg.var("uuid")
    if not uuid:
        return Normalized.unmappable(MISSING_FIELD, "CDR without variables.uuid", "uuid")
    times = leg.times()
    if isinstance(times, Unmapped):
        return Normalized(unmapped=(times,))
    originator = leg.var("originator")
    if originator:
        return _dialled_leg(leg, uuid, originator, times, ctx)
    direction = leg.direction()
    if direction == "inbound":
        return _incoming_leg(leg, uuid, times, ctx)
    if direction == "outbound":
        return _outbound_leg(leg, uuid, times, ctx)
    return Normalized.unmappable(
        MISSING_FIELD,
        "CDR without `direction` (variables or channel_data) and without `originator`: "
        "an inbound A leg and a call FreeSWITCH placed cannot be told apart",
        "direction",
    )


class _Leg:
    """Read access to one CDR: decoded variables and the leg's first caller profile."""

    def __init__(self, cdr: Mapping[str, Any], variables: Mapping[str, Any]) -> None:
        self.cdr = cdr
        self.variables = variables

    def var(self, name: str) -> str:
        value = self.variables.get(name)
        return unquote(value).strip() if isinstance(value, str) else ""

    def direction(self) -> str:
        channel = self.cdr.get("channel_data")
        from_channel = channel.get("direction") if isinstance(channel, Mapping) else None
        return self.var("direction") or (from_channel if isinstance(from_channel, str) else "")

    def profile(self, name: str) -> str:
        """A field of the caller profile as the leg began (lowest profile_index): later
        profiles are rewritten by transfers and bridges."""
        flows = self.cdr.get("callflow")
        flows = flows if isinstance(flows, list) else [flows]
        profiles = [
            f for f in flows if isinstance(f, Mapping) and isinstance(f.get("caller_profile"), dict)
        ]
        if not profiles:
            return ""
        first = min(profiles, key=lambda f: _int_or(f.get("profile_index"), 10**9))
        value = first["caller_profile"].get(name)
        return unquote(value).strip() if isinstance(value, str) else ""

    def times(self) -> LegTimes | Unmapped:
        stamps: dict[str, datetime | None] = {}
        for name in ("start_uepoch", "answer_uepoch", "end_uepoch"):
            text = self.var(name)
            if not text:
                return Unmapped(MISSING_FIELD, f"CDR without {name}", name)
            moment = from_epoch_micros(text)
            if moment is None:
                return Unmapped(INVALID_FIELD, f"{name} {text[:32]!r} is not µs since 1970", name)
            stamps[name] = None if text == "0" else moment
        started, answered, ended = (
            stamps["start_uepoch"],
            stamps["answer_uepoch"],
            stamps["end_uepoch"],
        )
        if started is None or ended is None:
            return Unmapped(INVALID_FIELD, "start_uepoch and end_uepoch must not be 0", "uepoch")
        if ended < started or (answered is not None and not started <= answered <= ended):
            return Unmapped(
                INVALID_FIELD,
                "the leg's times are out of order (start <= answer <= end): clock jump",
                "uepoch",
            )
        return LegTimes(started, answered, ended)

    def billsec(self) -> int | None:
        text = self.var("billsec")
        return int(text) if text.isdigit() and text.isascii() else None


def _dialled_leg(
    leg: _Leg, uuid: str, call_id: str, times: LegTimes, ctx: ProviderContext
) -> Normalized:
    endpoint = leg.profile("destination_number") or leg.var("dialed_user")
    phone = ctx.phone_number(endpoint)
    if phone is None:
        return Normalized.unmappable(
            MISSING_FIELD,
            f"no E.164 number for dialled {endpoint[:64]!r}: add it to phone_for_endpoint",
            "destination_number",
        )
    out = _event(
        ctx,
        call_id,
        uuid,
        "incoming_call.dial_started",
        times.started,
        dial_id=uuid,
        user_id=ctx.user(endpoint),
        user_phone_number=phone,
    )
    if times.answered is not None:
        out += _event(
            ctx, call_id, uuid, "incoming_call.dial_answered", times.answered, dial_id=uuid
        )
    cause = leg.var("hangup_cause")
    outcome = "completed" if times.answered is not None else unanswered_outcome(cause)
    if outcome is None:
        return out + Normalized.unmappable(
            UNMAPPED_VALUE,
            f"hangup_cause {cause[:40]!r} of an unanswered leg has no ringlog outcome",
            "hangup_cause",
        )
    ended: dict[str, Any] = {"dial_id": uuid, "outcome": outcome, "status_message": cause}
    billsec = leg.billsec()
    if billsec is not None:
        ended["billable_seconds"] = billsec
    return out + _event(ctx, call_id, uuid, "incoming_call.dial_ended", times.ended, **ended)


def _incoming_leg(leg: _Leg, uuid: str, times: LegTimes, ctx: ProviderContext) -> Normalized:
    caller_raw = leg.profile("caller_id_number")
    caller = ctx.phone_number(caller_raw)
    if caller is None:
        return Normalized.unmappable(
            INVALID_FIELD,
            f"caller number {caller_raw[:32]!r} is not E.164 and not in phone_for_endpoint",
            "caller_id_number",
        )
    called_raw = leg.profile("destination_number")
    routing = ctx.phone_number(called_raw)
    if routing is None:
        return Normalized.unmappable(
            INVALID_FIELD,
            f"called number {called_raw[:32]!r} is not E.164 and not in phone_for_endpoint",
            "destination_number",
        )
    policy = ctx.policy(routing)
    if policy is None:
        return Normalized.unmappable(
            UNMAPPED_VALUE,
            f"no incoming call policy for {routing} and no default policy",
            "destination_number",
        )
    out = _event(
        ctx,
        uuid,
        uuid,
        "incoming_call.received",
        times.started,
        incoming_call_policy_id=policy,
        caller_phone_number=caller,
        routing_phone_number=routing,
    )
    result = leg.var("originate_disposition") or leg.var("hangup_cause")
    outcome = _call_outcome(result, times)
    if outcome is None:
        return out + Normalized.unmappable(
            UNMAPPED_VALUE,
            f"A-leg result {result[:40]!r} (originate_disposition, else hangup_cause) has no "
            "ringlog outcome",
            "originate_disposition",
        )
    return out + _event(
        ctx,
        uuid,
        uuid,
        "incoming_call.ended",
        times.ended,
        outcome=outcome,
        status_message=result,
    )


def _call_outcome(result: str, times: LegTimes) -> str | None:
    if result in _NORMAL_CAUSES:
        # Ended normally: completed if the A leg was ever answered; a normal clearing of a
        # never-answered A leg without a dial result says nothing about who hung up.
        return "completed" if times.answered is not None else None
    dial_outcome = unanswered_outcome(result)
    return _CALL_OUTCOME_OF_DIAL.get(dial_outcome) if dial_outcome else None


def _outbound_leg(leg: _Leg, uuid: str, times: LegTimes, ctx: ProviderContext) -> Normalized:
    to_raw = leg.profile("destination_number")
    to_number = ctx.phone_number(to_raw)
    if to_number is None:
        return Normalized.unmappable(
            INVALID_FIELD,
            f"called number {to_raw[:32]!r} is not E.164 and not in phone_for_endpoint",
            "destination_number",
        )
    from_raw = leg.profile("caller_id_number")
    from_number = ctx.phone_number(from_raw)
    if from_number is None:
        return Normalized.unmappable(
            INVALID_FIELD,
            f"caller number {from_raw[:32]!r} is not E.164 and not in phone_for_endpoint",
            "caller_id_number",
        )
    cause = leg.var("hangup_cause")
    if times.answered is not None:
        status: str | None = "Success"
    else:
        dial_outcome = unanswered_outcome(cause)
        status = _OUTBOUND_STATUS.get(dial_outcome) if dial_outcome else None
    out = _event(
        ctx,
        uuid,
        uuid,
        "outbound_call.placed",
        times.started,
        to_number=to_number,
        from_number=from_number,
        call_data={"freeswitch_uuid": uuid},
    )
    if times.answered is not None:
        out += _event(ctx, uuid, uuid, "outbound_call.answered", times.answered)
    if status is None:
        return out + Normalized.unmappable(
            UNMAPPED_VALUE,
            f"hangup_cause {cause[:40]!r} of an unanswered call has no ringlog status",
            "hangup_cause",
        )
    ended: dict[str, Any] = {"status": status, "status_message": cause}
    billsec = leg.billsec()
    if billsec is not None:
        ended["billable_seconds"] = billsec
    return out + _event(ctx, uuid, uuid, "outbound_call.ended", times.ended, **ended)


def _event(
    ctx: ProviderContext,
    call_id: str,
    leg_uuid: str,
    type_: str,
    occurred: datetime,
    **fields: Any,
) -> Normalized:
    # One CDR per leg, one event of each type per leg: the leg's uuid and the type name it.
    event = {
        "event_id": event_id(SOURCE, call_id, leg_uuid, type_),
        "type": type_,
        "occurred_at": rfc3339(occurred),
        "project_id": ctx.project_id,
        "call_id": call_id,
        "source": SOURCE,
        **fields,
    }
    return Normalized(events=(event,))


def _int_or(value: object, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return default
