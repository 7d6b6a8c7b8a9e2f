"""`BatchPlanner.decode` over a batch with redeliveries: a message delivered twice is decoded
once, and the result still depends on its key as well as its bytes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from tests.support.builders import PROJECT, T0, encode, received
from tests.support.builders import test_rates as rates_for_tests
from worker.core.batch_plan import BatchPlanner
from worker.core.decode import INVALID_JSON, KEY_MISMATCH, ValidEvent


@dataclass(frozen=True)
class _Record:
    key: bytes | None
    value: bytes | None
    offset: int
    topic: str = "t"
    partition: int = 0


def test_a_redelivered_message_is_decoded_once_and_its_key_still_counts() -> None:
    key, value = encode(received("call-r", 0))
    records = [
        _Record(key, value, 0),
        _Record(key, value, 1),  # the producer's retry: same key, same bytes
        _Record(b"other-call", value, 2),  # same bytes under another key
        _Record(key, b"{not json", 3),
        _Record(key, b"{not json", 4),
    ]
    planner = BatchPlanner(rates_for_tests(), timedelta(hours=4), cache_max_calls=10)

    decoded = planner.decode(records)

    [(first, ev1), (second, ev2)] = decoded.by_call[(PROJECT, "call-r")]
    assert (first.offset, second.offset) == (0, 1)
    assert isinstance(ev1, ValidEvent) and ev2 is ev1
    assert [(r.offset, why.code) for r, why in decoded.rejected] == [
        (2, KEY_MISMATCH),
        (3, INVALID_JSON),
        (4, INVALID_JSON),
    ]
    plan = planner.plan(decoded, [], T0)
    assert len(plan.event_rows) == 1 and plan.event_rows[0]["offset"] == 0
    assert plan.duplicates == 1
    assert len(plan.dead_letter_records) == len(plan.rejected_rows) == 3
