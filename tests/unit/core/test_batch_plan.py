"""PLANNED AHEAD (`worker.core.batch_plan`): a batch planned before its reload, its uncached
calls taken as new, then completed with their stored events, is the plan of a planner that
had those calls cached with their stored events all along: the same counts and call_event
rows, and for every call of the batch the rows of all its events, each row once."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.traffic import generate_calls
from tests.support import builders as b
from tests.support.fakes import FakeRecord
from worker.core.batch_plan import BatchPlanner, Plan, StoredEvent
from worker.core.call_state import CallKey
from worker.core.correlation import build_call_rows
from worker.core.decode import ValidEvent
from worker.core.event_pack import shared_project_id

EARLIER = datetime(2030, 1, 1, tzinfo=UTC)
NOW = EARLIER + timedelta(minutes=5)
TIMEOUT = timedelta(days=3650)


def planner() -> BatchPlanner:
    return BatchPlanner(b.test_rates(), TIMEOUT, 100_000)


def records(seed: int, calls: int) -> list[FakeRecord]:
    """Generated traffic with duplicates and invalid messages, one partition."""
    messages = generate_calls(calls, seed=seed, invalid_share=0.05, duplicate_share=0.2)
    return [FakeRecord("calls", 0, offset, m.key, m.value) for offset, m in enumerate(messages)]


def split(rnd: random.Random, all_records: list[FakeRecord]) -> tuple[list[FakeRecord], ...]:
    """An earlier batch (stored) and this one: each message in one or the other, some in
    both (a producer's retry, a replay), in this batch in another order."""
    earlier, now = [], []
    for record in all_records:
        place = rnd.random()
        if place < 0.4:
            earlier.append(record)
        elif place < 0.55:
            earlier.append(record)
            now.append(record)
        else:
            now.append(record)
    rnd.shuffle(now)
    return earlier, now


def key_of(ev: ValidEvent) -> CallKey:
    return (shared_project_id(ev.values["project_id"]), ev.values["call_id"])


Distinct = dict[CallKey, dict[str, ValidEvent]]


def stored_events(earlier: list[FakeRecord]) -> tuple[list[StoredEvent], Distinct]:
    """What call_event holds after the earlier batch: its valid events as stored payloads,
    and by call the distinct events (the larger digest of an event_id)."""
    decoded = planner().decode(earlier)
    stored: list[StoredEvent] = []
    distinct: Distinct = {}
    for key, items in decoded.by_call.items():
        for record, ev, _ in items:
            assert record.value is not None
            stored.append((key[0], key[1], record.value.decode()))
            held = distinct.setdefault(key, {}).get(ev.values["event_id"])
            if held is None or ev.digest > held.digest:
                distinct[key][ev.values["event_id"]] = ev
    return stored, distinct


def row_text(row: Mapping[str, object]) -> str:
    return repr(sorted(row.items()))


def rows_by_table(plan: Plan) -> dict[str, list[str]]:
    return {
        str(table): sorted(row_text(row) for row in rows)
        for table, rows in plan.tables.items()
        if rows
    }


def event_rows(plan: Plan) -> list[tuple[int, int]]:
    return sorted((record.partition, record.offset) for record, _, _ in plan.event_rows.items)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), calls=st.integers(1, 12), shuffle=st.randoms())
def test_a_plan_completed_with_stored_events_is_the_cached_calls_plan(
    seed: int, calls: int, shuffle: random.Random
) -> None:
    earlier, now = split(shuffle, records(seed, calls))
    stored, distinct = stored_events(earlier)

    cached = planner()  # had the earlier batch's calls cached all along
    cached.plan(cached.decode(earlier), [], EARLIER)
    expected = cached.plan(cached.decode(now), [], NOW)

    restarted = planner()  # reloads them from call_event
    decoded = restarted.decode(now)
    reloaded = [event for event in stored if (event[0], event[1]) in set(decoded.missing)]
    ahead = restarted.plan_ahead(decoded, NOW)
    plan = restarted.complete(ahead, reloaded)

    assert plan.counts == expected.counts
    assert plan.duplicates == expected.duplicates
    assert plan.max_event_time == expected.max_event_time
    assert event_rows(plan) == event_rows(expected)
    assert plan.stored_events_skipped == 0

    # Every call of the batch is rebuilt from all its events, each row once.
    for key in decoded.by_call:
        events = dict(distinct.get(key, {}))
        for _, ev, _ in decoded.by_call[key]:
            held = events.get(ev.values["event_id"])
            if held is None or ev.digest > held.digest:
                events[ev.values["event_id"]] = ev
        state = restarted.cache.peek(key)
        assert state is not None
        assert Counter(map(repr, state.valid_events())) == Counter(map(repr, events.values()))
    want: dict[str, list[str]] = {}
    for key in decoded.by_call:
        state = restarted.cache.peek(key)
        assert state is not None
        built = build_call_rows(state.valid_events(), b.test_rates())
        for table, rows in built.tables().items():
            for row in rows:
                want.setdefault(str(table), []).append(row_text({**row, "ingested_at": NOW}))
    assert rows_by_table(plan) == {name: sorted(rows) for name, rows in want.items() if rows}
    # `plan` given the stored events at once (no plan ahead) makes the same plan.
    at_once = planner()
    once = at_once.plan(at_once.decode(now), reloaded, NOW)
    assert (once.counts, once.duplicates) == (plan.counts, plan.duplicates)
    assert event_rows(once) == event_rows(plan)
    assert rows_by_table(once) == rows_by_table(plan)
    # ... and the calls the cached planner rebuilt have the same rows.
    for name, texts in rows_by_table(expected).items():
        assert not Counter(texts) - Counter(rows_by_table(plan)[name])


def test_an_uncached_call_without_stored_events_keeps_its_plan_ahead() -> None:
    restarted = planner()
    decoded = restarted.decode(records(seed=3, calls=4))
    ahead = restarted.plan_ahead(decoded, NOW)
    tables = {table: list(rows) for table, rows in ahead.plan.tables.items()}
    plan = restarted.complete(ahead, [])
    assert plan is ahead.plan
    assert {table: [id(row) for row in rows] for table, rows in plan.tables.items()} == {
        table: [id(row) for row in rows] for table, rows in tables.items()
    }
