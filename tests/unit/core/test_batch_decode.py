"""`BatchPlanner.decode` over a batch with redeliveries: a message delivered twice is decoded
once, and the result still depends on its key as well as its bytes. A message the native
decoder refuses is checked by the contract first, with no other result."""

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
from worker.core.batch_plan import BatchPlanner
from worker.core.decode import INVALID_JSON, KEY_MISMATCH, Rejection, ValidEvent
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
