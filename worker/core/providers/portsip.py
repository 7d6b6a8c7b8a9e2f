"""PortSIP PBX -> canonical events (docs/providers/portsip.md has the tables).

Inputs: the `call_cdr` webhook (a parent record and its `call_targets[]`, one per endpoint
the PBX INVITEd; numbers and Unix times sent as strings, `end_reason` also spelt
`ended_reason`) and an item of `GET /api/calllogs` (summary) or `/api/calllogs/{id}`
(detail, which adds `cost` and `billed_account`).

`call_id` is the PortSIP `session_id`. Each target is one leg: one `cdr.recorded` (cdr_id
`<session_id>-<n>`, n its 1-based position: PortSIP's target `id` is the tenant id, the same
for every target) and, for an inbound call, one dial attempt (dial_id the same). A webhook
without targets is recorded as the parent itself (`<session_id>-0`). Times come from the
payload only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final

import orjson
from pydantic_core import PydanticCustomError

from schemas.events import parse_timestamp
from worker.core.providers.base import (
    INVALID_FIELD,
    MISSING_FIELD,
    NOT_PROVIDER_FORMAT,
    UNKNOWN_EVENT,
    UNMAPPED_VALUE,
    Normalized,
    ProviderContext,
    Unmapped,
    checked,
    each_item,
    event_id,
    is_e164,
    rfc3339,
)

SOURCE: Final = "portsip"

# The webhook's `direction` (short names, and the long ones PortSIP switched to in 2026)
# -> the REST API's enum, which the contract uses.
DIRECTION: Final = {
    "ext": "EXTENSION_CALL",
    "internal": "EXTENSION_CALL",
    "in": "INBOUND_CALL",
    "inbound": "INBOUND_CALL",
    "in2out": "INBOUND_OUTBOUND_CALL",
    "inbound_outbound": "INBOUND_OUTBOUND_CALL",
    "out": "OUTBOUND_CALL",
    "outbound": "OUTBOUND_CALL",
}
# Directions that are an incoming call to a DID (an on-call number): they also give the
# incoming-call events.
INCOMING: Final = frozenset({"INBOUND_CALL", "INBOUND_OUTBOUND_CALL"})
# The parent's `call_status` -> incoming_call.ended outcome.
CALL_OUTCOME: Final = {"answered": "completed", "noanswer": "no_answer", "fail": "failed"}
TARGET_STATUSES: Final = frozenset(CALL_OUTCOME)
BUSY_CODES: Final = frozenset({486, 600})  # SIP Busy Here, Busy Everywhere
CALLER_LEFT: Final = frozenset({"caller_disconnect", "caller_disconnected"})
# Values PortSIP writes for "no reason" (the "None" is a Python None printed as text).
_NO_TEXT: Final = frozenset({"", "None", "none", "null"})
_NEVER: Final = frozenset({"", "0", 0})  # "answered_time": "0" = never answered

_API_TEXT: Final = (
    "caller",
    "caller_domain",
    "caller_display_name",
    "callee",
    "callee_domain",
    "callee_display_name",
    "direction",
    "end_reason",
    "reroute_reason",
    "destination",
    "outbound_caller_id",
    "did_cid",
    "trunk",
    "billed_account",
    "service_number",
    "user_data",
)
_API_TIMES: Final = ("started_at", "rang_at", "answered_at", "ended_at")


class _Unmappable(Exception):
    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.unmapped = Unmapped(code, message, field)


# -- entry points ---------------------------------------------------------------------------


def webhook_body(body: bytes, ctx: ProviderContext) -> Normalized:
    """A raw webhook body: JSON, then `webhook`."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Normalized.unmappable(
            NOT_PROVIDER_FORMAT, f"not a PortSIP webhook: the body is not JSON ({exc})"
        )
    return webhook(payload, ctx)


def webhook(payload: Any, ctx: ProviderContext) -> Normalized:
    """A PortSIP webhook notification, by its `event_type`."""
    if not isinstance(payload, Mapping) or "event_type" not in payload:
        return Normalized.unmappable(NOT_PROVIDER_FORMAT, "not a PortSIP webhook (no event_type)")
    kind = payload["event_type"]
    if kind != "call_cdr":
        # The live call and target events repeat what the call's CDR says when it ends.
        return Normalized.unmappable(
            UNKNOWN_EVENT,
            f"event_type {str(kind)[:64]!r}: ringlog maps call_cdr only",
            "event_type",
        )
    return call_cdr(payload, ctx)


def call_cdr(payload: Mapping[str, Any], ctx: ProviderContext) -> Normalized:
    """The `call_cdr` webhook: a CDR per leg and, for inbound calls, the incoming call."""
    try:
        session = _text(payload, "session_id")
        if session is None:
            raise _Unmappable(MISSING_FIELD, "session_id is required", "session_id")
        direction = _direction(payload)
        targets = payload.get("call_targets") or []
        if not isinstance(targets, list) or not all(isinstance(t, Mapping) for t in targets):
            raise _Unmappable(INVALID_FIELD, "call_targets must be a list of objects")
        legs = [_Leg(session, n, t, payload) for n, t in enumerate(targets, start=1)]
        if not legs:
            legs = [_Leg(session, 0, payload, payload)]
        events = [leg.cdr(ctx, direction) for leg in legs]
    except _Unmappable as exc:
        return Normalized(unmapped=(exc.unmapped,))
    incoming = Normalized()
    if direction in INCOMING:
        incoming = _incoming(session, payload, [leg for leg in legs if leg.n > 0], ctx)
    return checked(events) + incoming


def call_log(item: Any, ctx: ProviderContext) -> Normalized:
    """One record of `GET /api/calllogs` (or its detail): a `cdr.recorded`.

    The detail view (it has `cost` / `billed_account`) knows more than the summary of the
    same record, so it carries sequence 1 and wins over the summary whatever their order.
    """
    if not isinstance(item, Mapping) or "id" not in item:
        return Normalized.unmappable(NOT_PROVIDER_FORMAT, "not a PortSIP call log record (no id)")
    try:
        cdr_id = _text(item, "id")
        session = _text(item, "session_id")
        if cdr_id is None or session is None:
            raise _Unmappable(
                MISSING_FIELD,
                "a call log record needs id and session_id (the call it belongs to)",
                "session_id" if cdr_id else "id",
            )
        detail = "cost" in item or "billed_account" in item
        fields: dict[str, Any] = {name: _text(item, name) for name in _API_TEXT}
        fields["sip_call_id"] = _text(item, "call_id")
        for name in _API_TIMES:
            fields[name] = _rfc3339_text(item, name)
        fields["status_code"] = _int(item, "status_code", signed=True)
        fields["duration"] = _int(item, "duration")
        fields["cost"] = _decimal(item, "cost")
        at = fields["ended_at"] or fields["started_at"]
        if at is None:
            raise _Unmappable(MISSING_FIELD, "a call log record without ended_at or started_at")
    except _Unmappable as exc:
        return Normalized(unmapped=(exc.unmapped,))
    event = _event(
        ctx,
        "cdr.recorded",
        session,
        at,
        event_id(SOURCE, cdr_id, "calllog", "detail" if detail else "summary"),
        sequence=1 if detail else 0,
        cdr_id=cdr_id,
        **fields,
    )
    return checked([event])


def call_logs_page(page: Any, ctx: ProviderContext) -> Normalized:
    """A page of `GET /api/calllogs` (`{"count", "items"}`): every record on it."""
    return each_item(page, "items", call_log, ctx, "a PortSIP call log page")


# -- the call_cdr webhook -------------------------------------------------------------------


class _Leg:
    """One target of a call_cdr (or the parent itself when it has no targets)."""

    def __init__(
        self, session: str, n: int, record: Mapping[str, Any], parent: Mapping[str, Any]
    ) -> None:
        self.session, self.n, self.record, self.parent = session, n, record, parent
        self.id = f"{session}-{n}"
        where = f"call_targets[{n - 1}]." if n else ""
        self.started = _unix(record, "start_time", where)
        self.rang = _unix(record, "ring_time", where)
        self.answered = _unix(record, "answered_time", where)
        self.ended = _unix(record, "ended_time", where)
        self.status_code = _int(record, "status_code", signed=True, where=where)
        self.end_reason = _text(record, "end_reason") or _text(record, "ended_reason")
        self.where = where

    @property
    def talk_seconds(self) -> int:
        """`talk_duration`; older PBXs send none: ended - answered (whole Unix seconds)."""
        talk = _int(self.record, "talk_duration", where=self.where)
        if talk is not None:
            return talk
        if self.answered is None or self.ended is None:
            return 0
        return max(0, int((self.ended - self.answered).total_seconds()))

    def cdr(self, ctx: ProviderContext, direction: str) -> dict[str, Any]:
        at = self.ended or self.started
        if at is None:
            raise _Unmappable(
                MISSING_FIELD, "a CDR without ended_time or start_time", f"{self.where}ended_time"
            )
        r, p = self.record, self.parent
        return _event(
            ctx,
            "cdr.recorded",
            self.session,
            rfc3339(at),
            event_id(SOURCE, self.session, "call_cdr", self.n),
            cdr_id=self.id,
            caller=_text(r, "caller"),
            caller_domain=_text(p, "caller_domain"),
            caller_display_name=_text(p, "caller_display_name"),
            callee=_text(r, "callee"),
            callee_domain=_text(p, "callee_domain"),
            started_at=_iso(self.started),
            rang_at=_iso(self.rang),
            answered_at=_iso(self.answered),
            ended_at=_iso(self.ended),
            sip_call_id=_text(p, "call_id"),
            direction=direction,
            end_reason=self.end_reason,
            status_code=self.status_code,
            destination=_text(r, "destination"),
            outbound_caller_id=_text(r, "outbound_caller_id") or _text(p, "outbound_caller_id"),
            did_cid=_did(r) or _did(p),
            trunk=_text(r, "trunk_name") or _text(p, "trunk_name"),
            duration=self.talk_seconds,
            cost=_decimal(r, "cost", self.where),
            user_data=_text(p, "user_data"),
        )

    def outcome(self) -> str:
        """How this target's ring ended (the table in docs/providers/portsip.md)."""
        status = _text(self.record, "status")
        if status is not None and status not in TARGET_STATUSES:
            raise _Unmappable(
                UNMAPPED_VALUE, f"unknown target status {status!r}", f"{self.where}status"
            )
        if self.answered is not None or status == "answered":
            return "completed"
        if self.status_code in BUSY_CODES:
            return "busy"
        if status == "fail":
            return "failed"
        if (self.end_reason or "").lower() in CALLER_LEFT:
            return "canceled"
        return "no_answer"

    def message(self) -> str | None:
        parts = [f"portsip {s}" for s in [_text(self.record, "status")] if s]
        if self.end_reason:
            parts.append(self.end_reason)
        if self.status_code:
            parts.append(f"SIP {self.status_code}")
        return ", ".join(parts) or None


def _incoming(
    session: str, parent: Mapping[str, Any], legs: list[_Leg], ctx: ProviderContext
) -> Normalized:
    """The incoming call of an inbound call_cdr: received, a dial attempt per target, ended."""
    try:
        caller = _e164(parent, "caller")
        did = _did(parent)
        if did is None:
            raise _Unmappable(MISSING_FIELD, "an inbound call_cdr without did", "did")
        if not is_e164(did):
            raise _Unmappable(INVALID_FIELD, f"did {did!r} is not an E.164 number", "did")
        policy = ctx.policy(did)
        if policy is None:
            raise _Unmappable(
                UNMAPPED_VALUE, f"no incoming call policy for the number {did}", "did"
            )
        started = _unix(parent, "start_time") or _required_time(legs, "start_time")
        ended = _unix(parent, "ended_time")
        outcome = _call_outcome(parent)
    except _Unmappable as exc:
        return Normalized(unmapped=(exc.unmapped,))
    events = [
        _event(
            ctx,
            "incoming_call.received",
            session,
            rfc3339(started),
            event_id(SOURCE, session, "received"),
            incoming_call_policy_id=policy,
            caller_phone_number=caller,
            routing_phone_number=did,
        )
    ]
    unmapped: list[Unmapped] = []
    for leg in legs:
        try:
            events.extend(_dial_events(leg, ctx))
        except _Unmappable as exc:
            unmapped.append(exc.unmapped)
    if ended is not None:
        events.append(
            _event(
                ctx,
                "incoming_call.ended",
                session,
                rfc3339(ended),
                event_id(SOURCE, session, "ended"),
                outcome=outcome,
                status_message=_call_message(parent),
            )
        )
    else:
        unmapped.append(
            Unmapped(MISSING_FIELD, "the call has no ended_time: not ended", "ended_time")
        )
    return checked(events, unmapped)


def _dial_events(leg: _Leg, ctx: ProviderContext) -> list[dict[str, Any]]:
    callee = _text(leg.record, "callee")
    if callee is None:
        raise _Unmappable(MISSING_FIELD, "a target without callee", f"{leg.where}callee")
    phone = ctx.phone_number(callee)
    if phone is None:
        raise _Unmappable(
            UNMAPPED_VALUE,
            f"endpoint {callee!r} has no E.164 number (the gateway's endpoint map): "
            "not a user's phone, no dial attempt",
            f"{leg.where}callee",
        )
    if leg.started is None or leg.ended is None:
        raise _Unmappable(
            MISSING_FIELD, "a target without start_time or ended_time", f"{leg.where}start_time"
        )
    outcome = leg.outcome()

    def dial(kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
        return _event(
            ctx,
            f"incoming_call.dial_{kind}",
            leg.session,
            rfc3339(at),
            event_id(SOURCE, leg.session, "target", leg.n, kind),
            dial_id=leg.id,
            **fields,
        )

    events = [dial("started", leg.started, user_id=ctx.user(callee), user_phone_number=phone)]
    if leg.rang is not None:
        events.append(dial("ringing", leg.rang))
    if leg.answered is not None:
        events.append(dial("answered", leg.answered))
    events.append(
        dial(
            "ended",
            leg.ended,
            outcome=outcome,
            status_message=leg.message(),
            billable_seconds=leg.talk_seconds if outcome == "completed" else None,
        )
    )
    return events


def _call_outcome(parent: Mapping[str, Any]) -> str:
    status = _text(parent, "call_status")
    if status is None:  # older PBXs send none: answered_time says it
        outcome = "no_answer" if _never(parent.get("answered_time")) else "completed"
    elif status in CALL_OUTCOME:
        outcome = CALL_OUTCOME[status]
    else:
        raise _Unmappable(UNMAPPED_VALUE, f"unknown call_status {status!r}", "call_status")
    reason = (_text(parent, "ended_reason") or _text(parent, "end_reason") or "").lower()
    if outcome == "failed" and _int(parent, "status_code", signed=True) in BUSY_CODES:
        return "busy"
    if outcome == "no_answer" and reason in CALLER_LEFT:
        return "caller_hung_up"
    return outcome


def _call_message(parent: Mapping[str, Any]) -> str | None:
    parts = [f"portsip {s}" for s in [_text(parent, "call_status")] if s]
    reason = _text(parent, "ended_reason") or _text(parent, "end_reason")
    if reason:
        parts.append(reason)
    return ", ".join(parts) or None


def _direction(payload: Mapping[str, Any]) -> str:
    raw = _text(payload, "direction")
    if raw is None:
        raise _Unmappable(MISSING_FIELD, "direction is required", "direction")
    direction = DIRECTION.get(raw)
    if direction is None:
        raise _Unmappable(UNMAPPED_VALUE, f"unknown direction {raw!r}", "direction")
    return direction


def _required_time(legs: list[_Leg], name: str) -> datetime:
    starts = [leg.started for leg in legs if leg.started is not None]
    if not starts:
        raise _Unmappable(MISSING_FIELD, f"{name} is required", name)
    return min(starts)


# -- fields ---------------------------------------------------------------------------------


def _event(
    ctx: ProviderContext, type_: str, call_id: str, at: str, eid: str, **fields: Any
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": eid,
        "type": type_,
        "occurred_at": at,
        "project_id": ctx.project_id,
        "call_id": call_id,
        "source": SOURCE,
    }
    event.update({k: v for k, v in fields.items() if v is not None})
    return event


def _text(data: Mapping[str, Any], name: str) -> str | None:
    """A text field; PortSIP's "" and "None" are absent. Numbers sent as numbers are text."""
    value = data.get(name)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        value = str(value)
    if not isinstance(value, str):
        raise _Unmappable(INVALID_FIELD, f"{name} must be text", name)
    return None if value in _NO_TEXT else value


def _did(data: Mapping[str, Any]) -> str | None:
    return _text(data, "did") or _text(data, "did_cid")  # both spellings are published


def _e164(data: Mapping[str, Any], name: str) -> str:
    value = _text(data, name)
    if value is None or not is_e164(value):
        raise _Unmappable(INVALID_FIELD, f"{name} {value!r} is not an E.164 number", name)
    return value


def _int(
    data: Mapping[str, Any], name: str, *, signed: bool = False, where: str = ""
) -> int | None:
    """A whole number, sent as a number or as a string of digits."""
    value = data.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value < 0 and not signed:
            raise _Unmappable(INVALID_FIELD, f"{name} must be >= 0", f"{where}{name}")
        return value
    text = str(value)
    digits = text[1:] if signed and text.startswith("-") else text
    if not isinstance(value, str) or not digits.isascii() or not digits.isdigit():
        raise _Unmappable(
            INVALID_FIELD, f"{name} {value!r} is not a whole number", f"{where}{name}"
        )
    return int(text)


def _unix(data: Mapping[str, Any], name: str, where: str = "") -> datetime | None:
    """A Unix time in seconds (string or number); "0" and "" mean it never happened."""
    value = data.get(name)
    if value is None or _never(value):
        return None
    seconds = _int(data, name, where=where)
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        raise _Unmappable(
            INVALID_FIELD, f"{name} {value!r} is out of range", f"{where}{name}"
        ) from None


def _rfc3339_text(data: Mapping[str, Any], name: str) -> str | None:
    """A REST API time (RFC 3339, "" when it never happened), checked under its own name."""
    text = _text(data, name)
    if text is not None:
        try:
            parse_timestamp(text)
        except PydanticCustomError:
            raise _Unmappable(
                INVALID_FIELD, f"{name} {text!r} is not an RFC 3339 time with offset", name
            ) from None
    return text


def _never(value: Any) -> bool:
    return value is None or (isinstance(value, str | int) and value in _NEVER)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else rfc3339(moment)


def _decimal(data: Mapping[str, Any], name: str, where: str = "") -> str | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _Unmappable(
            INVALID_FIELD, f"{name} {value!r} is not a decimal", f"{where}{name}"
        ) from None
    if not amount.is_finite() or amount < 0:
        raise _Unmappable(INVALID_FIELD, f"{name} {value!r} is not a cost >= 0", f"{where}{name}")
    return f"{amount:f}"
