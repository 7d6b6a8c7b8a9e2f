"""BatchPreparer against in-memory ports: the reload of uncached calls runs in a worker thread
while the planner merges and rebuilds the batch's calls (`BatchPlanner.start`, the uncached
ones as if nothing were stored), and the plan is the one a planner that never lost the calls
makes: the calls the reload finds events of are merged again from them (`finish`)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.rows import TableName
from tests.support import builders as b
from tests.support.fakes import FakeRecord, FakeStore, Journal
from worker.core.batch_plan import BatchPlanner, Decoded, Plan, Planning
from worker.pipeline.batch_preparer import BatchPreparer
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import CallEventRow, StoreUnavailable
from worker.pipeline.retry import OutageRetry

CLOCK = datetime(2030, 1, 1, tzinfo=UTC)


def _records(events: list[dict[str, Any]], first: int) -> list[FakeRecord]:
    return [FakeRecord("calls", 0, first + i, *b.encode(ev)) for i, ev in enumerate(events)]


def _batches() -> tuple[list[FakeRecord], list[FakeRecord]]:
    """Batch 1 starts two calls; batch 2 goes on with one of them (cached), starts a new one
    (uncached, with nothing stored) and carries an invalid message."""
    answered = b.answered_on_second_attempt("call-a")
    outbound = b.outbound_call("CA-b")
    first = _records(answered[:3] + outbound[:1], 0)
    second = _records(answered[3:] + b.nobody_answers("call-c") + outbound[1:], len(first))
    second.insert(2, FakeRecord("calls", 0, 99, b"bad", b"{not json"))
    return first, second


class _SignallingStore(FakeStore):
    """Sets `loading` when a reload begins; fails the first `outages` reloads."""

    def __init__(self, journal: Journal, outages: int = 0) -> None:
        super().__init__(journal)
        self.loading = threading.Event()
        self.outages = outages

    def load_call_events(self, keys: Sequence[tuple[str, str]]) -> list[CallEventRow]:
        self.loading.set()
        if self.outages:
            self.outages -= 1
            raise StoreUnavailable("ClickHouse is restarting")
        return super().load_call_events(keys)


class _WaitingPlanner(BatchPlanner):
    """`start` waits (blocking its thread, as real planning work would) until the reload has
    begun: the reload must already be on its way when the cached calls are planned."""

    def __init__(self, store: _SignallingStore) -> None:
        super().__init__(b.test_rates(), timedelta(hours=4), cache_max_calls=100)
        self.store = store
        self.started_while_loading: list[bool] = []

    def start(self, decoded: Decoded) -> Planning:
        if decoded.missing:
            self.started_while_loading.append(self.store.loading.wait(timeout=10))
        return super().start(decoded)


def _one_step_plans(batches: Sequence[list[FakeRecord]]) -> list[Plan]:
    """The same batches planned by `BatchPlanner.plan` (nothing was stored before them)."""
    planner = BatchPlanner(b.test_rates(), timedelta(hours=4), cache_max_calls=100)
    return [planner.plan(planner.decode(batch), [], CLOCK) for batch in batches]


def _prepare_all(store: _SignallingStore, batches: Sequence[list[FakeRecord]]) -> list[Plan]:
    planner = _WaitingPlanner(store)
    metrics = Metrics()
    preparer = BatchPreparer(planner, store, OutageRetry(metrics), metrics, clock=lambda: CLOCK)

    async def scenario() -> list[Plan]:
        plans = []
        for batch in batches:
            store.loading.clear()
            plans.append(await preparer.prepare(batch, keep=set()))
        return plans

    plans = asyncio.run(scenario())
    assert planner.started_while_loading and all(planner.started_while_loading)
    return plans


def _same_plan(got: Plan, want: Plan) -> None:
    assert list(got.event_rows) == list(want.event_rows)
    assert dict(got.tables) == dict(want.tables)
    assert got.dead_letter_records == want.dead_letter_records
    assert got.rejected_rows == want.rejected_rows
    assert (got.keys, dict(got.counts), got.duplicates, got.calls_changed) == (
        want.keys,
        dict(want.counts),
        want.duplicates,
        want.calls_changed,
    )
    assert got.max_event_time == want.max_event_time


def test_the_reload_runs_while_the_cached_calls_are_planned_and_the_plan_is_the_same() -> None:
    batches = _batches()
    plans = _prepare_all(_SignallingStore([]), batches)
    want = _one_step_plans(batches)
    for got, expected in zip(plans, want, strict=True):
        _same_plan(got, expected)
    # Batch 2: the cached call, then the new one, in arrival order, and both rebuilt.
    assert [row["call_id"] for row in plans[1].event_rows][:2] == ["call-a", "call-a"]
    assert plans[1].calls_changed == 3


def test_an_outage_of_the_reload_that_began_early_is_retried() -> None:
    batches = _batches()
    store = _SignallingStore([], outages=2)
    plans = _prepare_all(store, batches)
    assert store.loads == 2  # the two failed attempts are not counted by the fake
    for got, expected in zip(plans, _one_step_plans(batches), strict=True):
        _same_plan(got, expected)


def test_calls_forgotten_while_the_reload_runs_are_left_out() -> None:
    """A rebalance during the reload drops the calls `start` has planned, cached or not:
    `finish` leaves them out (the consume loop then rewinds the batch instead of writing
    it)."""
    first, second = _batches()
    planner = BatchPlanner(b.test_rates(), timedelta(hours=4), cache_max_calls=100)
    planner.plan(planner.decode(first), [], CLOCK)
    decoded = planner.decode(second)
    assert decoded.missing == [(b.PROJECT, "call-c")]
    planning = planner.start(decoded)
    assert set(planning.merged) == {(b.PROJECT, c) for c in ("call-a", "call-c", "CA-b")}
    planner.forget_partitions({0})
    plan = planner.finish(planning, [], CLOCK)
    assert list(plan.event_rows) == [] and not any(plan.tables.values())
    assert len(plan.dead_letter_records) == 1 and len(planner.cache) == 0


def test_calls_the_reload_finds_are_planned_again_from_their_stored_events() -> None:
    """A restarted worker (an empty cache) prepares batch 2 after batch 1 was written by
    another: its calls are reloaded, `start`'s guess that nothing was stored is dropped for
    them, and the plan is the one the planner that made batch 1 makes of batch 2, a
    redelivered event of batch 1 included (a duplicate, not written again)."""
    first, second = _batches()
    second.append(FakeRecord("calls", 0, 100, first[1].key, first[1].value))
    journal: Journal = []
    store = _SignallingStore(journal)
    [written] = _prepare_all(store, [first])
    store.insert(TableName.CALL_EVENT, list(written.event_rows))
    [again] = _prepare_all(store, [second])  # a new planner: nothing cached
    _same_plan(again, _one_step_plans([first, second])[1])
    assert again.duplicates == 1 and again.calls_changed == 3
