"""The batch preparer's own promise beside the planner's: `meanwhile` runs on the loop's thread
while the reload query runs in another (the consume loop frees written batches there)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.rows import TableName
from tests.support import builders as b
from tests.support.fakes import FakeRecord, FakeStore, Journal
from worker.core.batch_plan import BatchPlanner, Plan
from worker.pipeline.batch_preparer import BatchPreparer
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import CallEventRow
from worker.pipeline.retry import OutageRetry

CLOCK = datetime(2030, 1, 1, tzinfo=UTC)


class SlowLoads(FakeStore):
    """A store whose reload says when it started and waits to be let go."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self.load_started = threading.Event()
        self.let_go = threading.Event()

    def load_call_events(self, keys: Sequence[tuple[str, str]]) -> list[CallEventRow]:
        self.load_started.set()
        assert self.let_go.wait(timeout=10), "meanwhile never ran"
        return super().load_call_events(keys)


def preparer(store: FakeStore) -> BatchPreparer:
    metrics = Metrics()
    planner = BatchPlanner(b.test_rates(), timedelta(hours=1), 1000)
    return BatchPreparer(planner, store, OutageRetry(metrics), metrics, clock=lambda: CLOCK)


def records(*events: dict[str, object]) -> list[FakeRecord]:
    return [FakeRecord("calls", 0, offset, *b.encode(ev)) for offset, ev in enumerate(events)]


def test_meanwhile_runs_while_the_reload_query_runs() -> None:
    store = SlowLoads([])
    seen_running: list[bool] = []

    async def meanwhile() -> None:
        # The query was submitted before this runs: it starts without waiting for us.
        seen_running.append(store.load_started.wait(timeout=10))
        store.let_go.set()

    batch = records(b.received("call-1", 0), b.received("call-2", 1))
    plan = asyncio.run(preparer(store).prepare(batch, keep=set(), meanwhile=meanwhile))

    assert seen_running == [True]
    assert store.loads == 1
    assert [row["call_id"] for row in plan.event_rows] == ["call-1", "call-2"]


def test_meanwhile_runs_once_per_batch_with_or_without_a_reload() -> None:
    store = FakeStore([])
    prep = preparer(store)
    calls: list[str] = []

    def noting(name: str) -> Callable[[], Awaitable[None]]:
        async def meanwhile() -> None:
            calls.append(name)

        return meanwhile

    first = records(b.received("call-1", 0))
    asyncio.run(prep.prepare(first, keep=set(), meanwhile=noting("first")))
    again = [FakeRecord("calls", 0, 1, *b.encode(b.ended("call-1", 5, "completed")))]
    asyncio.run(prep.prepare(again, keep=set(), meanwhile=noting("again")))

    assert calls == ["first", "again"]
    assert store.loads == 1  # the second batch's call was cached: no reload


def test_the_plan_is_made_ahead_unless_the_reloads_find_most_calls_stored() -> None:
    """PLANNED AHEAD while the reloads find few uncached calls with stored events (a running
    worker's new calls); after a restart, when they find most, the plan waits for the
    reload instead of being made twice, until the reloads find few again."""
    store = FakeStore([])
    stored = [b.received(f"call-{n}", n) for n in range(1, 9)]
    first = preparer(store)
    plan = asyncio.run(first.prepare(records(*stored), keep=set()))
    store.insert(TableName.CALL_EVENT, list(plan.event_rows))

    restarted = preparer(store)  # a new process: nothing cached
    after_reload: list[bool] = []
    plan_after = restarted.planner.plan

    def planning(*args: Any, **kwargs: Any) -> Plan:
        after_reload.append(True)
        return plan_after(*args, **kwargs)

    setattr(restarted.planner, "plan", planning)  # noqa: B010
    incoming: list[int] = []
    batches = [
        [b.ended(f"call-{n}", 10 + n, "completed") for n in range(1, 5)],  # stored: all 4
        [b.ended(f"call-{n}", 10 + n, "completed") for n in range(5, 9)],  # stored: all 4
        [b.received(f"call-{n}", 20 + n) for n in range(9, 11)],  # new calls
        [b.received(f"call-{n}", 20 + n) for n in range(11, 13)],  # new calls
    ]
    ahead: list[bool] = []
    for offset, events in enumerate(batches):
        after_reload.clear()
        batch = [
            FakeRecord("calls", 0, 100 * (offset + 1) + n, *b.encode(ev))
            for n, ev in enumerate(events)
        ]
        plan = asyncio.run(restarted.prepare(batch, keep=set()))
        ahead.append(not after_reload)
        incoming.append(len(plan.tables[TableName.INCOMING_CALL_LOG]))

    assert ahead == [True, False, False, True]
    assert incoming == [4, 4, 2, 2]
    assert store.loads == 1 + len(batches)
