"""Asterisk CEL -> canonical events, one record at a time (docs/providers/asterisk.md).

Every record maps on its own, with no state: a file, a stream or a re-import can be
normalized record by record, in any order, and the same record always gives the same event
(same `event_id`), so the worker's de-duplication makes re-imports idempotent.

A call is a `linkedid`. Its first channel (`uniqueid == linkedid`) is the inbound leg: its
CHAN_START is `incoming_call.received` and its HANGUP, which carries the Dial result
(`dialstatus`) of the whole call, is `incoming_call.ended`. Every other channel of the
linkedid is a dialled leg (`dial_id` = its uniqueid): CHAN_START, ANSWER and HANGUP are
`dial_started`, `dial_answered` and `dial_ended`, the outcome from the leg's own Q.850
`hangupcause` (the callee's `dialstatus` is always empty; the caller's only tells how the
*last* Dial ended, so it cannot say which of a hunt's legs went unanswered).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Final

import orjson

from worker.core.providers.asterisk_cel_records import CelRecord, parse_line, parse_text
from worker.core.providers.base import (
    INVALID_FIELD,
    MISSING_FIELD,
    UNKNOWN_EVENT,
    UNMAPPED_VALUE,
    Normalized,
    ProviderContext,
    Unmapped,
    event_id,
)
from worker.core.providers.hangup_causes import Q850_NAMES, unanswered_outcome
from worker.core.providers.provider_times import (
    from_epoch_seconds,
    from_wall_clock,
    rfc3339,
)

SOURCE: Final = "asterisk"

# The caller's `dialstatus` (app_dial's DIALSTATUS) -> `incoming_call.ended` outcome.
# DONTCALL and TORTURE (privacy manager: the callee sent the caller away) are neither "busy"
# nor "no answer" for the person called: dead-lettered rather than guessed.
DIALSTATUS_OUTCOME: Final[dict[str, str]] = {
    "ANSWER": "completed",
    "NOANSWER": "no_answer",
    "BUSY": "busy",
    "CANCEL": "caller_hung_up",
    "CHANUNAVAIL": "failed",
    "CONGESTION": "failed",
    "INVALIDARGS": "failed",
}
# A dialled leg torn down with a normal cause before it answered was cancelled by the
# caller's side (test_cel.c's caller-cancel flow: callee cause 16, caller CANCEL). An answered
# leg is Completed through its ANSWER record whatever outcome its HANGUP carries.
_NORMAL_CAUSES: Final = frozenset({"NORMAL_CLEARING", "NORMAL_UNSPECIFIED"})

# CEL events that are part of every call but carry nothing ringlog's rows use: skipped
# silently (a dead letter per bridge or app step would bury the real problems in the DLQ).
# LINKEDID_END is here too: it has no outcome, and the inbound channel's HANGUP, which
# carries one, ends the call (with a Dial, it precedes LINKEDID_END by milliseconds).
IGNORED_EVENTS: Final = frozenset(
    {
        "CHAN_END",
        "LINKEDID_END",
        "APP_START",
        "APP_END",
        "BRIDGE_ENTER",
        "BRIDGE_EXIT",
        "BRIDGE_START",  # before Asterisk 12
        "BRIDGE_END",  # before Asterisk 12
        "BRIDGE_UPDATE",
        "CONF_ENTER",
        "CONF_EXIT",
        "CONF_START",
        "CONF_END",
        "PARK_START",
        "PARK_END",
        "BLINDTRANSFER",
        "ATTENDEDTRANSFER",
        "TRANSFER",
        "PICKUP",
        "FORWARD",
        "HOOKFLASH",
        "3WAY_START",
        "3WAY_END",
        "LOCAL_OPTIMIZE",
        "LOCAL_OPTIMIZE_BEGIN",
        "STREAM_BEGIN",
        "STREAM_END",
        "DTMF",
        "USER_DEFINED",
    }
)
MAPPED_EVENTS: Final = frozenset({"CHAN_START", "ANSWER", "HANGUP"})

# `PJSIP/alice-0000002a` -> `PJSIP/alice`; `Local/x@default-1545;1` -> `Local/x@default`.
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-fA-F]+(;\d+)?$")


def channel_endpoint(channel: str) -> str:
    """The device a channel belongs to: its name without Asterisk's per-channel suffix."""
    return _CHANNEL_SUFFIX.sub("", channel)


def normalize_record(record: CelRecord, ctx: ProviderContext) -> Normalized:
    """One CEL record -> at most one event, or the reason it cannot be mapped."""
    name = record.eventtype
    if name in IGNORED_EVENTS:
        return Normalized()
    if name not in MAPPED_EVENTS:
        return Normalized.unmappable(
            UNKNOWN_EVENT,
            f"CEL event {name[:64]!r} is not one ringlog maps (a user-defined event shown "
            "under its own name, or a newer Asterisk's): see docs/providers/asterisk.md",
            "eventtype",
        )
    occurred = _event_time(record.eventtime, ctx)
    if occurred is None:
        return Normalized.unmappable(
            INVALID_FIELD,
            f"eventtime {record.eventtime[:64]!r} is neither an epoch nor "
            "'YYYY-MM-DD HH:MM:SS[.ffffff][offset]'",
            "eventtime",
        )
    if record.channame.startswith("Local/"):
        # Local channel halves are dialplan plumbing: the device legs they dial share the
        # linkedid and are mapped themselves; mapping the halves would double every item.
        return Normalized()
    inbound = record.uniqueid == record.linkedid
    if inbound:
        return _inbound(record, occurred, ctx)
    return _dialled(record, occurred, ctx)


def normalize_line(line: str, ctx: ProviderContext) -> Normalized:
    parsed = parse_line(line)
    if isinstance(parsed, Unmapped):
        return Normalized(unmapped=(parsed,))
    return normalize_record(parsed, ctx)


def normalize_text(text: str, ctx: ProviderContext) -> Normalized:
    """A whole CEL file or stream chunk (CSV and/or AMI JSON lines)."""
    out = Normalized()
    for parsed in parse_text(text):
        if isinstance(parsed, Unmapped):
            out += Normalized(unmapped=(parsed,))
        else:
            out += normalize_record(parsed, ctx)
    return out


def _inbound(record: CelRecord, occurred: datetime, ctx: ProviderContext) -> Normalized:
    if record.eventtype == "CHAN_START":
        return _received(record, occurred, ctx)
    if record.eventtype == "HANGUP":
        return _call_ended(record, occurred, ctx)
    # ANSWER of the inbound channel: the PBX (Dial bridging, an IVR, voicemail) answered the
    # caller; whether a *user* answered is told by the dialled legs' ANSWER.
    return Normalized()


def _received(record: CelRecord, occurred: datetime, ctx: ProviderContext) -> Normalized:
    caller = ctx.phone_number(record.cid_num)
    if caller is None:
        return Normalized.unmappable(
            INVALID_FIELD,
            f"caller number {record.cid_num[:32]!r} is not E.164 and not in phone_for_endpoint",
            "CALLERID(num)",
        )
    dialled = record.cid_dnid or record.exten
    routing = ctx.phone_number(dialled)
    if routing is None:
        return Normalized.unmappable(
            INVALID_FIELD,
            f"called number {dialled[:32]!r} (DNID, else exten) is not E.164 and not in "
            "phone_for_endpoint",
            "CALLERID(DNID)",
        )
    policy = ctx.policy(routing)
    if policy is None:
        return Normalized.unmappable(
            UNMAPPED_VALUE,
            f"no incoming call policy for {routing} and no default policy",
            "CALLERID(DNID)",
        )
    return _event(
        record,
        occurred,
        ctx,
        "incoming_call.received",
        incoming_call_policy_id=policy,
        caller_phone_number=caller,
        routing_phone_number=routing,
    )


def _call_ended(record: CelRecord, occurred: datetime, ctx: ProviderContext) -> Normalized:
    extra = _hangup_extra(record.extra)
    if extra is None:
        return Normalized.unmappable(
            MISSING_FIELD,
            "HANGUP without its extra (hangupcause, hangupsource, dialstatus): the call's "
            "outcome is unknown",
            "eventextra",
        )
    cause, source, dialstatus = extra
    if dialstatus:
        outcome = DIALSTATUS_OUTCOME.get(dialstatus)
        if outcome is None:
            return Normalized.unmappable(
                UNMAPPED_VALUE, f"dialstatus {dialstatus[:32]!r} has no ringlog outcome", "extra"
            )
        message = f"dialstatus {dialstatus}"
    elif source and source == record.channame:
        # No Dial ran (the caller left during a greeting or IVR) and the caller hung up.
        outcome, message = "caller_hung_up", "caller hung up before any dial"
    else:
        return Normalized.unmappable(
            UNMAPPED_VALUE,
            "the inbound channel ended without a Dial result and not by the caller "
            f"(hangupsource {source[:64]!r}): the call's outcome is unknown",
            "extra",
        )
    return _event(
        record,
        occurred,
        ctx,
        "incoming_call.ended",
        outcome=outcome,
        status_message=f"{message}, {_cause_text(cause)}",
    )


def _dialled(record: CelRecord, occurred: datetime, ctx: ProviderContext) -> Normalized:
    dial_id = record.uniqueid
    if record.eventtype == "CHAN_START":
        endpoint = channel_endpoint(record.channame)
        if not endpoint:
            return Normalized.unmappable(
                MISSING_FIELD, "dialled channel without a name", "channame"
            )
        phone = ctx.phone_number(endpoint)
        if phone is None:
            return Normalized.unmappable(
                MISSING_FIELD,
                f"no E.164 number for endpoint {endpoint[:64]!r}: add it to phone_for_endpoint",
                "channame",
            )
        return _event(
            record,
            occurred,
            ctx,
            "incoming_call.dial_started",
            dial_id=dial_id,
            user_id=ctx.user(endpoint),
            user_phone_number=phone,
        )
    if record.eventtype == "ANSWER":
        return _event(record, occurred, ctx, "incoming_call.dial_answered", dial_id=dial_id)
    extra = _hangup_extra(record.extra)
    if extra is None or extra[0] is None:
        return Normalized.unmappable(
            MISSING_FIELD, "HANGUP of a dialled leg without its hangupcause", "eventextra"
        )
    cause_name = Q850_NAMES.get(extra[0], "")
    outcome = "canceled" if cause_name in _NORMAL_CAUSES else unanswered_outcome(cause_name)
    if outcome is None:
        return Normalized.unmappable(
            UNMAPPED_VALUE, f"hangupcause {_cause_text(extra[0])} has no ringlog outcome", "extra"
        )
    return _event(
        record,
        occurred,
        ctx,
        "incoming_call.dial_ended",
        dial_id=dial_id,
        outcome=outcome,
        status_message=_cause_text(extra[0]),
    )


def _hangup_extra(extra: str) -> tuple[int | None, str, str] | None:
    """(hangupcause, hangupsource, dialstatus) from a HANGUP's extra: the JSON object of
    Asterisk 12+, or the `cause,source,dialstatus` list of older versions."""
    text = extra.strip()
    if not text:
        return None
    if text.startswith("{"):
        try:
            data: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(data, dict):
            return None
        cause = data.get("hangupcause")
        return (
            cause if isinstance(cause, int) and not isinstance(cause, bool) else None,
            str(data.get("hangupsource") or ""),
            str(data.get("dialstatus") or ""),
        )
    parts = text.split(",")
    if len(parts) != 3:
        return None
    cause_text, source, dialstatus = (p.strip() for p in parts)
    return (int(cause_text) if cause_text.isdigit() else None, source, dialstatus)


def _cause_text(cause: int | None) -> str:
    if cause is None:
        return "hangupcause unknown"
    return f"hangupcause {cause} {Q850_NAMES.get(cause, 'UNKNOWN')}"


def _event_time(text: str, ctx: ProviderContext) -> datetime | None:
    return from_epoch_seconds(text) or from_wall_clock(text, ctx.time_zone)


def _event(
    record: CelRecord, occurred: datetime, ctx: ProviderContext, type_: str, **fields: Any
) -> Normalized:
    # The id is built from the instant, not the text, so one record read from the CSV (epoch)
    # and from AMI (formatted date) is one event.
    instant = rfc3339(occurred)
    event = {
        "event_id": event_id(SOURCE, record.linkedid, record.uniqueid, record.eventtype, instant),
        "type": type_,
        "occurred_at": instant,
        "project_id": ctx.project_id,
        "call_id": record.linkedid,
        "source": SOURCE,
        **fields,
    }
    return Normalized(events=(event,))
