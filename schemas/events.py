"""Pydantic v2 models of the producer contract (events, version 1).

Strict on purpose: a wrong type, a bad UUID, a timestamp without an offset or a number that is
not E.164 is an error naming the field. Extra fields are ignored (producers may be newer than
the worker) and a JSON null counts as an absent field (see `worker.core.decode`).
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    model_validator,
)
from pydantic_core import PydanticCustomError

# Matched whole with fullmatch (a `$` would let a trailing newline through) and on ASCII
# digits only (`\d` takes any script's digits).
_RFC3339 = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt ]([0-9]{2}:[0-9]{2}:[0-9]{2})(?:\.([0-9]+))?"
    r"([Zz]|[+-][0-9]{2}:[0-5][0-9])"  # RFC 3339: offset minutes 00-59 (fromisoformat takes 60)
)
# The form producers almost always send ("T", milliseconds, an offset as fromisoformat reads
# it): parsed as it stands, ~0.9 us cheaper per timestamp than splitting it into groups first.
_RFC3339_MILLIS = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}(?:Z|[+-][0-9]{2}:[0-5][0-9])"
)
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


_BAD_TIME = "must be an RFC 3339 timestamp with offset"


def parse_timestamp(value: object) -> datetime:
    """RFC 3339 with a mandatory offset, kept to the millisecond, returned in UTC."""
    if not isinstance(value, str):
        raise PydanticCustomError("timestamp", _BAD_TIME)
    try:
        if _RFC3339_MILLIS.fullmatch(value) is not None:
            parsed = datetime.fromisoformat(value)
        else:
            m = _RFC3339.fullmatch(value)
            if m is None:
                raise ValueError(value)
            date, clock, fraction, offset = m.groups()
            millis = ((fraction or "") + "000")[:3]  # digits below the millisecond are truncated
            if offset in ("Z", "z"):
                offset = "+00:00"
            parsed = datetime.fromisoformat(f"{date}T{clock}.{millis}{offset}")
        # OverflowError: an offset that moves year 1 or 9999 out of datetime's range.
        return parsed if parsed.tzinfo is UTC else parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise PydanticCustomError("timestamp", _BAD_TIME) from None


def _optional_timestamp(value: object) -> datetime | None:
    # PBX CDRs send "" for a time that never happened (e.g. answered_at of a missed call).
    if value is None or value == "":
        return None
    return parse_timestamp(value)


# Matched whole with fullmatch: `$` would let "<uuid>\n" through unchanged, and no UUID
# column can store it.
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _uuid(value: object) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("uuid", "must be a UUID")
    if _CANONICAL_UUID.fullmatch(value):
        return value  # already canonical: skip building a uuid.UUID
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise PydanticCustomError("uuid", "must be a UUID") from None


def _e164(value: object) -> str:
    if not isinstance(value, str) or _E164.fullmatch(value) is None:
        raise PydanticCustomError("e164", "must be an E.164 phone number (+ and 2-15 digits)")
    return value


# A decimal as producers write it: ASCII digits only (Decimal() alone would also take "1_000"
# and non-ASCII digits such as "١٢").
_DECIMAL_TEXT = re.compile(r"^\s*[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?\s*$", re.ASCII)


def _money(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise PydanticCustomError("decimal", "must be a decimal")
    if isinstance(value, str) and _DECIMAL_TEXT.match(value) is None:
        raise PydanticCustomError("decimal", "must be a decimal")
    try:
        amount = Decimal(str(value).strip()) if not isinstance(value, int) else Decimal(value)
    except InvalidOperation:
        raise PydanticCustomError("decimal", "must be a decimal") from None
    if not amount.is_finite():
        raise PydanticCustomError("decimal", "must be a decimal")
    if amount < 0:
        raise PydanticCustomError("negative", "must be >= 0")
    return amount


_TIME_SCHEMA = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 with an offset (Z or +hh:mm); kept to the millisecond",
}
Timestamp = Annotated[datetime, BeforeValidator(parse_timestamp), WithJsonSchema(_TIME_SCHEMA)]
OptionalTimestamp = Annotated[
    datetime | None,
    BeforeValidator(_optional_timestamp),
    WithJsonSchema({"anyOf": [_TIME_SCHEMA, {"type": "string", "maxLength": 0}]}),
]
UUIDStr = Annotated[
    str, BeforeValidator(_uuid), WithJsonSchema({"type": "string", "format": "uuid"})
]
E164 = Annotated[
    str,
    BeforeValidator(_e164),
    WithJsonSchema({"type": "string", "pattern": f"^{_E164.pattern}$", "description": "E.164"}),
]
Money = Annotated[
    Decimal,
    BeforeValidator(_money),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?$"},
            ],
            "description": "US cents, exact decimal >= 0",
        }
    ),
]
Id128 = Annotated[str, Field(strict=True, min_length=1, max_length=128)]
Text = Annotated[str, Field(strict=True)]
NonNegativeInt = Annotated[StrictInt, Field(ge=0)]

DialOutcome = Literal["completed", "no_answer", "busy", "failed", "canceled"]
CallOutcome = Literal["completed", "no_answer", "busy", "failed", "caller_hung_up"]
OutboundStatus = Literal["Success", "Error", "Low Balance", "Missed Call", "Busy"]
CdrDirection = Literal["INBOUND_CALL", "OUTBOUND_CALL", "EXTENSION_CALL", "INBOUND_OUTBOUND_CALL"]
# The statuses an item row can hold (DESIGN.md section 3, "Status"): what an amendment may set.
ItemStatus = Literal[
    "Ringing", "Connected", "Completed", "NoAnswer", "Busy", "Failed", "CallerHungUp"
]


class Envelope(BaseModel):
    """Fields every event carries."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    schema_version: Literal[1] = 1
    event_id: Id128
    type: str
    occurred_at: Timestamp
    sequence: NonNegativeInt | None = None
    project_id: UUIDStr
    call_id: Id128
    source: Annotated[str, Field(strict=True, max_length=64)] | None = None


class IncomingCallReceived(Envelope):
    type: Literal["incoming_call.received"]
    incoming_call_policy_id: UUIDStr
    caller_phone_number: E164
    routing_phone_number: E164


class DialStarted(Envelope):
    type: Literal["incoming_call.dial_started"]
    dial_id: Id128
    user_id: UUIDStr
    user_phone_number: E164
    escalation_rule_id: UUIDStr | None = None
    escalation_rule_order: Annotated[StrictInt, Field(ge=1)] | None = None
    repeat_count: NonNegativeInt | None = None


class DialRinging(Envelope):
    type: Literal["incoming_call.dial_ringing"]
    dial_id: Id128


class DialAnswered(Envelope):
    type: Literal["incoming_call.dial_answered"]
    dial_id: Id128


class DialEnded(Envelope):
    type: Literal["incoming_call.dial_ended"]
    dial_id: Id128
    outcome: DialOutcome
    status_message: Text | None = None
    billable_seconds: NonNegativeInt | None = None


class IncomingCallEnded(Envelope):
    type: Literal["incoming_call.ended"]
    outcome: CallOutcome
    status_message: Text | None = None


class OutboundCallPlaced(Envelope):
    type: Literal["outbound_call.placed"]
    to_number: E164
    from_number: E164
    call_data: Annotated[dict[str, Any], Field(strict=True)]
    user_id: UUIDStr | None = None
    team_id: UUIDStr | None = None
    incident_id: UUIDStr | None = None
    alert_id: UUIDStr | None = None
    monitor_id: UUIDStr | None = None
    scheduled_maintenance_id: UUIDStr | None = None
    status_page_id: UUIDStr | None = None
    status_page_announcement_id: UUIDStr | None = None
    on_call_duty_policy_id: UUIDStr | None = None
    on_call_duty_policy_escalation_rule_id: UUIDStr | None = None
    on_call_duty_policy_schedule_id: UUIDStr | None = None


class OutboundCallAnswered(Envelope):
    type: Literal["outbound_call.answered"]


class OutboundCallEnded(Envelope):
    type: Literal["outbound_call.ended"]
    status: OutboundStatus
    status_message: Text | None = None
    billable_seconds: NonNegativeInt | None = None


class CostReported(Envelope):
    type: Literal["call.cost_reported"]
    leg_id: Id128
    cost_usd_cents: Money
    billable_seconds: NonNegativeInt | None = None


AMENDABLE_FIELDS: tuple[str, ...] = (
    "status",
    "status_message",
    "is_answered",
    "call_cost_usd_cents",
    "user_id",
    "user_phone_number",
    "escalation_rule_id",
)
"""The item fields an `incoming_call.item_amended` may carry; it must carry at least one."""


NO_AMENDED_FIELD = "no_amended_field"
"""The pydantic error type of an amendment that carries none of AMENDABLE_FIELDS: a missing
field rather than a bad value, so the decoder reports it as `missing_field`."""


class ItemAmended(Envelope):
    """A manual correction of one item (the query API's create and update publish it)."""

    # Producers read "at least one of the amendable fields" from the exported JSON Schema too.
    model_config = ConfigDict(
        extra="ignore",
        frozen=True,
        json_schema_extra={"anyOf": [{"required": [name]} for name in AMENDABLE_FIELDS]},
    )

    type: Literal["incoming_call.item_amended"]
    dial_id: Id128
    status: ItemStatus | None = None
    status_message: Text | None = None
    is_answered: StrictBool | None = None
    call_cost_usd_cents: Money | None = None
    user_id: UUIDStr | None = None
    user_phone_number: E164 | None = None
    escalation_rule_id: UUIDStr | None = None

    @model_validator(mode="after")
    def _carries_a_field(self) -> ItemAmended:
        if all(getattr(self, name) is None for name in AMENDABLE_FIELDS):
            raise PydanticCustomError(
                NO_AMENDED_FIELD,
                "{event_type} needs at least one of: {fields}",
                {"event_type": self.type, "fields": ", ".join(AMENDABLE_FIELDS)},
            )
        return self


class ItemDeleted(Envelope):
    """A manual deletion of one item (the query API's delete publishes it); final."""

    type: Literal["incoming_call.item_deleted"]
    dial_id: Id128


class CdrRecorded(Envelope):
    """A complete PBX call detail record (PortSIP field names)."""

    type: Literal["cdr.recorded"]
    cdr_id: Id128
    caller: Text | None = None
    caller_domain: Text | None = None
    caller_display_name: Text | None = None
    callee: Text | None = None
    callee_domain: Text | None = None
    callee_display_name: Text | None = None
    started_at: OptionalTimestamp = None
    rang_at: OptionalTimestamp = None
    answered_at: OptionalTimestamp = None
    ended_at: OptionalTimestamp = None
    sip_call_id: Text | None = None
    direction: CdrDirection | None = None
    # Free text: PBXs send values outside their own documented enums.
    end_reason: Text | None = None
    reroute_reason: Text | None = None
    status_code: StrictInt | None = None
    destination: Text | None = None
    outbound_caller_id: Text | None = None
    did_cid: Text | None = None
    trunk: Text | None = None
    duration: NonNegativeInt | None = None
    cost: Money | None = None
    billed_account: Text | None = None
    service_number: Text | None = None
    user_data: Text | None = None


Event = (
    IncomingCallReceived
    | DialStarted
    | DialRinging
    | DialAnswered
    | DialEnded
    | IncomingCallEnded
    | OutboundCallPlaced
    | OutboundCallAnswered
    | OutboundCallEnded
    | CostReported
    | ItemAmended
    | ItemDeleted
    | CdrRecorded
)

EVENT_MODELS: dict[str, type[Envelope]] = {
    "incoming_call.received": IncomingCallReceived,
    "incoming_call.dial_started": DialStarted,
    "incoming_call.dial_ringing": DialRinging,
    "incoming_call.dial_answered": DialAnswered,
    "incoming_call.dial_ended": DialEnded,
    "incoming_call.ended": IncomingCallEnded,
    "outbound_call.placed": OutboundCallPlaced,
    "outbound_call.answered": OutboundCallAnswered,
    "outbound_call.ended": OutboundCallEnded,
    "call.cost_reported": CostReported,
    "incoming_call.item_amended": ItemAmended,
    "incoming_call.item_deleted": ItemDeleted,
    "cdr.recorded": CdrRecorded,
}

EVENT_TYPES: tuple[str, ...] = tuple(EVENT_MODELS)
