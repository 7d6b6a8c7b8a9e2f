"""`BatchPlanner.decode` over a batch with redeliveries: a message delivered twice is decoded
once, and the result still depends on its key as well as its bytes. A message the native
decoder refuses is checked by the contract first, with no other result. The native loop over
a batch gives exactly what the Python loop gives."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import worker.core.decode as decoder
from devtools.traffic import generate_events
from tests.support.builders import PROJECT, T0, encode, received
from tests.support.builders import test_rates as rates_for_tests
from tests.support.fakes import FakeRecord
from tests.unit.core.test_native_decode import altered
from tests.unit.core.test_native_fast_path import FIELD_VALUES, SAMPLES
from worker.core.batch_plan import BatchPlanner, decode_batch, decode_batch_python
from worker.core.decode import INVALID_JSON, KEY_MISMATCH, Rejection, ValidEvent
from worker.core.event_pack import project_pool, shared_project_id
from worker.core.native_fast_path import VALIDATOR as NATIVE

needs_native = pytest.mark.skipif(NATIVE is None, reason="ringlog_native is not built")


def test_a_redelivered_message_is_decoded_once_and_its_key_still_counts() -> None:
    key, value = encode(received("call-r", 0))
    records = [
        FakeRecord("t", 0, 0, key, value),
        FakeRecord("t", 0, 1, key, value),  # the producer's retry: same key, same bytes
        FakeRecord("t", 0, 2, b"other-call", value),  # same bytes under another key
        FakeRecord("t", 0, 3, key, b"{not json"),
        FakeRecord("t", 0, 4, key, b"{not json"),
    ]
    planner = BatchPlanner(rates_for_tests(), timedelta(hours=4), cache_max_calls=10)

    decoded = planner.decode(records)

    [(first, ev1, row1), (second, ev2, row2)] = decoded.by_call[(PROJECT, "call-r")]
    assert (first.offset, second.offset) == (0, 1)
    assert isinstance(ev1, ValidEvent) and ev2 is ev1
    # The repeat's call_event row is left to the reference encoder (it is never written).
    assert row2 is None and (row1 is not None) == (NATIVE is not None)
    assert [(r.offset, why.code) for r, why in decoded.rejected] == [
        (2, KEY_MISMATCH),
        (3, INVALID_JSON),
        (4, INVALID_JSON),
    ]
    plan = planner.plan(decoded, [], T0)
    assert len(plan.event_rows) == 1 and plan.event_rows[0]["offset"] == 0
    assert plan.duplicates == 1
    assert len(plan.dead_letter_records) == len(plan.rejected_rows) == 3


# -- a refused message: the contract's checks first, the same result ----------------------------


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data(), FIELD_VALUES)
def test_checking_a_likely_invalid_object_in_the_other_order_gives_the_same_result(
    sample: dict[str, Any], data: st.DataObject, value: object
) -> None:
    altered_value = altered(sample, data, value)
    assume(altered_value is not None)
    try:
        obj = orjson.loads(altered_value or b"")
    except orjson.JSONDecodeError:
        return
    assume(isinstance(obj, dict))
    usual = decoder.validate_with_pydantic(dict(obj))
    reordered = decoder.validate_with_pydantic(dict(obj), likely_invalid=True)
    assert type(reordered) is type(usual)
    assert reordered == usual


def test_the_generated_traffic_decodes_alike_in_either_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every message of generated traffic (each kind of invalid one, redeliveries, an oversized
    event), with the native decoder refusing all of them: the same events and rejections
    whichever order the Python checks run in."""
    messages = list(generate_events(1500, seed=31, invalid_share=0.08))
    monkeypatch.setattr(decoder, "NATIVE", None)
    usual = [decoder._decode_without_native(m.key, m.value) for m in messages]
    reordered = [
        decoder._decode_without_native(m.key, m.value, likely_invalid=True) for m in messages
    ]
    assert [type(r) for r in reordered] == [type(u) for u in usual]
    assert reordered == usual
    assert [type(ev.event) for ev in reordered if isinstance(ev, ValidEvent)] == [
        type(ev.event) for ev in usual if isinstance(ev, ValidEvent)
    ]
    codes = {r.code for r in usual if isinstance(r, Rejection)}
    assert len(codes) >= 6 and sum(isinstance(u, ValidEvent) for u in usual) > 1000


# -- the native loop: the Python loop's result, record by record --------------------------------


def assert_same_batch(records: list[FakeRecord]) -> None:
    """`decode_batch` (native loop) gives what `decode_batch_python` gives: the same calls in
    the same order, the same records, events, rows and rejections, the same sharing (a
    redelivery's event is its first delivery's object, project_ids come from the pool)."""
    assert NATIVE is not None
    native = NATIVE.decode_batch(records, decoder.decode_refused, *project_pool())
    assert native is not None
    by_call, rejected = native
    want_by_call, want_rejected = decode_batch_python(records)
    assert list(by_call) == list(want_by_call)
    for key, items in by_call.items():
        assert key[0] is shared_project_id(key[0])
        want = want_by_call[key]
        assert [record for record, _, _ in items] == [record for record, _, _ in want]
        assert [type(ev) for _, ev, _ in items] == [ValidEvent] * len(want)
        assert [ev for _, ev, _ in items] == [ev for _, ev, _ in want]
        assert [ev.packed for _, ev, _ in items] == [ev.packed for _, ev, _ in want]
        assert [row for _, _, row in items] == [row for _, _, row in want]
        # A redelivery is the same object as its first delivery, as in the Python loop.
        firsts: dict[tuple[bytes | None, bytes | None], ValidEvent] = {}
        for record, ev, _ in items:
            assert firsts.setdefault((record.key, record.value), ev) is ev
    assert [(record, type(why)) for record, why in rejected] == [
        (record, type(why)) for record, why in want_rejected
    ]
    assert [why for _, why in rejected] == [why for _, why in want_rejected]


@needs_native
def test_the_native_loop_decodes_generated_batches_as_the_python_loop() -> None:
    messages = list(generate_events(3000, seed=37, invalid_share=0.08))
    records = [FakeRecord("calls", i % 3, i, m.key, m.value) for i, m in enumerate(messages)]
    # Redeliveries (the same bytes, later, under the same and under another key), a record
    # without a value and one without a key.
    records += [
        FakeRecord("calls", 1, 9000 + i, r.key, r.value) for i, r in enumerate(records[::7])
    ]
    records += [FakeRecord("calls", 2, 9900, b"other", records[5].value)]
    records += [FakeRecord("calls", 2, 9901, records[6].key, None)]
    records += [FakeRecord("calls", 2, 9902, None, records[7].value)]
    assert_same_batch(records)


@needs_native
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(SAMPLES), min_size=1, max_size=12), st.data(), FIELD_VALUES)
def test_the_native_loop_decodes_any_batch_as_the_python_loop(
    samples: list[dict[str, Any]], data: st.DataObject, value: object
) -> None:
    """Batches of altered samples (many refused, some valid only to pydantic), in any order,
    with repeats."""
    values = [orjson.dumps(sample) for sample in samples]
    values.append(altered(samples[0], data, value) or b"")
    chosen = data.draw(st.lists(st.sampled_from(values), min_size=1, max_size=20))
    records = [FakeRecord("calls", 0, offset, _call_key(v), v) for offset, v in enumerate(chosen)]
    assert_same_batch(records)


def _call_key(value: bytes) -> bytes | None:
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError:
        return b"k"
    call_id = obj.get("call_id") if isinstance(obj, dict) else None
    return call_id.encode() if isinstance(call_id, str) else None


class _Payload(bytes):
    """A value of a bytes subclass (no Kafka client gives one; the native loop leaves it)."""


@needs_native
def test_the_native_loop_leaves_values_of_other_types_to_python() -> None:
    key, value = encode(received("call-t", 0))
    records = [FakeRecord("t", 0, 0, key, value), FakeRecord("t", 0, 1, key, _Payload(b"{"))]
    assert NATIVE is not None
    assert NATIVE.decode_batch(records, decoder.decode_refused, *project_pool()) is None
    by_call, rejected = decode_batch(records)
    assert [r.offset for r, _, _ in by_call[(PROJECT, "call-t")]] == [0]
    assert [(r.offset, why.code) for r, why in rejected] == [(1, INVALID_JSON)]


@needs_native
def test_a_batch_shares_one_str_per_repeated_text_but_never_an_event_id() -> None:
    """The native batch decode makes one str object per distinct value of a repeated field
    (a call's id, its dial ids, users and numbers: `Texts`), never for event_id; the values
    are the ones each event carries."""
    records = [
        FakeRecord("t", 0, i, m.key, m.value)
        for i, m in enumerate(generate_events(3000, seed=47, invalid_share=0.0, oversized=0))
    ]
    by_call, _ = decode_batch(records)
    texts: dict[tuple[str, str], object] = {}
    event_ids = set()
    shared = 0
    for (_, call_id), items in by_call.items():
        for _, ev, _ in items:
            assert ev.values["call_id"] == call_id
            if ev.packed is None:
                continue  # the Python decoder's event: its own strs
            for name, value in ev.values.items():
                if not isinstance(value, str) or name in ("type",):
                    continue
                if name == "event_id":
                    event_ids.add(id(value))
                    continue
                first = texts.setdefault((name, value), value)
                assert first is value, f"{name}: a second str for {value!r}"
                shared += 1
    # A message delivered twice is decoded once: count each event object once.
    native_events = len({id(ev) for items in by_call.values() for _, ev, _ in items if ev.packed})
    assert len(event_ids) == native_events  # every event_id its own object
    assert shared > 3 * native_events
