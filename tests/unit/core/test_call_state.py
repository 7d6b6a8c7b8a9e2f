"""The call cache's packed events (worker.core.call_state): what CallState gives back is what
the decoder made, for every event type, on the fast path and the contract path alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.events import EVENT_MODELS
from tests.support.builders import (
    PROJECT,
    T0,
    amended,
    answered_on_second_attempt,
    cdr_record,
    cost,
    deleted,
    encode,
    late_cost_report,
    outbound_call,
    valid,
)
from tests.support.builders import (
    test_rates as rates_for_tests,
)
from tests.support.fakes import FakeRecord
from worker.core import call_state, event_pack
from worker.core.batch_plan import BatchPlanner
from worker.core.call_state import BatchItem, CallState, MergeTally
from worker.core.decode import ValidEvent
from worker.core.event_fast_path import CONTRACT_MODEL


@pytest.fixture(autouse=True, params=["native", "marshal"])
def packed_as(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test in both formats: the native packer's (when installed) and the Python one."""
    if request.param == "marshal":
        monkeypatch.setattr(event_pack, "_NATIVE", None)
    elif event_pack._NATIVE is None:  # pragma: no cover - depends on the installation
        pytest.skip("ringlog_native is not installed")
    return str(request.param)


def _every_type() -> list[dict[str, Any]]:
    events = [
        *answered_on_second_attempt("c"),
        *outbound_call("c"),
        *cdr_record("c"),
        *late_cost_report("c"),
        cost("c", "d1", 50, "1.25"),
        amended("c", "d1", 60, status="Completed"),
        deleted("c", "d2", 61),
    ]
    for ev in events:
        ev["call_id"] = "c"
    return events


def _as_it_was(ev: ValidEvent) -> tuple[object, ...]:
    e = ev.event
    values = tuple((name, type(v), v) for name, v in e.__dict__.items())
    return (type(e), values, e.model_fields_set, e.__pydantic_extra__, ev.digest)


def _rested(events: list[ValidEvent], native: bool | None = None) -> CallState:
    """A call with `events`, packed to rest as between two batches (`native`: in which format
    it must rest, if it matters)."""
    state = CallState(partition=0)
    for ev in events:
        state.merge(ev, (PROJECT, "c"))
    state.pack()
    if native is not None:
        assert (state.packed[:1] == bytes([event_pack.NATIVE_TAG])) is native
    return state


def test_every_event_type_comes_back_equal_after_rest(packed_as: str) -> None:
    decoded = [valid(ev) for ev in _every_type()]
    assert {ev.event.type for ev in decoded} == set(EVENT_MODELS)
    back = {ev.event.event_id: ev for ev in _rested(decoded, packed_as == "native").valid_events()}
    assert {k: _as_it_was(v) for k, v in back.items()} == {
        ev.event.event_id: _as_it_was(ev) for ev in decoded
    }
    assert all(back[ev.event.event_id].event == ev.event for ev in decoded)
    assert all(ev.event.call_id is back[ev.event.event_id].event.call_id for ev in back.values())


def test_a_contract_path_event_keeps_its_contract_model(packed_as: str) -> None:
    # An uppercase UUID is not canonical: the fast model refuses it, the contract model
    # accepts and canonicalises it; the packed event comes back of the contract class.
    ev = _every_type()[0]
    ev["incoming_call_policy_id"] = ev["incoming_call_policy_id"].upper()
    decoded = valid(ev)
    assert type(decoded.event) in CONTRACT_MODEL.values()
    [back] = _rested([decoded], packed_as == "native").valid_events()
    assert _as_it_was(back) == _as_it_was(decoded)


def test_a_time_not_in_utc_comes_back_with_its_offset() -> None:
    decoded = valid(_every_type()[0])
    local = decoded.event.occurred_at.astimezone(timezone(timedelta(hours=2)))
    odd = ValidEvent(decoded.event.model_copy(update={"occurred_at": local}), decoded.digest)
    [back] = _rested([odd], native=False).valid_events()  # the native packer refuses it
    assert back.event.occurred_at == local
    assert back.event.occurred_at.utcoffset() == timedelta(hours=2)


def test_fields_sets_past_the_pool_are_packed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(event_pack, "_POOL_MAX", 0)
    monkeypatch.setattr(event_pack, "_FIELDS_SETS", [])
    monkeypatch.setattr(event_pack, "_FIELDS_SET_INDEX", {})
    decoded = [valid(ev) for ev in _every_type()]
    back = {ev.event.event_id: ev for ev in _rested(decoded).valid_events()}
    assert [_as_it_was(back[ev.event.event_id]) for ev in decoded] == [
        _as_it_was(ev) for ev in decoded
    ]


def test_duplicates_across_rests_keep_the_larger_digest() -> None:
    ev = valid(_every_type()[0])
    state = _rested([ev])
    assert not state.merge(ValidEvent(ev.event, ev.digest - 1), (PROJECT, "c"))
    assert not state.merge(ev, (PROJECT, "c"))
    state.pack()
    assert state.merge(ValidEvent(ev.event, ev.digest + 1), (PROJECT, "c"))
    state.pack()
    [back] = state.valid_events()
    assert back.digest == ev.digest + 1
    assert len(state.valid_events()) == 1


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), max_size=12), st.booleans())
def test_merge_batch_is_merge_of_each_event_in_turn(
    picks: list[tuple[int, int]], rested: bool
) -> None:
    """`merge_batch` (the planner's, once per call) answers and keeps what `merge` of each
    event in turn does: duplicates and repeats within the batch included."""
    kinds = [valid(ev) for ev in _every_type()[:4]]
    batch = [ValidEvent(kinds[i].event, kinds[i].digest + bump) for i, bump in picks]
    one_by_one = _rested(kinds[:1]) if rested else CallState(partition=0)
    at_once = _rested(kinds[:1]) if rested else CallState(partition=0)
    expected = [one_by_one.merge(ev, (PROJECT, "c")) for ev in batch]
    assert at_once.merge_batch(batch, (PROJECT, "c")) == expected
    for state in (one_by_one, at_once):
        state.pack()
    assert [_as_it_was(ev) for ev in at_once.valid_events()] == [
        _as_it_was(ev) for ev in one_by_one.valid_events()
    ]


def test_unpacked_events_stay_while_the_batch_works_on_them() -> None:
    first, second = (valid(ev) for ev in _every_type()[:2])
    state = _rested([first])
    state.merge(second, (PROJECT, "c"))
    events = state.valid_events()
    assert events[1] is second  # merged in this batch: the decoder's own object
    assert state.valid_events()[0] is events[0]  # unpacked once per batch
    state.pack()
    assert state.valid_events()[1] is not second


@pytest.mark.parametrize("source", [None, "pbx"])
def test_literals_and_sources_are_shared(source: str | None) -> None:
    a, b = (dict(_every_type()[0]) for _ in range(2))
    b["event_id"] = "other"
    for ev in (a, b):
        ev["source"] = "".join(source) if source is not None else None
    x, y = _rested([valid(a), valid(b)]).valid_events()
    assert x.event.type is y.event.type
    assert x.event.source is y.event.source
    assert x.event.source == source


def test_the_planner_keeps_the_latest_batchs_calls_unpacked_until_idle() -> None:
    a_events = answered_on_second_attempt("call-a")
    b_events = outbound_call("call-b")
    planner = BatchPlanner(rates_for_tests(), timedelta(hours=4), cache_max_calls=10)

    def batch(events: list[dict[str, Any]]) -> None:
        records = [_Record(*encode(ev), offset=i) for i, ev in enumerate(events)]
        planner.plan(planner.decode(records), [], T0)

    def state(key: tuple[str, str]) -> CallState:
        found = planner.cache.peek(key)
        assert found is not None
        return found

    a, b = (PROJECT, "call-a"), (PROJECT, "call-b")
    batch(a_events[:2] + b_events[:1])
    assert not state(a).resting and not state(b).resting
    order = [key for key, _ in planner.cache.items()]
    assert order[0][0] is order[1][0]  # the cache keys share one project_id string
    batch(b_events[1:])
    assert state(a).resting and not state(b).resting
    assert [key for key, _ in planner.cache.items()] == order  # resting is not a use
    assert planner.rest() == 1
    assert state(b).resting
    batch(a_events[2:])
    assert {ev.event.event_id for ev in state(a).valid_events()} == {
        ev["event_id"] for ev in a_events
    }


@dataclass
class _Record:
    key: bytes | None
    value: bytes | None
    offset: int
    topic: str = "t"
    partition: int = 0


def test_each_event_gets_a_fields_set_of_its_own() -> None:
    # As pydantic's: model_copy(update=...) adds to it, which a shared frozenset would refuse.
    a, b = (dict(_every_type()[0]) for _ in range(2))
    b["event_id"] = "other"
    x, y = _rested([valid(a), valid(b)]).valid_events()
    assert type(x.event.model_fields_set) is set
    assert x.event.model_fields_set == y.event.model_fields_set
    assert x.event.model_fields_set is not y.event.model_fields_set
    copy = x.event.model_copy(update={"sequence": 9})
    assert "sequence" in copy.model_fields_set


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2)), max_size=12), st.booleans())
def test_merge_items_is_merge_batch_with_its_tally(
    picks: list[tuple[int, int]], rested: bool
) -> None:
    """`merge_items` (the planner's loop, native when installed) keeps what `merge_batch`
    keeps, and counts each event: a new one's item and type, a duplicate's type, every time;
    the native loop and the Python one (`_merge_items`) alike."""
    kinds = [valid(ev) for ev in _every_type()[:4]]
    batch = [ValidEvent(kinds[i].event, kinds[i].digest + bump) for i, bump in picks]
    items: list[BatchItem] = [
        (FakeRecord("t", 0, i, None, None), ev, None) for i, ev in enumerate(batch)
    ]
    by_events = _rested(kinds[:1]) if rested else CallState(partition=0)
    flags = by_events.merge_batch(batch, (PROJECT, "c"))
    tallies = []
    for native in (True, False):
        state = _rested(kinds[:1]) if rested else CallState(partition=0)
        tally = MergeTally()
        if native and call_state._NATIVE_MERGE is None:
            pytest.skip("ringlog_native is not built")
        merge = call_state._NATIVE_MERGE if native else None
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(call_state, "_NATIVE_MERGE", merge)
            assert state.merge_items(items, (PROJECT, "c"), tally) == (True in flags)
        state.pack()
        assert [_as_it_was(ev) for ev in state.valid_events()] == [
            _as_it_was(ev) for ev in _packed_copy(by_events).valid_events()
        ]
        tallies.append(tally)
    native_tally, python_tally = tallies
    assert native_tally == python_tally
    assert [item for item, new in zip(items, flags, strict=True) if new] == python_tally.new_rows
    new_types = [(ev.event.type, new) for ev, new in zip(batch, flags, strict=True)]
    assert python_tally.written == [kind for kind, new in new_types if new]
    assert python_tally.duplicate == [kind for kind, new in new_types if not new]
    assert python_tally.times == [ev.event.occurred_at for ev in batch]


def _packed_copy(state: CallState) -> CallState:
    state.pack()
    return state
