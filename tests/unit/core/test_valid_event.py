"""`ValidEvent` without its model: the native decoder and the call cache's unpack make events
whose model is built only when `event` is first read, and the hot path (decode, merge, rows,
pack) never reads it. The model built then is the one pydantic would have made."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest

import worker.core.decode as decoder
from devtools.planner_load import as_records
from devtools.traffic import generate_events
from tests.unit.core.test_native_fast_path import NATIVE, assert_same_event
from worker.core.batch_plan import BatchPlanner
from worker.core.decode import ValidEvent, decode, decode_stored
from worker.core.event_pack import pack, unpack
from worker.core.rates import load_rate_plan

MESSAGES = list(generate_events(400, seed=41, invalid_share=0.0, oversized=0))


def _built(ev: ValidEvent) -> bool:
    return ev._event is not None


def _pure(key: bytes | None, value: bytes, monkeypatch: pytest.MonkeyPatch) -> ValidEvent:
    with monkeypatch.context() as patch:
        patch.setattr(decoder, "NATIVE", None)
        expected = decode(key, value)
    assert isinstance(expected, ValidEvent)
    return expected


def test_the_native_decoder_builds_no_model_and_event_builds_pydantics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    checked = 0
    for message in MESSAGES:
        key, value = message.key, message.value
        native = NATIVE.decode(value, key)
        if native is None:
            continue
        assert type(native) is ValidEvent
        assert not _built(native)
        expected = _pure(key, value, monkeypatch)
        assert native.values == expected.values
        assert list(native.values) == list(expected.values)  # pydantic's order of the fields
        assert native.model_class is type(expected.event)
        assert isinstance(native.fields_set, frozenset)
        model = native.event
        assert _built(native) and native.event is model  # built once
        assert model.__dict__ is native.values  # the same dict: nothing copied
        assert isinstance(native.fields_set, set) and native.fields_set is model.model_fields_set
        assert_same_event(model, expected.event)
        assert native == expected and native.digest == expected.digest
        checked += 1
    assert checked > len(MESSAGES) // 2


def test_equality_compares_model_and_digest_never_the_packed_bytes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    key, value = MESSAGES[0].key, MESSAGES[0].value
    native = NATIVE.decode(value, key)
    expected = _pure(key, value, monkeypatch)
    assert native is not None and native.packed is not None and expected.packed is None
    assert native == expected
    assert native != ValidEvent(expected.event, expected.digest + 1)
    assert native != NATIVE.decode(MESSAGES[1].value, MESSAGES[1].key)
    with pytest.raises(TypeError):
        hash(native)
    assert repr(native) == repr(expected)


def test_an_event_made_from_a_model_keeps_it() -> None:
    decoded = NATIVE.decode(MESSAGES[2].value, MESSAGES[2].key)
    assert decoded is not None
    eager = ValidEvent(decoded.event, 7)
    assert _built(eager)
    assert eager.values is eager.event.__dict__
    assert eager.model_class is type(eager.event)
    assert eager.fields_set is eager.event.model_fields_set


def test_unpack_builds_no_model_either() -> None:
    calls: dict[tuple[str, str], dict[str, ValidEvent]] = defaultdict(dict)
    for message in MESSAGES:
        ev = NATIVE.decode(message.value, message.key)
        if ev is not None:
            call = (ev.values["project_id"], ev.values["call_id"])
            calls[call][ev.values["event_id"]] = ev
    call, events = max(calls.items(), key=lambda kv: len(kv[1]))
    assert len(events) >= 3
    back = unpack(pack(events), call)
    assert list(back) == list(events)
    # Each event its own values, its fields in the decoder's (pydantic's) order.
    assert [list(ev.values) for ev in back.values()] == [list(ev.values) for ev in events.values()]
    assert len({id(ev.values) for ev in back.values()}) == len(back)
    assert not any(_built(ev) for ev in back.values())
    assert back == events  # each built on comparison, equal to the decoded one


def test_the_planners_hot_path_builds_no_model() -> None:
    """Decode, merge, rows and packing of whole batches read `values`, never `event`: a
    change that reads the model there again costs every event its model (and fails here)."""
    planner = BatchPlanner(
        load_rate_plan(None), call_timeout=timedelta(hours=4), cache_max_calls=10_000
    )
    records = as_records(generate_events(3000, seed=43, invalid_share=0.0, oversized=0))
    plans = []
    for first in range(0, len(records), 1000):
        decoded = planner.decode(records[first : first + 1000])
        plans.append(planner.plan(decoded, [], datetime(2026, 12, 4, tzinfo=UTC)))
    assert sum(len(rows) for plan in plans for rows in plan.tables.values()) > 0
    # The events the native decoder made (with their packed bytes; the rest came from
    # pydantic, with their models).
    native = [item[1] for plan in plans for item in plan.event_rows.items if item[1].packed]
    assert len(native) > len(records) // 2
    assert not any(_built(ev) for ev in native)
    planner.rest()
    for _, state in planner.cache.items():
        assert not any(_built(ev) for ev in state.valid_events())


def test_a_stored_event_is_read_natively_given_its_call_id() -> None:
    """`decode_stored(payload, call_id)` (the reload): the same event as the Python path's,
    without its model and with its packed bytes; a call_id that is not the payload's only
    loses the native read (the stored key was checked when the event was consumed)."""
    checked = 0
    for message in MESSAGES:
        if message.value is None or message.key is None:
            continue
        payload = message.value.decode("utf-8")
        call_id = message.key.decode("utf-8")
        python = decode_stored(payload)
        if not isinstance(python, ValidEvent):
            continue
        native = decode_stored(payload, call_id)
        assert isinstance(native, ValidEvent)
        if NATIVE.decode(message.value, message.key) is not None:
            assert not _built(native) and native.packed is not None
            checked += 1
        assert native == python
        assert decode_stored(payload, call_id + "-other") == python
    assert checked > len(MESSAGES) // 2
