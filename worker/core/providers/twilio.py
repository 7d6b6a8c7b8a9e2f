"""Twilio Programmable Voice -> canonical events (docs/providers/twilio.md has the tables).

Inputs, as the gateway hands them over:

* the form parameters of a webhook (`application/x-www-form-urlencoded`, decoded) and the
  query parameters of the URL Twilio called (the routing service puts `user_id`,
  `escalation_rule_id`, `escalation_rule_order`, `repeat_count` on a `<Number
  statusCallback>` URL, and an outbound call's relation ids on its `StatusCallback` URL);
* a Call resource (`GET /Calls/{Sid}` JSON, or a `GET /Calls` page), for the late price.

`call_id` is always the parent CallSid (a `<Dial>` child's `ParentCallSid`), `dial_id` the
child's CallSid. Times: Twilio's `Timestamp` (RFC 2822, UTC) on status callbacks, the Call
resource's `date_updated` for a price; the voice webhook and the `<Dial action>` callback
carry no time, so they take the gateway's receipt time (`ProviderContext.received_at`) and
are unmapped without one. Event ids come from the CallSid and the callback's own identity
(status, SequenceNumber), so Twilio's retry of a callback is the same event.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Final

from schemas.tables import OUTBOUND_RELATION_IDS
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

SOURCE: Final = "twilio"
_CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
_NO_QUERY: Mapping[str, str] = {}

# A leg's final CallStatus (status callback) -> the outcome of its dial_ended.
DIAL_OUTCOME: Final = {
    "completed": "completed",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "canceled",
}
# DialCallStatus of the <Dial action> callback; `answered` is sent for conferences only.
DIAL_ACTION_OUTCOME: Final = {**DIAL_OUTCOME, "answered": "completed"}
# The parent (inbound) leg's final CallStatus -> incoming_call.ended outcome. Twilio answers
# the inbound leg itself (TwiML), so `completed` says nothing about a person answering: it is
# `no_answer`, which the core turns into Completed when one of the dials was answered.
CALL_OUTCOME: Final = {
    "completed": "no_answer",
    "busy": "busy",
    "no-answer": "no_answer",
    "failed": "failed",
    "canceled": "caller_hung_up",  # the caller hung up before Twilio answered
}
# An outbound-api call's final CallStatus -> outbound_call.ended status (OneUptime CallStatus).
OUTBOUND_STATUS: Final = {
    "completed": "Success",
    "busy": "Busy",
    "no-answer": "Missed Call",
    "failed": "Error",
    "canceled": "Error",  # canceled through the REST API before it was answered
}
FINAL_STATUSES: Final = frozenset(DIAL_OUTCOME)
# Progress statuses that carry no event of their own on some legs (listed, so not unknown).
_PROGRESS: Final = frozenset({"queued", "initiated", "ringing", "in-progress"})
# Parent CallStatus of a <Dial action> request once the caller has left the call.
_CALLER_GONE: Final = frozenset({"completed", "canceled"})

# The optional relation ids of outbound_call.placed, carried on the callback URL's query.
RELATION_IDS: Final = OUTBOUND_RELATION_IDS


class _Unmappable(Exception):
    """Raised inside a normalizer: the payload (or part of it) cannot be mapped."""

    def __init__(self, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.unmapped = Unmapped(code, message, field)


# -- entry points ---------------------------------------------------------------------------


def form_body(
    body: bytes, ctx: ProviderContext, query: Mapping[str, str] = _NO_QUERY
) -> Normalized:
    """A raw webhook body: decoded as a form, then `webhook`."""
    try:
        pairs = urllib.parse.parse_qsl(
            body.decode("utf-8"), keep_blank_values=True, strict_parsing=True
        )
    except (UnicodeDecodeError, ValueError) as exc:
        return Normalized.unmappable(
            NOT_PROVIDER_FORMAT, f"not a form-encoded Twilio request: {exc}"
        )
    return webhook(dict(pairs), ctx, query)


def webhook(
    form: Mapping[str, str], ctx: ProviderContext, query: Mapping[str, str] = _NO_QUERY
) -> Normalized:
    """Any Twilio voice request, told apart by its parameters."""
    if "CallSid" not in form or "AccountSid" not in form:
        return Normalized.unmappable(
            NOT_PROVIDER_FORMAT, "not a Twilio voice request (no CallSid, AccountSid)"
        )
    if "DialCallStatus" in form or "DialCallSid" in form:
        return dial_action(form, ctx, query)
    if (
        "CallbackSource" in form
        or "SequenceNumber" in form
        or form.get("CallStatus") in FINAL_STATUSES
    ):
        return status_callback(form, ctx, query)
    if form.get("Direction") == "inbound" and "ParentCallSid" not in form:
        return voice_webhook(form, ctx)
    return Normalized.unmappable(
        UNKNOWN_EVENT, "a Twilio request ringlog does not use (not a voice webhook)"
    )


def voice_webhook(form: Mapping[str, str], ctx: ProviderContext) -> Normalized:
    """The incoming-call webhook (`/voice`): the call starts when Twilio asks for TwiML."""
    try:
        call_sid = _sid(form, "CallSid")
        caller, routing = _number(form, "From"), _number(form, "To")
        policy = ctx.policy(routing)
        if policy is None:
            raise _Unmappable(
                UNMAPPED_VALUE, f"no incoming call policy for the number {routing}", "To"
            )
        at = _received_at(ctx, "the voice webhook")
    except _Unmappable as exc:
        return Normalized(unmapped=(exc.unmapped,))
    event = _event(
        ctx,
        "incoming_call.received",
        call_sid,
        at,
        event_id(SOURCE, call_sid, "voice"),
        incoming_call_policy_id=policy,
        caller_phone_number=caller,
        routing_phone_number=routing,
    )
    return checked([event])


def status_callback(
    form: Mapping[str, str], ctx: ProviderContext, query: Mapping[str, str] = _NO_QUERY
) -> Normalized:
    """A call progress event of one leg (`StatusCallback`)."""
    try:
        source = form.get("CallbackSource", "call-progress-events")
        if source != "call-progress-events":
            raise _Unmappable(
                UNKNOWN_EVENT, f"CallbackSource {source!r} is not a call progress event"
            )
        status = _required(form, "CallStatus")
        if status not in FINAL_STATUSES and status not in _PROGRESS:
            raise _Unmappable(UNMAPPED_VALUE, f"unknown CallStatus {status!r}", "CallStatus")
        leg = _Leg.of(form, ctx)
        direction = form.get("Direction", "")
        if direction == "outbound-dial":
            return _dial_leg(leg, ctx, query)
        if "ParentCallSid" in form:
            raise _Unmappable(
                UNMAPPED_VALUE,
                f"a child leg with Direction {direction!r} (only <Dial> children are mapped)",
                "Direction",
            )
        if direction == "inbound":
            return _parent_leg(leg, ctx)
        if direction == "outbound-api":
            return _outbound_leg(leg, ctx, query)
        raise _Unmappable(UNMAPPED_VALUE, f"unknown Direction {direction!r}", "Direction")
    except _Unmappable as exc:
        return Normalized(unmapped=(exc.unmapped,))


def dial_action(
    form: Mapping[str, str], ctx: ProviderContext, query: Mapping[str, str] = _NO_QUERY
) -> Normalized:
    """The `<Dial action>` callback: how the dialled (child) leg ended.

    Its `CallStatus` is the parent's: `completed` while the dialled leg was not answered
    means the caller hung up while it rang, which also ends the incoming call.
    """
    del query  # the action URL's query names no ringlog field
    try:
        call_sid, dial_sid = _sid(form, "CallSid"), _sid(form, "DialCallSid")
        dial_status = _required(form, "DialCallStatus")
        outcome = DIAL_ACTION_OUTCOME.get(dial_status)
        if outcome is None:
            raise _Unmappable(
                UNMAPPED_VALUE, f"unknown DialCallStatus {dial_status!r}", "DialCallStatus"
            )
        billable = _optional_int(form, "DialCallDuration")
        at = _received_at(ctx, "the <Dial action> callback")
    except _Unmappable as exc:
        return Normalized(unmapped=(exc.unmapped,))
    caller_left = outcome != "completed" and form.get("CallStatus") in _CALLER_GONE
    if caller_left:
        outcome = "canceled"
    fields: dict[str, Any] = {"dial_id": dial_sid, "outcome": outcome}
    message = _message(dial_status, None, None)
    fields["status_message"] = f"{message}, caller hung up" if caller_left else message
    if billable is not None:
        fields["billable_seconds"] = billable
    events = [
        _event(
            ctx,
            "incoming_call.dial_ended",
            call_sid,
            at,
            event_id(SOURCE, dial_sid, "dial-action", dial_status),
            **fields,
        )
    ]
    if caller_left:
        events.append(
            _event(
                ctx,
                "incoming_call.ended",
                call_sid,
                at,
                event_id(SOURCE, call_sid, "dial-action-caller-left", dial_sid),
                outcome="caller_hung_up",
                status_message="caller hung up while the dialled leg rang",
            )
        )
    return checked(events)


def call_resource(resource: Any, ctx: ProviderContext) -> Normalized:
    """A Call resource (`GET /Calls/{Sid}`): its `price`, once Twilio has filled it in."""
    if not isinstance(resource, Mapping) or "sid" not in resource or "price" not in resource:
        return Normalized.unmappable(
            NOT_PROVIDER_FORMAT, "not a Twilio Call resource (no sid, price)"
        )
    try:
        sid = _sid(resource, "sid")
        parent = resource.get("parent_call_sid")
        call_id = _sid(resource, "parent_call_sid") if parent is not None else sid
        price = resource["price"]
        if price is None:
            return Normalized()  # not priced yet: a later fetch will carry it
        cents = _cost_cents(price, resource.get("price_unit"))
        at = _time(resource, "date_updated", ctx)
        billable = _optional_int(resource, "duration")
    except _Unmappable as exc:
        return Normalized(unmapped=(exc.unmapped,))
    fields: dict[str, Any] = {"leg_id": sid, "cost_usd_cents": f"{cents:f}"}
    if billable is not None:
        fields["billable_seconds"] = billable
    event = _event(
        ctx,
        "call.cost_reported",
        call_id,
        at,
        event_id(SOURCE, sid, "price", price, resource.get("price_unit")),
        **fields,
    )
    return checked([event])


def calls_page(page: Any, ctx: ProviderContext) -> Normalized:
    """A `GET /Calls` page: every call resource on it."""
    return each_item(page, "calls", call_resource, ctx, "a Twilio Calls page")


# -- legs -----------------------------------------------------------------------------------


class _Leg:
    """What every status callback says about its leg."""

    def __init__(
        self,
        sid: str,
        parent: str | None,
        status: str,
        at: datetime,
        sequence: int | None,
        form: Mapping[str, str],
    ) -> None:
        self.sid, self.parent, self.status, self.at = sid, parent, status, at
        self.sequence, self.form = sequence, form

    @classmethod
    def of(cls, form: Mapping[str, str], ctx: ProviderContext) -> _Leg:
        sid = _sid(form, "CallSid")
        parent = _sid(form, "ParentCallSid") if "ParentCallSid" in form else None
        return cls(
            sid,
            parent,
            form["CallStatus"],
            _time(form, "Timestamp", ctx),
            _optional_int(form, "SequenceNumber"),
            form,
        )

    @property
    def first(self) -> bool:
        """The leg's first callback: it starts the leg whatever its status (a StatusCallback
        subscribed to `completed` only sends just this one)."""
        return self.status == "initiated" or self.sequence == 0

    @property
    def talk_seconds(self) -> int | None:
        return _optional_int(self.form, "CallDuration") if self.status == "completed" else None

    @property
    def started_at(self) -> datetime:
        """When the leg began, as far as this callback shows: a final callback that is also
        the first one began CallDuration seconds before it."""
        talk = self.talk_seconds if self.status in FINAL_STATUSES else None
        return self.at - timedelta(seconds=talk or 0)

    def id(self, kind: str) -> str:
        return event_id(SOURCE, self.sid, "status", self.status, self.sequence, kind)

    def message(self) -> str | None:
        return _message(self.status, self.form.get("SipResponseCode"), self.form.get("AnsweredBy"))


def _dial_leg(leg: _Leg, ctx: ProviderContext, query: Mapping[str, str]) -> Normalized:
    if leg.parent is None:
        raise _Unmappable(MISSING_FIELD, "a <Dial> child leg has no ParentCallSid", "ParentCallSid")
    call_id, dial_id = leg.parent, leg.sid
    events: list[dict[str, Any]] = []
    unmapped: list[Unmapped] = []
    if leg.first:
        try:
            user = _dial_user(leg, ctx, query)
            events.append(
                _event(
                    ctx,
                    "incoming_call.dial_started",
                    call_id,
                    leg.started_at,
                    leg.id("started"),
                    sequence=leg.sequence,
                    dial_id=dial_id,
                    **user,
                )
            )
        except _Unmappable as exc:
            unmapped.append(exc.unmapped)
    kind: str | None = None
    fields: dict[str, Any] = {"dial_id": dial_id}
    if leg.status == "ringing":
        kind = "incoming_call.dial_ringing"
    elif leg.status == "in-progress":
        kind = "incoming_call.dial_answered"
    elif leg.status in FINAL_STATUSES:
        kind = "incoming_call.dial_ended"
        fields["outcome"] = DIAL_OUTCOME[leg.status]
        fields["status_message"] = leg.message()
        fields["billable_seconds"] = leg.talk_seconds
    if kind is not None:
        events.append(
            _event(ctx, kind, call_id, leg.at, leg.id(kind), sequence=leg.sequence, **fields)
        )
    return checked(events, unmapped)


def _dial_user(leg: _Leg, ctx: ProviderContext, query: Mapping[str, str]) -> dict[str, Any]:
    """The dialled user: the routing service's query parameters, else the number's user."""
    phone = _number(leg.form, "To")
    user: dict[str, Any] = {
        "user_id": query.get("user_id") or ctx.user(phone),
        "user_phone_number": phone,
        "escalation_rule_id": query.get("escalation_rule_id") or None,
        "escalation_rule_order": _query_int(query, "escalation_rule_order"),
        "repeat_count": _query_int(query, "repeat_count"),
    }
    return user


def _parent_leg(leg: _Leg, ctx: ProviderContext) -> Normalized:
    # The voice webhook starts the incoming call; the parent's progress callbacks add nothing.
    if leg.status not in FINAL_STATUSES:
        return Normalized()
    event = _event(
        ctx,
        "incoming_call.ended",
        leg.sid,
        leg.at,
        leg.id("ended"),
        sequence=leg.sequence,
        outcome=CALL_OUTCOME[leg.status],
        status_message=None if leg.status == "completed" else leg.message(),
    )
    return checked([event])


def _outbound_leg(leg: _Leg, ctx: ProviderContext, query: Mapping[str, str]) -> Normalized:
    events: list[dict[str, Any]] = []
    if leg.first:
        relations = {name: query[name] for name in RELATION_IDS if query.get(name)}
        call_data = {k: v for k, v in query.items() if k not in RELATION_IDS}
        events.append(
            _event(
                ctx,
                "outbound_call.placed",
                leg.sid,
                leg.started_at,
                leg.id("placed"),
                sequence=leg.sequence,
                to_number=_number(leg.form, "To"),
                from_number=_number(leg.form, "From"),
                call_data=call_data,
                **relations,
            )
        )
    if leg.status == "in-progress":
        events.append(
            _event(
                ctx,
                "outbound_call.answered",
                leg.sid,
                leg.at,
                leg.id("answered"),
                sequence=leg.sequence,
            )
        )
    elif leg.status in FINAL_STATUSES:
        events.append(
            _event(
                ctx,
                "outbound_call.ended",
                leg.sid,
                leg.at,
                leg.id("ended"),
                sequence=leg.sequence,
                status=OUTBOUND_STATUS[leg.status],
                status_message=leg.message(),
                billable_seconds=leg.talk_seconds,
            )
        )
    return checked(events)


# -- fields ---------------------------------------------------------------------------------


def _event(
    ctx: ProviderContext,
    type_: str,
    call_id: str,
    at: datetime,
    eid: str,
    **fields: Any,
) -> dict[str, Any]:
    event: dict[str, Any] = {
        "event_id": eid,
        "type": type_,
        "occurred_at": rfc3339(at),
        "project_id": ctx.project_id,
        "call_id": call_id,
        "source": SOURCE,
    }
    # Absent optional values stay out of the event (the contract's "absent", not null).
    event.update({k: v for k, v in fields.items() if v is not None})
    return event


def _required(data: Mapping[str, Any], name: str) -> Any:
    value = data.get(name)
    if value is None or value == "":
        raise _Unmappable(MISSING_FIELD, f"{name} is required", name)
    return value


def _sid(data: Mapping[str, Any], name: str) -> str:
    value = _required(data, name)
    if not isinstance(value, str) or _CALL_SID.match(value) is None:
        raise _Unmappable(INVALID_FIELD, f"{name} {value!r} is not a Twilio Call SID", name)
    return value


def _number(data: Mapping[str, str], name: str) -> str:
    value = _required(data, name)
    if not is_e164(value):
        raise _Unmappable(INVALID_FIELD, f"{name} {value!r} is not an E.164 number", name)
    return str(value)


def _optional_int(data: Mapping[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None or value == "":
        return None
    text = str(value)
    if not text.isascii() or not text.isdigit():
        raise _Unmappable(INVALID_FIELD, f"{name} {value!r} is not a whole number >= 0", name)
    return int(text)


def _query_int(query: Mapping[str, str], name: str) -> int | None:
    try:
        return _optional_int(query, name)
    except _Unmappable as exc:
        raise _Unmappable(INVALID_FIELD, f"query parameter {exc.unmapped.message}", name) from None


def _time(data: Mapping[str, Any], name: str, ctx: ProviderContext) -> datetime:
    """An RFC 2822 time of the payload; the receipt time only when the payload has none."""
    text = data.get(name)
    if text is None or text == "":
        return _received_at(ctx, f"a payload without {name}")
    try:
        parsed = parsedate_to_datetime(str(text))
    except (TypeError, ValueError):
        raise _Unmappable(INVALID_FIELD, f"{name} {text!r} is not an RFC 2822 time", name) from None
    # Twilio writes UTC; "-0000" (no zone information) parses as naive.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _received_at(ctx: ProviderContext, what: str) -> datetime:
    if ctx.received_at is None:
        raise _Unmappable(
            MISSING_FIELD,
            f"{what} carries no time and the gateway passed no receipt time",
            "received_at",
        )
    return ctx.received_at


def _message(status: str, sip_code: str | None, answered_by: str | None) -> str:
    parts = [f"twilio {status}"]
    if sip_code:
        parts.append(f"SIP {sip_code}")
    if answered_by:
        parts.append(f"answered by {answered_by}")
    return ", ".join(parts)


def _cost_cents(price: Any, unit: Any) -> Decimal:
    """Twilio's price string (negative: a charge, in `price_unit`) -> US cents >= 0."""
    if unit != "USD":
        raise _Unmappable(
            UNMAPPED_VALUE,
            f"price_unit {unit!r}: ringlog holds US cents and converts no currency",
            "price_unit",
        )
    try:
        amount = Decimal(str(price))
    except InvalidOperation:
        raise _Unmappable(INVALID_FIELD, f"price {price!r} is not a decimal", "price") from None
    if not amount.is_finite():
        raise _Unmappable(INVALID_FIELD, f"price {price!r} is not a decimal", "price")
    if amount > 0:
        raise _Unmappable(
            UNMAPPED_VALUE, f"price {price!r} is a credit, not the cost of a call", "price"
        )
    return -amount * 100
