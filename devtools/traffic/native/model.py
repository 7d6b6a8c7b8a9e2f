"""What every encoder shares: the calls to encode, their canonical events, and the result.

The calls come from the generator's own scenarios (`CallSource`) in a world of one project,
so one gateway tenant holds all of them. `canonical_events` is the generator's view of a
call (what `generate_calls` would send, without its delivery noise): the reference that the
provider's payloads, once normalized, must reproduce row for row.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from devtools.traffic.call import Call
from devtools.traffic.calls import CallSource
from devtools.traffic.clock import epoch_ms
from devtools.traffic.stream import DEFAULT_START
from devtools.traffic.world import Project, build_world
from schemas.tables import OUTBOUND_RELATION_IDS


@dataclass(frozen=True, slots=True)
class Post:
    """One webhook request: `route` is the path after `/{provider}/{tenant}/`; `at_ms` is
    when the provider sends it (the receipt time of requests that carry no time)."""

    route: str
    at_ms: int
    form: dict[str, str] | None = None
    query: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass
class Encoded:
    """An encoder's output: `posts` (webhooks) or `lines` (a file), the calls it expressed,
    the provider's name for each generator call / dial id, and what it skipped, by reason."""

    posts: list[Post] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    renamed: dict[str, str] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)


def simulated_project(seed: int) -> Project:
    """The one project of the simulated traffic (the gateway tenant's project)."""
    return build_world(seed, 1)[0]


def simulated_calls(n: int, *, seed: int = 1, start: datetime = DEFAULT_START) -> list[Call]:
    """`n` calls of the generator's scenarios (incoming, outbound, PBX CDR) in start order."""
    rng = random.Random(f"ringlog-native-{seed}")
    source = CallSource(rng, build_world(seed, 1), epoch_ms(start), 20.0, 0.03)
    return [source.next_call() for _ in range(n)]


def timeline(call: Call) -> list[tuple[int, dict[str, Any]]]:
    """The call's own events (no cost reports) in time order, as (ms, fields)."""
    return [(ms, f) for ms, _, f in sorted(call.events, key=lambda e: (e[0], e[1]))]


def canonical_events(
    call: Call, renamed: dict[str, str], *, resolution_ms: int = 1
) -> list[dict[str, Any]]:
    """The call's canonical events under the provider's ids, times floored to what the
    provider can write (`resolution_ms`), cost reports left out (never sent)."""
    out: list[dict[str, Any]] = []
    for n, (ms, fields) in enumerate(timeline(call)):
        at = datetime.fromtimestamp((ms - ms % resolution_ms) / 1000, UTC)
        event: dict[str, Any] = {
            "event_id": f"ref-{n:05d}",  # ties of equal times keep the generator's order
            "type": fields["type"],
            "occurred_at": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "project_id": call.project.id,
            "call_id": renamed[call.call_id],
        }
        event.update({k: v for k, v in fields.items() if k != "type"})
        if "dial_id" in event:
            event["dial_id"] = renamed[event["dial_id"]]
        out.append(event)
    return out


@dataclass
class Dial:
    """One dial attempt of an incoming call, as its events tell it."""

    dial_id: str
    started_ms: int
    user_id: str
    phone: str
    ringing_ms: int | None = None
    answered_ms: int | None = None
    ended_ms: int | None = None
    outcome: str | None = None
    billable: int | None = None


@dataclass
class Incoming:
    start_ms: int
    caller: str
    routing: str
    dials: list[Dial]
    end_ms: int | None
    outcome: str | None

    @property
    def answered(self) -> Dial | None:
        return next((d for d in self.dials if d.outcome == "completed"), None)


def incoming_of(call: Call) -> Incoming:
    """An incoming call's events gathered per dial (dials in start order)."""
    dials: dict[str, Dial] = {}
    received: dict[str, Any] = {}
    start_ms = call.start_ms
    end_ms: int | None = None
    outcome: str | None = None
    for ms, f in timeline(call):
        kind = f["type"]
        if kind == "incoming_call.received":
            received, start_ms = f, ms
        elif kind == "incoming_call.ended":
            end_ms, outcome = ms, f["outcome"]
        elif kind == "incoming_call.dial_started":
            dials[f["dial_id"]] = Dial(f["dial_id"], ms, f["user_id"], f["user_phone_number"])
        elif kind == "incoming_call.dial_ringing":
            dials[f["dial_id"]].ringing_ms = ms
        elif kind == "incoming_call.dial_answered":
            dials[f["dial_id"]].answered_ms = ms
        elif kind == "incoming_call.dial_ended":
            dial = dials[f["dial_id"]]
            dial.ended_ms, dial.outcome = ms, f["outcome"]
            dial.billable = f.get("billable_seconds")
    return Incoming(
        start_ms,
        received["caller_phone_number"],
        received["routing_phone_number"],
        list(dials.values()),
        end_ms,
        outcome,
    )


@dataclass
class Outbound:
    placed_ms: int
    to_number: str
    from_number: str
    relations: dict[str, str]
    answered_ms: int | None
    ended_ms: int | None
    status: str | None
    billable: int | None


def outbound_of(call: Call) -> Outbound:
    placed: dict[str, Any] = {}
    out = Outbound(call.start_ms, "", "", {}, None, None, None, None)
    for ms, f in timeline(call):
        if f["type"] == "outbound_call.placed":
            placed, out.placed_ms = f, ms
        elif f["type"] == "outbound_call.answered":
            out.answered_ms = ms
        elif f["type"] == "outbound_call.ended":
            out.ended_ms, out.status, out.billable = ms, f["status"], f.get("billable_seconds")
    out.to_number, out.from_number = placed["to_number"], placed["from_number"]
    out.relations = {k: placed[k] for k in OUTBOUND_RELATION_IDS if k in placed}
    return out


def closed_incoming_problem(call: Call, outbound: str) -> str | None:
    """Why a CDR-style provider (one record per finished leg) cannot express this call;
    `outbound` says why it cannot express an outbound call."""
    if call.kind == "cdr":
        return "PBX CDR (cdr.recorded): the generator's own PortSIP REST record"
    if call.kind == "outbound":
        return f"outbound call: {outbound}"
    if call.open:
        return "left open (no end): a CDR exists only once the call ended"
    if any(d.outcome == "completed" and d.answered_ms is None for d in incoming_of(call).dials):
        return "a dial answered without an answer time"
    return None


def encodable(
    calls: Iterable[Call], out: Encoded, problem: Callable[[Call], str | None]
) -> Iterator[Call]:
    """The calls an encoder can express, each recorded in `out` (its calls, its late costs);
    the others are counted in `out.skipped` by the reason `problem` gives."""
    for call in calls:
        reason = problem(call)
        if reason is not None:
            out.skipped[reason] += 1
            continue
        out.calls.append(call)
        note_costs(out, call)
        yield call


def note_costs(encoded: Encoded, call: Call) -> None:
    if call.late:
        encoded.skipped["late cost reports (events; no webhook or CEL carries a price)"] += len(
            call.late
        )
