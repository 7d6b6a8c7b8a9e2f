"""The native row builder (`ringlog_native.RowBuilder`) gives exactly the rows of
`correlation.rows_of_distinct_python`, or answers None.

Differential: for hypothesis-drawn call event sets (every event type, every outcome and
direction, optional fields present or absent, amendments and deletions, cost reports for
dial legs and for the call, timeouts), the generator's traffic and the shared 40-call vector,
each event decoded by the native validator, by pydantic (fast and contract models) or
unpacked from the call cache, the native result equals the Python one: the same rows with
the same keys in the same order, values of the same types and reprs, the same `open` and
`last_event_at`. It answers for all of them (so this cannot pass by falling back), and odd
inputs make it answer None, never a different row.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.traffic import generate_events
from schemas.events import EVENT_MODELS, DialStarted
from tests.support import builders as b
from tests.support.sample_vector import SAMPLE_DIR, sample_messages
from tests.unit.core.test_properties import AMENDMENT_VALUES
from worker.core import correlation, event_pack
from worker.core.correlation import (
    CallRows,
    distinct_events,
    rows_of_distinct,
    rows_of_distinct_python,
)
from worker.core.decode import ValidEvent, decode, validate_with_pydantic
from worker.core.native_fast_path import NATIVE_MISSING

if correlation.ROW_BUILDER is None:  # pragma: no cover - depends on the installation
    if os.environ.get("CI"):
        pytest.fail(f"ringlog_native is not installed: {NATIVE_MISSING}", pytrace=False)
    pytest.skip(f"ringlog_native is not installed: {NATIVE_MISSING}", allow_module_level=True)
BUILDER = correlation.ROW_BUILDER
RATES = b.test_rates()
CALL = "native-call"
DIALS = ["d1", "d2", "d3"]
TIMEOUT = timedelta(seconds=600)
# Numbers the rate plan prices differently (a prefix of its own, the default) and a CDR
# callee that is an extension.
NUMBERS = ["+15550111", "+4915550333", "+447700900123"]
UUIDS = [b.ALICE, b.BOB, b.RULE]


def exact(rows: CallRows) -> list[Any]:
    """Everything `==` could miss: key order, value types, reprs (a Decimal's exponent)."""
    tables = [
        [[(key, type(value), repr(value)) for key, value in row.items()] for row in table]
        for table in rows.tables().values()
    ]
    return [tables, repr(rows.open), repr(rows.last_event_at)]


def native_rows(
    distinct: list[ValidEvent], now: datetime | None, timeout: timedelta | None
) -> CallRows:
    built = BUILDER.rows(distinct, RATES, now, timeout)
    assert built is not None, "the native builder fell back on ordinary events"
    return CallRows(*built)


def assert_same(
    events: list[ValidEvent], now: datetime | None = None, timeout: timedelta | None = None
) -> None:
    distinct = distinct_events(events)
    python = rows_of_distinct_python(distinct, RATES, now=now, timeout=timeout)
    # In another order: the native builder sorts them itself.
    assert exact(native_rows(distinct[::-1], now, timeout)) == exact(python)
    assert exact(native_rows(distinct, now, timeout)) == exact(python)


def maybe(draw: st.DrawFn, fields: dict[str, Any]) -> dict[str, Any]:
    """`fields` with each one kept or left out (the optional fields of an event)."""
    return {name: value for name, value in fields.items() if draw(st.booleans())}


money = st.sampled_from(["0", "0.00005", "0.00015", "3.14159", "12.5", "7"]) | st.integers(0, 999)
seconds = st.integers(0, 400)


@st.composite
def call_event(draw: st.DrawFn) -> dict[str, Any]:
    """One event of the call, of any type, with its optional fields drawn."""
    data = draw(typed_event())
    if draw(st.booleans()):
        data["source"] = None  # a null: an absent field
    return data


@st.composite
def typed_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(EVENT_MODELS)))
    t = draw(st.integers(0, 120)) / 4  # quarter seconds: equal times occur
    extra: dict[str, Any] = {"event_id": f"e{draw(st.integers(0, 30))}"}
    extra |= maybe(draw, {"sequence": draw(st.integers(0, 3))})
    dial = draw(st.sampled_from(DIALS))
    number = draw(st.sampled_from(NUMBERS))
    if kind == "incoming_call.received":
        return b.received(CALL, t, routing=number, **extra)
    if kind == "incoming_call.dial_started":
        optional = {
            "escalation_rule_id": b.RULE,
            "escalation_rule_order": draw(st.integers(1, 3)),
            "repeat_count": draw(st.integers(0, 2)),
        }
        started = b.dial_started(
            CALL, dial, t, user=draw(st.sampled_from(UUIDS)), phone=number, **extra
        )
        del started["escalation_rule_id"]
        return started | maybe(draw, optional)
    if kind in ("incoming_call.dial_ringing", "incoming_call.dial_answered"):
        return b.event(kind, CALL, t, dial_id=dial, **extra)
    if kind == "incoming_call.dial_ended":
        outcome = draw(st.sampled_from(["completed", "no_answer", "busy", "failed", "canceled"]))
        optional = {"status_message": "dial ended", "billable_seconds": draw(seconds)}
        return b.dial("ended", CALL, dial, t, outcome=outcome, **extra, **maybe(draw, optional))
    if kind == "incoming_call.ended":
        outcome = draw(
            st.sampled_from(["completed", "no_answer", "busy", "failed", "caller_hung_up"])
        )
        return b.ended(CALL, t, outcome, **extra, **maybe(draw, {"status_message": "over"}))
    if kind == "call.cost_reported":
        leg = draw(st.sampled_from([CALL, *DIALS]))
        optional = {"billable_seconds": draw(seconds)}
        return b.cost(CALL, leg, t, draw(money), **extra, **maybe(draw, optional))
    if kind == "outbound_call.placed":
        ids = {
            name: draw(st.sampled_from(UUIDS))
            for name in EVENT_MODELS[kind].model_fields
            if name.endswith("_id") and name not in ("event_id", "project_id", "call_id")
        }
        call_data = draw(
            st.dictionaries(
                st.text(max_size=4),
                st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=6),
                max_size=3,
            )
        )
        fields = {"to_number": number, "from_number": "+15550100", "call_data": call_data}
        return b.event(kind, CALL, t, **fields, **extra, **maybe(draw, ids))
    if kind == "outbound_call.answered":
        return b.event(kind, CALL, t, **extra)
    if kind == "outbound_call.ended":
        status = draw(st.sampled_from(["Success", "Error", "Low Balance", "Missed Call", "Busy"]))
        optional = {"status_message": "done", "billable_seconds": draw(seconds)}
        return b.event(kind, CALL, t, status=status, **extra, **maybe(draw, optional))
    if kind == "incoming_call.item_amended":
        chosen = draw(
            st.dictionaries(st.sampled_from(list(AMENDMENT_VALUES)), st.integers(0, 1), min_size=1)
        )
        values = {name: AMENDMENT_VALUES[name][i] for name, i in chosen.items()}
        return b.amended(CALL, draw(st.sampled_from([*DIALS, "manual"])), t, **values, **extra)
    if kind == "incoming_call.item_deleted":
        return b.deleted(CALL, draw(st.sampled_from([*DIALS, "manual", "gone"])), t, **extra)
    return b.event(kind, CALL, t, **extra, **draw(cdr_fields()))


@st.composite
def cdr_fields(draw: st.DrawFn) -> dict[str, Any]:
    directions = ["INBOUND_CALL", "OUTBOUND_CALL", "EXTENSION_CALL", "INBOUND_OUTBOUND_CALL"]
    optional = {
        "caller": "101",
        "started_at": b.at(0),
        "answered_at": draw(st.sampled_from(["", b.at(2)])),
        "ended_at": b.at(30),
        "status_code": 200,
        "cost": draw(money),
        "trunk": "trunk-1",
    }
    # What rating reads is mostly present, so that every direction gets rated.
    rated = {
        "callee": draw(st.sampled_from([*NUMBERS, "102"])),
        "direction": draw(st.sampled_from(directions)),
        "duration": draw(seconds),
    }
    mostly = st.sampled_from([True, True, True, False])
    rated = {name: value for name, value in rated.items() if draw(mostly)}
    return {"cdr_id": draw(st.sampled_from(["x", "y", "z"]))} | rated | maybe(draw, optional)


def decoded(data: dict[str, Any], path: str, digest: int) -> ValidEvent:
    """`data` as one of the decoder's paths gives it: the native validator, pydantic's fast
    model, or the contract model itself."""
    if path == "native":
        return b.valid(data)
    present = {name: value for name, value in data.items() if value is not None}
    if path == "pydantic":
        event = validate_with_pydantic(present)
    else:
        event = EVENT_MODELS[data["type"]].model_validate(present)
    assert isinstance(event, EVENT_MODELS[data["type"]]), event
    return ValidEvent(event, digest)


def through_cache(events: list[ValidEvent]) -> list[ValidEvent]:
    """The events as the planner reads them: packed in the call cache and unpacked."""
    if not events:
        return []
    key = (events[0].event.project_id, events[0].event.call_id)
    by_id = {ev.event.event_id: ev for ev in distinct_events(events)}
    return list(event_pack.unpack(event_pack.pack(by_id), key).values())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    events=st.lists(
        st.tuples(
            call_event(),
            st.sampled_from(["native", "pydantic", "contract"]),
            st.integers(0, 2**64 - 1),
        ),
        max_size=30,
    ),
    now=st.none() | st.integers(0, 1400).map(lambda s: b.T0 + timedelta(seconds=s / 2)),
    timeout=st.sampled_from([TIMEOUT, timedelta(seconds=5), timedelta(0)]),
    cached=st.booleans(),
)
def test_native_rows_are_the_python_rows(
    events: list[tuple[dict[str, Any], str, int]],
    now: datetime | None,
    timeout: timedelta,
    cached: bool,
) -> None:
    valid = [decoded(data, path, digest) for data, path, digest in events]
    if cached:
        valid = through_cache(valid)
    assert_same(valid)
    assert_same(valid, now=now, timeout=timeout if now is not None else None)


def generated_calls(n_events: int, seed: int) -> list[list[ValidEvent]]:
    calls: dict[tuple[str, str], list[ValidEvent]] = defaultdict(list)
    for message in generate_events(n_events, seed=seed, invalid_share=0.0):
        ev = decode(message.key, message.value)
        if isinstance(ev, ValidEvent):
            calls[(ev.event.project_id, ev.event.call_id)].append(ev)
    return list(calls.values())


def test_generated_traffic_natively() -> None:
    for events in generated_calls(6000, seed=7):
        last = max(ev.event.occurred_at for ev in events)
        assert_same(events)
        assert_same(events, now=last + TIMEOUT, timeout=TIMEOUT)  # every open call closes
        assert_same(through_cache(events), now=last, timeout=TIMEOUT)


@pytest.mark.skipif(not SAMPLE_DIR.exists(), reason="shared example vector not present")
def test_sample_vector_natively() -> None:
    calls: dict[tuple[str, str], list[ValidEvent]] = defaultdict(list)
    for key, value in sample_messages():
        ev = decode(key, value)
        if isinstance(ev, ValidEvent):
            calls[(ev.event.project_id, ev.event.call_id)].append(ev)
    assert len(calls) == 40
    for events in calls.values():
        assert_same(events)
        assert_same(events, now=b.T0 + timedelta(days=3650), timeout=TIMEOUT)


def test_no_events() -> None:
    assert_same([])
    assert_same([], now=b.T0, timeout=TIMEOUT)


def test_rows_of_distinct_takes_the_native_path(monkeypatch: pytest.MonkeyPatch) -> None:
    events = distinct_events(b.valid(e) for e in b.answered_on_second_attempt())
    calls: list[int] = []

    def python(*args: Any, **kwargs: Any) -> CallRows:
        calls.append(1)
        return rows_of_distinct_python(*args, **kwargs)

    monkeypatch.setattr(correlation, "rows_of_distinct_python", python)
    native = rows_of_distinct(events, RATES)
    assert calls == []
    monkeypatch.setattr(correlation, "ROW_BUILDER", None)
    assert exact(rows_of_distinct(events, RATES)) == exact(native)
    assert calls == [1]


class OddDialStarted(DialStarted):
    """An event class the native builder was not given."""


def odd_calls() -> list[list[ValidEvent]]:
    """Calls the native builder must leave to Python: each has one thing it cannot vouch
    for (Python gives rows for each, or raises as it would anyway)."""
    started = b.valid(b.dial_started(CALL, "d1", 1))
    event = started.event
    values = dict(event.__dict__)

    def variant(**changes: Any) -> ValidEvent:
        return ValidEvent(type(event).model_construct(**(values | changes)), started.digest)

    class Subclass(str):
        pass

    return [
        [ValidEvent(OddDialStarted.model_construct(**values), started.digest)],
        [variant(occurred_at=event.occurred_at.replace(tzinfo=None))],
        [variant(occurred_at=event.occurred_at.astimezone(timezone(timedelta(hours=2))))],
        [variant(dial_id=Subclass("d1"))],
        [variant(type="incoming_call.dial_ringing")],
        [variant(sequence=2**64)],
        [variant(sequence=True)],
        [variant(event_id="\ud800")],
    ]


@pytest.mark.parametrize("events", odd_calls())
def test_odd_events_fall_back(events: list[ValidEvent]) -> None:
    received = b.valid(b.received(CALL, 0))
    assert BUILDER.rows([received, *events], RATES, None, None) is None
    assert BUILDER.rows((received,), RATES, None, None) is not None
    assert BUILDER.rows(iter([received]), RATES, None, None) is None  # type: ignore[arg-type]
