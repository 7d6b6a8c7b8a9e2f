"""Correlation: the rows that one call's set of events defines (DESIGN.md section 3).

Pure: events in, rows out. No Kafka, no ClickHouse, no clock (the timeout close takes `now`
as an argument). The result depends only on the *set* of distinct events, never on their
order or on duplicates: events are de-duplicated by event_id (the larger payload digest wins
a conflict) and every "latest" is chosen by (occurred_at, sequence, event_id).

Rows are plain dicts keyed by the column names of `schemas.tables`; `ingested_at` is added by
the sink, since it is the only wall-clock column.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Protocol, cast

import orjson

from schemas.events import (
    EVENT_MODELS,
    CdrRecorded,
    CostReported,
    DialAnswered,
    DialEnded,
    DialRinging,
    DialStarted,
    Envelope,
    IncomingCallEnded,
    IncomingCallReceived,
    ItemAmended,
    ItemDeleted,
    OutboundCallAnswered,
    OutboundCallEnded,
    OutboundCallPlaced,
)
from schemas.rows import CallLogRow, CdrRow, IncomingCallLogItemRow, IncomingCallLogRow, TableName
from worker.core.costing import ZERO, rate, round_cents
from worker.core.decode import ValidEvent
from worker.core.event_fast_path import FAST_MODELS
from worker.core.native_fast_path import NATIVE_MODULE
from worker.core.rates import Direction, RatePlan

Row = IncomingCallLogRow | IncomingCallLogItemRow | CallLogRow | CdrRow
"""A row of one of the tables built from a call's events."""

ID_NAMESPACE = uuid.UUID("5d0b6c1e-2f5e-4b7a-9a43-6c1f0e0b7a11")

ITEM_END_STATUS = {
    "no_answer": "NoAnswer",
    "busy": "Busy",
    "failed": "Failed",
    "canceled": "CallerHungUp",
}
CALL_END_STATUS = {
    "no_answer": "NoAnswer",
    "busy": "Busy",
    "failed": "Failed",
    "caller_hung_up": "CallerHungUp",
    "completed": "Completed",
}
CDR_DIRECTION: dict[str, Direction | None] = {
    "INBOUND_CALL": "inbound",
    "OUTBOUND_CALL": "outbound",
    "INBOUND_OUTBOUND_CALL": "outbound",
    "EXTENSION_CALL": None,
}
_NEVER = datetime.max.replace(tzinfo=UTC)
TIMEOUT_MESSAGE = "closed by ringlog: no end event within the call timeout"


_NAMESPACE_BYTES = ID_NAMESPACE.bytes
_MILLISECOND = timedelta(milliseconds=1)


# The RFC 4122 variant (0b10xx) put into the hex digit it shares with the hash.
_VARIANT_DIGIT = {f"{n:x}": f"{(n & 0x3) | 0x8:x}" for n in range(16)}


def row_id(table: str, project_id: str, *natural: str) -> str:
    """`str(uuid.uuid5(ID_NAMESPACE, "table|project_id|natural..."))`, without building the
    UUID object (a row id is made for every row of every rebuild): the hash's hex digits with
    the version (5) and the variant written over theirs."""
    name = "|".join((table, project_id, *natural)).encode("utf-8")
    h = hashlib.sha1(_NAMESPACE_BYTES + name, usedforsecurity=False).hexdigest()
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:32]}"


def order_key(event: Envelope) -> tuple[datetime, int, str]:
    """Total order of one call's events; an absent sequence sorts first."""
    return (event.occurred_at, -1 if event.sequence is None else event.sequence, event.event_id)


def event_order(ev: ValidEvent) -> tuple[datetime, int, str]:
    """`order_key` of a decoded event, in one call (the sort key of every rebuild)."""
    e = ev.event
    return (e.occurred_at, -1 if e.sequence is None else e.sequence, e.event_id)


def seconds_between(start: datetime | None, end: datetime | None) -> int | None:
    """Whole seconds rounded up from the millisecond difference; None if unknown or negative."""
    if start is None or end is None:
        return None
    millis = (end - start) // _MILLISECOND
    if millis < 0:
        return None
    return -(-millis // 1000)


def distinct_events(events: Iterable[ValidEvent]) -> list[ValidEvent]:
    """One event per event_id (the larger digest wins), in `order_key` order."""
    chosen: dict[str, ValidEvent] = {}
    for ev in events:
        current = chosen.get(ev.event.event_id)
        if current is None or ev.digest > current.digest:
            chosen[ev.event.event_id] = ev
    return sorted(chosen.values(), key=event_order)


@dataclass
class CallRows:
    incoming_call_log: list[IncomingCallLogRow] = field(default_factory=list)
    incoming_call_log_item: list[IncomingCallLogItemRow] = field(default_factory=list)
    call_log: list[CallLogRow] = field(default_factory=list)
    cdr: list[CdrRow] = field(default_factory=list)
    # True while an incoming call or outbound call of this call id has no end event.
    open: bool = False
    # The latest event time seen for the call: the base of the timeout close.
    last_event_at: datetime | None = None

    def tables(self) -> dict[TableName, Sequence[Row]]:
        return {
            TableName.INCOMING_CALL_LOG: self.incoming_call_log,
            TableName.INCOMING_CALL_LOG_ITEM: self.incoming_call_log_item,
            TableName.CALL_LOG: self.call_log,
            TableName.CDR: self.cdr,
        }


@dataclass
class _Dial:
    dial_id: str
    started: DialStarted | None = None
    ringing: DialRinging | None = None
    answered: DialAnswered | None = None
    ended: DialEnded | None = None


@dataclass
class _Latest:
    """The latest event of each kind of one call, indexed for the rules below."""

    received: IncomingCallReceived | None = None
    call_ended: IncomingCallEnded | None = None
    placed: OutboundCallPlaced | None = None
    out_answered: OutboundCallAnswered | None = None
    out_ended: OutboundCallEnded | None = None
    dials: dict[str, _Dial] = field(default_factory=dict)
    costs: dict[str, CostReported] = field(default_factory=dict)
    cdrs: dict[str, CdrRecorded] = field(default_factory=dict)
    # Manual corrections by dial_id: every amendment in application order, and the deletions.
    amendments: dict[str, list[ItemAmended]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)

    def dial(self, dial_id: str) -> _Dial:
        found = self.dials.get(dial_id)
        if found is None:
            found = self.dials[dial_id] = _Dial(dial_id)
        return found


def _index(events: Sequence[ValidEvent]) -> _Latest:
    # Events arrive sorted ascending, so a plain overwrite keeps the latest of each kind. The
    # kind is told by `type` (each model has its own literal), most frequent first: isinstance
    # on a pydantic model class costs about 0.16 us, a string comparison a sixth of that.
    latest = _Latest()
    for wrapped in events:
        ev = wrapped.event
        kind = ev.type
        if kind == "incoming_call.dial_started":
            started = cast(DialStarted, ev)
            latest.dial(started.dial_id).started = started
        elif kind == "incoming_call.dial_ended":
            ended = cast(DialEnded, ev)
            latest.dial(ended.dial_id).ended = ended
        elif kind == "incoming_call.dial_ringing":
            ringing = cast(DialRinging, ev)
            latest.dial(ringing.dial_id).ringing = ringing
        elif kind == "call.cost_reported":
            cost = cast(CostReported, ev)
            latest.costs[cost.leg_id] = cost
        elif kind == "incoming_call.received":
            latest.received = cast(IncomingCallReceived, ev)
        elif kind == "incoming_call.ended":
            latest.call_ended = cast(IncomingCallEnded, ev)
        elif kind == "incoming_call.dial_answered":
            answered = cast(DialAnswered, ev)
            latest.dial(answered.dial_id).answered = answered
        elif kind == "outbound_call.placed":
            latest.placed = cast(OutboundCallPlaced, ev)
        elif kind == "outbound_call.ended":
            latest.out_ended = cast(OutboundCallEnded, ev)
        elif kind == "outbound_call.answered":
            latest.out_answered = cast(OutboundCallAnswered, ev)
        elif kind == "cdr.recorded":
            cdr = cast(CdrRecorded, ev)
            latest.cdrs[cdr.cdr_id] = cdr
        elif kind == "incoming_call.item_amended":
            amended = cast(ItemAmended, ev)
            latest.amendments.setdefault(amended.dial_id, []).append(amended)
        elif kind == "incoming_call.item_deleted":
            latest.deleted.add(cast(ItemDeleted, ev).dial_id)
    return latest


def build_call_rows(
    events: Iterable[ValidEvent],
    rates: RatePlan,
    *,
    now: datetime | None = None,
    timeout: timedelta | None = None,
) -> CallRows:
    """All rows of one call (one (project_id, call_id)), from its events.

    `now` and `timeout` drive the timeout close: an incoming call with no end event whose
    latest event is `timeout` or more before `now` (event time) is closed at that event.
    """
    return rows_of_distinct(distinct_events(events), rates, now=now, timeout=timeout)


def rows_of_distinct(
    distinct: Sequence[ValidEvent],
    rates: RatePlan,
    *,
    now: datetime | None = None,
    timeout: timedelta | None = None,
) -> CallRows:
    """`build_call_rows` of events that are already distinct, one per event_id (the larger
    digest), in any order. The planner's call state keeps its events so, and skips the
    de-duplication here.

    `ringlog_native`'s RowBuilder builds them when it is installed and can (it sorts them
    itself): the same rows (tests/unit/core/test_native_rows.py), in about 2 us per event
    instead of 3.4-5 on the benchmark's traffic. Else, and wherever it answers None, the
    Python code below, on the events sorted by `event_order`."""
    if ROW_BUILDER is not None:
        built = ROW_BUILDER.rows(distinct, rates, now, timeout)
        if built is not None:
            return CallRows(*built)
    ordered = sorted(distinct, key=event_order)
    return rows_of_distinct_python(ordered, rates, now=now, timeout=timeout)


def rows_of_distinct_python(
    distinct: Sequence[ValidEvent],
    rates: RatePlan,
    *,
    now: datetime | None = None,
    timeout: timedelta | None = None,
) -> CallRows:
    """`rows_of_distinct` in Python, of distinct events sorted by `event_order` (as
    `distinct_events` gives them): the reference the native builder is held to."""
    out = CallRows()
    if not distinct:
        return out
    first = distinct[0].event
    project_id, call_id = first.project_id, first.call_id
    latest = _index(distinct)
    created_at = min(ev.event.occurred_at for ev in distinct)
    updated_at = max(ev.event.occurred_at for ev in distinct)
    out.last_event_at = updated_at
    timed_out = now is not None and timeout is not None and now - updated_at >= timeout
    base_version = 2 * len(distinct)

    # An amendment creates its item (and so the parent); a deletion alone creates nothing.
    has_incoming = (
        latest.received is not None
        or latest.call_ended is not None
        or latest.dials
        or latest.amendments
    )
    if has_incoming:
        close = latest.call_ended is None and timed_out
        parent, items = _incoming(project_id, call_id, latest, rates, close, updated_at)
        version = base_version + (1 if close else 0)
        parent["created_at"], parent["updated_at"], parent["version"] = (
            created_at,
            updated_at,
            version,
        )
        out.incoming_call_log.append(parent)
        for item in items:
            item["created_at"], item["updated_at"], item["version"] = (
                created_at,
                updated_at,
                version,
            )
            out.incoming_call_log_item.append(item)
        out.open = out.open or (latest.call_ended is None and not close)

    if latest.placed or latest.out_answered or latest.out_ended:
        call = _outbound(project_id, call_id, latest, rates)
        call["created_at"], call["updated_at"], call["version"] = (
            created_at,
            updated_at,
            base_version,
        )
        out.call_log.append(call)
        out.open = out.open or latest.out_ended is None

    for cdr_id, cdr in sorted(latest.cdrs.items()):
        record = _cdr(project_id, call_id, cdr_id, cdr, rates)
        record["version"] = base_version
        out.cdr.append(record)
    return out


def _item(
    project_id: str,
    call_id: str,
    parent_id: str,
    dial: _Dial,
    cost: CostReported | None,
    rates: RatePlan,
) -> IncomingCallLogItemRow:
    started, answered, ended = dial.started, dial.answered, dial.ended
    is_answered = answered is not None or (ended is not None and ended.outcome == "completed")
    started_at = started.occurred_at if started else None
    answered_at = answered.occurred_at if answered else None
    ended_at = ended.occurred_at if ended else None

    if ended is not None:
        status = "Completed" if is_answered else ITEM_END_STATUS[ended.outcome]
    elif is_answered:
        status = "Connected"
    else:
        status = "Ringing"

    talk: int | None
    if ended is not None and ended.billable_seconds is not None:
        talk = ended.billable_seconds
    elif cost is not None and cost.billable_seconds is not None:
        talk = cost.billable_seconds
    elif not is_answered:
        talk = 0 if ended is not None else None  # still ringing: talk time not known yet
    else:
        talk = seconds_between(answered_at, ended_at)

    phone = started.user_phone_number if started else None
    item_cost, source = _leg_cost(cost, rates, "outbound", phone, talk)
    return {
        "id": row_id("incoming_call_log_item", project_id, call_id, dial.dial_id),
        "project_id": project_id,
        "incoming_call_log_id": parent_id,
        "dial_id": dial.dial_id,
        "incoming_call_policy_escalation_rule_id": started.escalation_rule_id if started else None,
        "user_id": started.user_id if started else None,
        "user_phone_number": phone,
        "status": status,
        "status_message": ended.status_message if ended else None,
        "dial_duration_in_seconds": seconds_between(started_at, ended_at),
        "talk_duration_in_seconds": talk,
        "call_cost_in_usd_cents": item_cost,
        "cost_source": source,
        "started_at": started_at,
        "answered_at": answered_at,
        "ended_at": ended_at,
        "is_answered": is_answered,
    }


def _leg_cost(
    cost: CostReported | None,
    rates: RatePlan,
    direction: Direction,
    number: str | None,
    talk: int | None,
) -> tuple[Decimal | None, str | None]:
    """A provider's cost report replaces the rated cost of its leg."""
    if cost is not None:
        return round_cents(cost.cost_usd_cents), "provider"
    return rate(rates, direction, number, talk), "rated"


def _incoming(
    project_id: str,
    call_id: str,
    latest: _Latest,
    rates: RatePlan,
    close: bool,
    last_event_at: datetime,
) -> tuple[IncomingCallLogRow, list[IncomingCallLogItemRow]]:
    parent_id = row_id("incoming_call_log", project_id, call_id)
    # The items as the dial events alone define them: the parent's status, answer and
    # escalation columns come from these, deleted legs included (DESIGN.md, "Amendments").
    computed = {
        dial_id: _item(project_id, call_id, parent_id, dial, latest.costs.get(dial_id), rates)
        for dial_id, dial in latest.dials.items()
    }
    items = _final_items(project_id, call_id, parent_id, computed, latest)
    live = [item for item in items if not item["is_deleted"]]
    received, ended = latest.received, latest.call_ended
    answered_items = [item for item in computed.values() if item["is_answered"]]
    any_answered = bool(answered_items)

    status_message: str | None = None
    ended_at: datetime | None = None
    if ended is not None:
        status = "Completed" if any_answered else CALL_END_STATUS[ended.outcome]
        status_message = ended.status_message
        ended_at = ended.occurred_at
    elif close:
        status = "Completed" if any_answered else "NoAnswer"
        status_message = TIMEOUT_MESSAGE
        ended_at = last_event_at
    elif any_answered:
        status = "Connected"
    elif any(item["ended_at"] is not None for item in computed.values()):
        status = "Escalated"
    elif computed:
        status = "Ringing"
    else:
        status = "Initiated"

    # The answering item: the earliest dial_answered; items answered only through
    # outcome=completed (no answer time) come after, by start time then dial_id.
    answered_by: IncomingCallLogItemRow | None = None
    if answered_items:
        answered_by = min(
            answered_items,
            key=lambda it: (
                it["answered_at"] or _NEVER,
                it["started_at"] or _NEVER,
                it["dial_id"],
            ),
        )

    latest_attempt: DialStarted | None = None
    for dial in latest.dials.values():
        if dial.started is not None and (
            latest_attempt is None or order_key(dial.started) > order_key(latest_attempt)
        ):
            latest_attempt = dial.started

    started_at = received.occurred_at if received else None
    duration = seconds_between(started_at, ended_at)
    routing = received.routing_phone_number if received else None
    incoming_cost, _ = _leg_cost(latest.costs.get(call_id), rates, "inbound", routing, duration)
    # The final (amended) costs of the items that are not deleted.
    outgoing = sum(
        (item["call_cost_in_usd_cents"] for item in live if item["call_cost_in_usd_cents"]),
        ZERO,
    )
    parent: IncomingCallLogRow = {
        "id": parent_id,
        "project_id": project_id,
        "incoming_call_policy_id": received.incoming_call_policy_id if received else None,
        "caller_phone_number": received.caller_phone_number if received else None,
        "routing_phone_number": routing,
        "call_provider_call_id": call_id,
        "status": status,
        "status_message": status_message,
        "call_duration_in_seconds": duration,
        "call_cost_in_usd_cents": (
            None if incoming_cost is None else round_cents(incoming_cost + outgoing)
        ),
        "incoming_call_cost_in_usd_cents": incoming_cost,
        "outgoing_call_cost_in_usd_cents": round_cents(outgoing),
        "started_at": started_at,
        "answered_at": answered_by["answered_at"] if answered_by else None,
        "ended_at": ended_at,
        "answered_by_user_id": answered_by["user_id"] if answered_by else None,
        "current_escalation_rule_order": (
            latest_attempt.escalation_rule_order if latest_attempt else None
        ),
        "repeat_count": latest_attempt.repeat_count if latest_attempt else None,
        "dial_attempts": len(live),
    }
    return parent, items


def _final_items(
    project_id: str,
    call_id: str,
    parent_id: str,
    computed: dict[str, IncomingCallLogItemRow],
    latest: _Latest,
) -> list[IncomingCallLogItemRow]:
    """Every item row as written: the computed item (or, for a dial_id that only amendments
    know, a blank one) with its amendments applied and its deletion flag."""
    items: list[IncomingCallLogItemRow] = []
    for dial_id in sorted(computed.keys() | latest.amendments.keys()):
        base = computed.get(dial_id) or _blank_item(project_id, call_id, parent_id, dial_id)
        item = _amended(base, latest.amendments.get(dial_id, ()))
        item["is_deleted"] = 1 if dial_id in latest.deleted else 0
        items.append(item)
    return items


def _blank_item(
    project_id: str, call_id: str, parent_id: str, dial_id: str
) -> IncomingCallLogItemRow:
    """An item created by an amendment alone (the query API's create): NULL columns until
    dial events fill them, not answered."""
    return {
        "id": row_id("incoming_call_log_item", project_id, call_id, dial_id),
        "project_id": project_id,
        "incoming_call_log_id": parent_id,
        "dial_id": dial_id,
        "incoming_call_policy_escalation_rule_id": None,
        "user_id": None,
        "user_phone_number": None,
        "status": None,
        "status_message": None,
        "dial_duration_in_seconds": None,
        "talk_duration_in_seconds": None,
        "call_cost_in_usd_cents": None,
        "cost_source": None,
        "started_at": None,
        "answered_at": None,
        "ended_at": None,
        "is_answered": False,
    }


def _amended(
    item: IncomingCallLogItemRow, amendments: Sequence[ItemAmended]
) -> IncomingCallLogItemRow:
    """`item` with each field the amendments carry overriding its column, in order (the
    later amendment wins per field); the columns no amendment names keep their values."""
    out = item.copy()
    for amendment in amendments:
        if amendment.status is not None:
            out["status"] = amendment.status
        if amendment.status_message is not None:
            out["status_message"] = amendment.status_message
        if amendment.is_answered is not None:
            out["is_answered"] = amendment.is_answered
        if amendment.call_cost_usd_cents is not None:
            out["call_cost_in_usd_cents"] = round_cents(amendment.call_cost_usd_cents)
            out["cost_source"] = "manual"
        if amendment.user_id is not None:
            out["user_id"] = amendment.user_id
        if amendment.user_phone_number is not None:
            out["user_phone_number"] = amendment.user_phone_number
        if amendment.escalation_rule_id is not None:
            out["incoming_call_policy_escalation_rule_id"] = amendment.escalation_rule_id
    return out


def _outbound(project_id: str, call_id: str, latest: _Latest, rates: RatePlan) -> CallLogRow:
    placed, answered, ended = latest.placed, latest.out_answered, latest.out_ended
    cost = latest.costs.get(call_id)
    answered_at = answered.occurred_at if answered else None
    ended_at = ended.occurred_at if ended else None
    talk: int | None
    if ended is not None and ended.billable_seconds is not None:
        talk = ended.billable_seconds
    elif cost is not None and cost.billable_seconds is not None:
        talk = cost.billable_seconds
    elif answered is None:
        talk = 0
    else:
        talk = seconds_between(answered_at, ended_at)
    to_number = placed.to_number if placed else None
    call_cost, source = _leg_cost(cost, rates, "outbound", to_number, talk)
    return {
        "id": row_id("call_log", project_id, call_id),
        "project_id": project_id,
        "call_provider_call_id": call_id,
        "to_number": to_number,
        "from_number": placed.from_number if placed else None,
        "call_data": orjson.dumps(placed.call_data).decode() if placed else None,
        "status": ended.status if ended else None,
        "status_message": ended.status_message if ended else None,
        "call_duration_in_seconds": talk,
        "call_cost_in_usd_cents": call_cost,
        "cost_source": source,
        "user_id": placed.user_id if placed else None,
        "team_id": placed.team_id if placed else None,
        "incident_id": placed.incident_id if placed else None,
        "alert_id": placed.alert_id if placed else None,
        "monitor_id": placed.monitor_id if placed else None,
        "scheduled_maintenance_id": placed.scheduled_maintenance_id if placed else None,
        "status_page_id": placed.status_page_id if placed else None,
        "status_page_announcement_id": placed.status_page_announcement_id if placed else None,
        "on_call_duty_policy_id": placed.on_call_duty_policy_id if placed else None,
        "on_call_duty_policy_escalation_rule_id": (
            placed.on_call_duty_policy_escalation_rule_id if placed else None
        ),
        "on_call_duty_policy_schedule_id": (
            placed.on_call_duty_policy_schedule_id if placed else None
        ),
        "started_at": placed.occurred_at if placed else None,
        "answered_at": answered_at,
        "ended_at": ended_at,
    }


def _cdr(project_id: str, call_id: str, cdr_id: str, cdr: CdrRecorded, rates: RatePlan) -> CdrRow:
    cost: Decimal | None
    source: str | None
    if cdr.cost is not None:
        cost, source = round_cents(cdr.cost), "provider"
    else:
        direction = CDR_DIRECTION.get(cdr.direction) if cdr.direction else None
        cost = rate(rates, direction, cdr.callee, cdr.duration) if direction is not None else None
        source = "rated" if cost is not None else None
    return {
        "id": row_id("cdr", project_id, cdr_id),
        "project_id": project_id,
        "session_id": call_id,
        # every field of the record, as PortSIP names it
        "cdr_id": cdr.cdr_id,
        "caller": cdr.caller,
        "caller_domain": cdr.caller_domain,
        "caller_display_name": cdr.caller_display_name,
        "callee": cdr.callee,
        "callee_domain": cdr.callee_domain,
        "callee_display_name": cdr.callee_display_name,
        "started_at": cdr.started_at,
        "rang_at": cdr.rang_at,
        "answered_at": cdr.answered_at,
        "ended_at": cdr.ended_at,
        "sip_call_id": cdr.sip_call_id,
        "direction": cdr.direction,
        "end_reason": cdr.end_reason,
        "reroute_reason": cdr.reroute_reason,
        "status_code": cdr.status_code,
        "destination": cdr.destination,
        "outbound_caller_id": cdr.outbound_caller_id,
        "did_cid": cdr.did_cid,
        "trunk": cdr.trunk,
        "duration": cdr.duration,
        "cost": cost,
        "billed_account": cdr.billed_account,
        "service_number": cdr.service_number,
        "user_data": cdr.user_data,
        "cost_source": source,
    }


NativeRows = tuple[
    list[IncomingCallLogRow],
    list[IncomingCallLogItemRow],
    list[CallLogRow],
    list[CdrRow],
    bool,
    datetime | None,
]
"""CallRows' fields in order, as `ringlog_native.RowBuilder.rows` returns them."""


class RowBuilder(Protocol):
    def rows(
        self,
        distinct: Sequence[ValidEvent],
        rates: RatePlan,
        now: datetime | None,
        timeout: timedelta | None,
        /,
    ) -> NativeRows | None: ...


def _native_row_builder() -> RowBuilder | None:
    """ringlog_native's RowBuilder with this module's rules' objects, or None without it."""
    builder = getattr(NATIVE_MODULE, "RowBuilder", None)  # absent in an older build
    if builder is None:
        return None
    classes = {model: event_type for event_type, model in EVENT_MODELS.items()}
    classes.update({model: event_type for event_type, model in FAST_MODELS.items()})
    native: RowBuilder = builder(
        classes,
        ValidEvent,
        rate,
        round_cents,
        ZERO,
        _NAMESPACE_BYTES,
        TIMEOUT_MESSAGE,
        ITEM_END_STATUS,
        CALL_END_STATUS,
        CDR_DIRECTION,
        _NEVER,
        orjson.dumps,
        UTC,
    )
    return native


ROW_BUILDER = _native_row_builder()
"""The native row builder (None without ringlog_native): `rows_of_distinct`'s fast path."""
