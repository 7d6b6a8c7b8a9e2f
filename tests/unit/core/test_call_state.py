"""The call cache's packed events (worker.core.call_state): what CallState gives back is what
the decoder made, for every event type, on the fast path and the contract path alike."""

from __future__ import annotations

from typing import Any

import pytest

from schemas.events import EVENT_MODELS
from tests.support.builders import (
    PROJECT,
    amended,
    answered_on_second_attempt,
    cdr_record,
    cost,
    deleted,
    late_cost_report,
    outbound_call,
    valid,
)
from worker.core.call_state import CallState
from worker.core.decode import ValidEvent
from worker.core.event_fast_path import CONTRACT_MODEL


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
    return (type(e), e.model_dump(), e.model_fields_set, e.__pydantic_extra__, ev.digest)


def test_every_event_type_comes_back_equal() -> None:
    decoded = [valid(ev) for ev in _every_type()]
    assert {ev.event.type for ev in decoded} == set(EVENT_MODELS)
    state = CallState(partition=0)
    for ev in decoded:
        assert state.merge(ev, (PROJECT, "c"))
    back = {ev.event.event_id: ev for ev in state.valid_events()}
    assert {k: _as_it_was(v) for k, v in back.items()} == {
        ev.event.event_id: _as_it_was(ev) for ev in decoded
    }
    assert all(ev.event == orig.event for orig in decoded for ev in [back[orig.event.event_id]])


def test_a_contract_path_event_keeps_its_contract_model() -> None:
    # An uppercase UUID is not canonical: the fast model refuses it, the contract model
    # accepts and canonicalises it; the cached event is of the contract class.
    ev = _every_type()[0]
    ev["incoming_call_policy_id"] = ev["incoming_call_policy_id"].upper()
    decoded = valid(ev)
    assert type(decoded.event) in CONTRACT_MODEL.values()
    state = CallState(partition=0)
    state.merge(decoded, (PROJECT, "c"))
    [back] = state.valid_events()
    assert _as_it_was(back) == _as_it_was(decoded)


def test_known_events_are_used_only_when_they_are_the_cached_ones() -> None:
    first, second = (valid(ev) for ev in _every_type()[:2])
    state = CallState(partition=0)
    state.merge(first, (PROJECT, "c"))
    state.merge(second, (PROJECT, "c"))
    stale = ValidEvent(second.event, second.digest - 1)  # not the one the cache kept
    events = state.valid_events({second.event.event_id: stale, "other": first})
    assert events[1] is not stale and events[1].digest == second.digest
    assert state.valid_events({second.event.event_id: second})[1] is second


def test_a_lower_digest_duplicate_does_not_replace_the_cached_event() -> None:
    ev = valid(_every_type()[0])
    state = CallState(partition=0)
    assert state.merge(ev, (PROJECT, "c"))
    assert not state.merge(ValidEvent(ev.event, ev.digest - 1), (PROJECT, "c"))
    assert not state.merge(ev, (PROJECT, "c"))
    assert state.merge(ValidEvent(ev.event, ev.digest + 1), (PROJECT, "c"))
    [back] = state.valid_events()
    assert back.digest == ev.digest + 1


@pytest.mark.parametrize("source", [None, "pbx"])
def test_literals_and_sources_are_shared(source: str | None) -> None:
    a, b = (dict(_every_type()[0]) for _ in range(2))
    b["event_id"] = "other"
    for ev in (a, b):
        ev["source"] = "".join(source) if source is not None else None
    state = CallState(partition=0)
    for ev in (a, b):
        state.merge(valid(ev), (PROJECT, "c"))
    x, y = state.valid_events()
    assert x.event.type is y.event.type
    assert x.event.source is y.event.source
    assert x.event.source == source
