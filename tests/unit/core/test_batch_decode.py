"""`BatchPlanner.decode` over a batch with redeliveries: a message delivered twice is decoded
once, and the result still depends on its key as well as its bytes."""

from __future__ import annotations

from datetime import timedelta

from tests.support.builders import PROJECT, T0, encode, received
from tests.support.builders import test_rates as rates_for_tests
from tests.support.fakes import FakeRecord
from worker.core.batch_plan import BatchPlanner
from worker.core.decode import INVALID_JSON, KEY_MISMATCH, ValidEvent
from worker.core.native_fast_path import VALIDATOR as NATIVE


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
