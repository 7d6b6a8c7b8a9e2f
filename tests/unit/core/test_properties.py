"""Property tests: rows depend only on the set of distinct events.

Any order, any duplicates, any split into batches merged through the state cache: the same
rows. Calls come from two sources: the traffic generator (realistic) and a hypothesis
strategy that builds arbitrary event sets (unrealistic orders, missing events, conflicts).
"""

from __future__ import annotations

import random
from collections import defaultdict
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.traffic import generate_calls
from tests.support import builders as b
from worker.core.call_state import CallKey, CallState
from worker.core.correlation import CallRows, build_call_rows
from worker.core.decode import ValidEvent, decode
from worker.core.rates import RatePlan

RATES: RatePlan = b.test_rates()
ITEM_STATUSES = {"Ringing", "Connected", "Completed", "NoAnswer", "Busy", "Failed", "CallerHungUp"}
PARENT_STATUSES = ITEM_STATUSES | {"Initiated", "Escalated"}


def key_of(ev: ValidEvent) -> CallKey:
    return (ev.event.project_id, ev.event.call_id)


def generated_calls(seed: int, n_calls: int) -> list[list[ValidEvent]]:
    calls: dict[tuple[str, str], list[ValidEvent]] = defaultdict(list)
    for msg in generate_calls(n_calls, seed=seed, invalid_share=0.0, duplicate_share=0.2):
        decoded = decode(msg.key, msg.value)
        if isinstance(decoded, ValidEvent):
            calls[(decoded.event.project_id, decoded.event.call_id)].append(decoded)
    return list(calls.values())


def canonical(rows: CallRows) -> dict[str, list[dict[str, Any]]]:
    return {
        t: sorted((dict(r) for r in rs), key=lambda r: str(r["id"]))
        for t, rs in rows.tables().items()
    }


def check_invariants(rows: CallRows, amended: frozenset[str] = frozenset()) -> None:
    """What holds for any event set; `amended`: the dial_ids that manual corrections touch."""
    for table in rows.tables().values():
        for row in table:
            for column, value in row.items():
                if column.endswith("_in_seconds") and value is not None:
                    assert isinstance(value, int) and value >= 0, (column, value)
    for parent in rows.incoming_call_log:
        assert parent["status"] in PARENT_STATUSES
        if parent["call_cost_in_usd_cents"] is not None:
            incoming = parent["incoming_call_cost_in_usd_cents"]
            outgoing = parent["outgoing_call_cost_in_usd_cents"]
            assert incoming is not None and outgoing is not None
            assert parent["call_cost_in_usd_cents"] == incoming + outgoing
    for item in rows.incoming_call_log_item:
        if item["dial_id"] in amended:
            # A manual correction may set any item status, or none yet on a created item.
            assert item["status"] is None or item["status"] in ITEM_STATUSES
            continue
        assert item["status"] in ITEM_STATUSES
        assert item["is_answered"] == (item["status"] in ("Connected", "Completed"))
    for parent in rows.incoming_call_log:
        live = [i for i in rows.incoming_call_log_item if not i["is_deleted"]]
        assert parent["dial_attempts"] == len(live)
        assert parent["outgoing_call_cost_in_usd_cents"] == sum(
            (i["call_cost_in_usd_cents"] or 0 for i in live), Decimal(0)
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), rnd=st.randoms(use_true_random=False))
def test_generated_calls_any_order_any_duplicates_same_rows(seed: int, rnd: random.Random) -> None:
    for events in generated_calls(seed, 6):
        reference = build_call_rows(events, RATES)
        check_invariants(reference)
        shuffled = events + rnd.sample(events, k=rnd.randint(0, len(events)))
        rnd.shuffle(shuffled)
        assert canonical(build_call_rows(shuffled, RATES)) == canonical(reference)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), rnd=st.randoms(use_true_random=False))
def test_incremental_merging_in_batches_equals_one_shot(seed: int, rnd: random.Random) -> None:
    """What the worker does: merge batches into cached state (with evictions that reload
    the events stored so far) and rebuild; the last rebuild equals the one-shot rows."""
    for events in generated_calls(seed, 4):
        order = events + rnd.sample(events, k=rnd.randint(0, len(events) // 2))
        rnd.shuffle(order)
        stored: list[ValidEvent] = []
        state = CallState(partition=0)
        last: CallRows | None = None
        i = 0
        while i < len(order):
            size = rnd.randint(1, 5)
            batch, i = order[i : i + size], i + size
            if rnd.random() < 0.3:  # evicted: reload from call_event
                state = CallState(partition=0)
                for ev in stored:
                    state.merge(ev, key_of(ev))
            changed = [ev for ev in batch if state.merge(ev, key_of(ev))]
            stored.extend(changed)
            if changed:
                last = build_call_rows(state.valid_events(), RATES)
            state.pack()  # to rest between batches, as the planner does
        assert last is not None
        assert canonical(last) == canonical(build_call_rows(events, RATES))


# -- arbitrary event sets -------------------------------------------------------------------

CALL = "prop-call"
DIALS = ["d1", "d2", "d3"]
times = st.integers(0, 600).map(lambda s: s / 2)


# Two values per amendable field, so that conflicting amendments of one field occur.
AMENDMENT_VALUES: dict[str, tuple[Any, Any]] = {
    "status": ("Busy", "Completed"),
    "status_message": ("fixed", "fixed again"),
    "is_answered": (True, False),
    "call_cost_usd_cents": ("0.5", 12),
    "user_id": (b.ALICE, b.BOB),
    "user_phone_number": ("+15550999", "+4915550999"),
    "escalation_rule_id": (b.RULE, "0d1f3c55-6a57-4c4e-9a43-2b7b3e1f0a99"),
}


@st.composite
def arbitrary_event(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(
        st.sampled_from(
            [
                "received",
                "started",
                "ringing",
                "answered",
                "dial_ended",
                "ended",
                "cost",
                "placed",
                "out_answered",
                "out_ended",
                "cdr",
                "amended",
                "deleted",
            ]
        )
    )
    t = draw(times)
    seq = draw(st.none() | st.integers(0, 3))
    extra: dict[str, Any] = {"event_id": f"e{draw(st.integers(0, 40))}"}
    if seq is not None:
        extra["sequence"] = seq
    dial = draw(st.sampled_from(DIALS))
    if kind == "received":
        return b.received(CALL, t, **extra)
    if kind == "started":
        return b.dial_started(
            CALL,
            dial,
            t,
            user=draw(st.sampled_from([b.ALICE, b.BOB])),
            escalation_rule_order=draw(st.integers(1, 3)),
            repeat_count=draw(st.integers(0, 2)),
            **extra,
        )
    if kind in ("ringing", "answered"):
        return b.dial(kind, CALL, dial, t, **extra)
    if kind == "dial_ended":
        outcome = draw(st.sampled_from(["completed", "no_answer", "busy", "failed", "canceled"]))
        billable = draw(st.none() | st.integers(0, 300))
        if billable is not None:
            extra["billable_seconds"] = billable
        return b.dial("ended", CALL, dial, t, outcome=outcome, **extra)
    if kind == "ended":
        outcome = draw(
            st.sampled_from(["completed", "no_answer", "busy", "failed", "caller_hung_up"])
        )
        return b.ended(CALL, t, outcome, **extra)
    if kind == "cost":
        leg = draw(st.sampled_from([CALL, *DIALS]))
        return b.cost(CALL, leg, t, str(draw(st.integers(0, 999)) / 100), **extra)
    if kind == "placed":
        return b.event(
            "outbound_call.placed",
            CALL,
            t,
            to_number="+4915550333",
            from_number="+15550100",
            call_data={"n": draw(st.integers(-1000, 1000))},
            **extra,
        )
    if kind == "amended":
        fields = draw(
            st.dictionaries(
                st.sampled_from(list(AMENDMENT_VALUES)),
                st.integers(0, 1),
                min_size=1,
            )
        )
        values = {name: AMENDMENT_VALUES[name][i] for name, i in fields.items()}
        return b.amended(CALL, draw(st.sampled_from([*DIALS, "manual"])), t, **values, **extra)
    if kind == "deleted":
        return b.deleted(CALL, draw(st.sampled_from([*DIALS, "manual", "gone"])), t, **extra)
    if kind == "out_answered":
        return b.event("outbound_call.answered", CALL, t, **extra)
    if kind == "out_ended":
        return b.event(
            "outbound_call.ended",
            CALL,
            t,
            status=draw(st.sampled_from(["Success", "Error", "Busy"])),
            **extra,
        )
    return b.event(
        "cdr.recorded",
        CALL,
        t,
        cdr_id=draw(st.sampled_from(["x", "y"])),
        callee="+4915550333",
        direction=draw(st.sampled_from(["INBOUND_CALL", "OUTBOUND_CALL", "EXTENSION_CALL"])),
        duration=draw(st.integers(0, 500)),
        **extra,
    )


@settings(max_examples=300, deadline=None)
@given(
    events=st.lists(arbitrary_event(), min_size=1, max_size=25),
    rnd=st.randoms(use_true_random=False),
    now=st.none() | times,
)
def test_arbitrary_event_sets_are_order_independent(
    events: list[dict[str, Any]], rnd: random.Random, now: float | None
) -> None:
    from datetime import timedelta

    decoded = [b.valid(e) for e in events]
    kwargs: dict[str, Any] = {}
    if now is not None:
        kwargs = {"now": b.T0 + timedelta(seconds=now * 40), "timeout": timedelta(seconds=600)}
    reference = build_call_rows(decoded, RATES, **kwargs)
    amended = frozenset(e["dial_id"] for e in events if e["type"] == "incoming_call.item_amended")
    check_invariants(reference, amended)
    again = decoded + rnd.sample(decoded, k=rnd.randint(0, len(decoded)))
    rnd.shuffle(again)
    assert canonical(build_call_rows(again, RATES, **kwargs)) == canonical(reference)


@settings(max_examples=150, deadline=None)
@given(
    events=st.lists(arbitrary_event(), min_size=1, max_size=25),
    rnd=st.randoms(use_true_random=False),
)
def test_arbitrary_events_merged_in_batches_equal_one_shot(
    events: list[dict[str, Any]], rnd: random.Random
) -> None:
    """Amendments and deletions included: batches through the cache, with evictions and
    reloads, end at the rows of the whole set."""
    decoded = [b.valid(e) for e in events]
    order = decoded + rnd.sample(decoded, k=rnd.randint(0, len(decoded)))
    rnd.shuffle(order)
    stored: list[ValidEvent] = []
    state = CallState(partition=0)
    last: CallRows | None = None
    i = 0
    while i < len(order):
        size = rnd.randint(1, 4)
        batch, i = order[i : i + size], i + size
        if rnd.random() < 0.3:
            state = CallState(partition=0)
            for ev in stored:
                state.merge(ev, key_of(ev))
        changed = [ev for ev in batch if state.merge(ev, key_of(ev))]
        stored.extend(changed)
        if changed:
            last = build_call_rows(state.valid_events(), RATES)
        state.pack()  # to rest between batches, as the planner does
    assert last is not None
    assert canonical(last) == canonical(build_call_rows(decoded, RATES))


def test_the_cache_keeps_events_smaller_with_the_same_values() -> None:
    """CallState packs a call's events at rest (benchmarks/memory.py); what it gives back is
    equal to what went in (class, values, fields-set, digest), with a fields-set of its own per
    event, the call's ids from its key and shared literals, and the events merged are left
    unchanged."""
    [first_call, second_call, *_] = generated_calls(seed=3, n_calls=4)
    states = []
    for events in (first_call, second_call):
        before = [
            (type(ev.event), ev.event.model_dump(), ev.event.model_fields_set, ev.digest)
            for ev in events
        ]
        key = (str(events[0].event.project_id), "".join(events[0].event.call_id))  # new strings
        state = CallState(partition=0)
        for ev in events:
            state.merge(ev, key)
        state.pack()  # to rest, as between two batches
        after = [
            (type(ev.event), ev.event.model_dump(), ev.event.model_fields_set, ev.digest)
            for ev in events
        ]
        assert after == before
        back = {ev.event.event_id: ev for ev in state.valid_events()}
        assert len(back) == len({ev.event.event_id for ev in events})
        for ev in events:
            got = back[ev.event.event_id]
            if got.digest != ev.digest:
                continue  # a conflicting duplicate: the larger digest is kept
            assert type(got.event) is type(ev.event)
            assert got.event == ev.event
            assert got.event.model_fields_set == ev.event.model_fields_set
        assert all(ev.event.call_id is key[1] for ev in back.values())
        assert all(ev.event.project_id is key[0] for ev in back.values())
        states.append(state)
    sets: list[object] = []
    types_: dict[str, object] = {}
    for state in states:
        for ev in state.valid_events():
            fields = ev.event.__pydantic_fields_set__
            assert type(fields) is set  # of its own, as pydantic's (model_copy adds to it)
            assert all(fields is not other for other in sets)
            sets.append(fields)
            assert types_.setdefault(ev.event.type, ev.event.type) is ev.event.type
