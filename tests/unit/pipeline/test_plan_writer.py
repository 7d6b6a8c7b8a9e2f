"""PlanWriter against in-memory ports: the inserts start when `start` returns (the loop's
thread goes on to prepare the next batch), and `finish` retries an outage where it stopped."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from schemas.rows import TableName
from tests.support import builders as b
from tests.support.fakes import FakeDeadLetters, FakeRecord, FakeStore, Journal
from worker.core.batch_plan import BatchPlanner, Plan
from worker.pipeline.metrics import Metrics
from worker.pipeline.plan_writer import PlanWriter
from worker.pipeline.ports import StoreUnavailable
from worker.pipeline.retry import OutageRetry

CLOCK = datetime(2030, 1, 1, tzinfo=UTC)


def _plan() -> Plan:
    """A plan with every kind of write: a dead letter, call_event and rows tables."""
    events = b.answered_on_second_attempt("call-w") + b.outbound_call("CA-w")
    records = [FakeRecord("calls", 0, i, *b.encode(ev)) for i, ev in enumerate(events)]
    records.append(FakeRecord("calls", 0, len(records), b"bad", b"{not json"))
    planner = BatchPlanner(b.test_rates(), timedelta(hours=4), cache_max_calls=10)
    return planner.plan(planner.decode(records), [], CLOCK)


class _SignallingStore(FakeStore):
    """Sets `inserting` when an insert begins."""

    def __init__(self, journal: Journal) -> None:
        super().__init__(journal)
        self.inserting = threading.Event()

    def insert(self, table: TableName, rows: Sequence[Mapping[str, object]]) -> None:
        self.inserting.set()
        super().insert(table, rows)


def _writer(store: FakeStore, journal: Journal) -> tuple[PlanWriter, FakeDeadLetters]:
    metrics = Metrics()
    dead_letters = FakeDeadLetters(journal)
    return PlanWriter(store, dead_letters, OutageRetry(metrics), metrics), dead_letters


def test_the_inserts_begin_before_the_caller_yields_to_the_loop() -> None:
    journal: Journal = []
    store = _SignallingStore(journal)
    writer, dead_letters = _writer(store, journal)
    plan = _plan()

    async def scenario() -> None:
        writing = writer.start(plan)
        # No await since `start`: the loop has not run, and the insert thread is at work
        # (a blocking wait, as the loop's thread preparing the next batch would be).
        assert store.inserting.wait(timeout=10)
        await writer.finish(writing)

    asyncio.run(scenario())
    written = [table for table, _ in store.inserts]
    assert written == [
        "rejected_event",
        "call_event",
        *[str(t) for t, rows in plan.tables.items() if rows],
    ]
    assert len(dead_letters.records) == 1
    assert [row["event_id"] for row in store.inserts[1][1]] == [
        row["event_id"] for row in plan.event_rows
    ]


def test_an_outage_of_the_first_attempt_is_retried_from_the_insert_that_failed() -> None:
    journal: Journal = []
    store = FakeStore(journal)
    writer, _ = _writer(store, journal)
    plan = _plan()
    failures = {"call_event": 2}

    def fail(table: str) -> BaseException | None:
        if failures.get(table, 0) > 0:
            failures[table] -= 1
            return StoreUnavailable(f"{table} down")
        return None

    store.fail = fail

    async def scenario() -> None:
        await writer.finish(writer.start(plan))

    asyncio.run(scenario())
    written = [table for table, _ in store.inserts]
    # rejected_event once (not repeated by the retries), then the rest in order.
    assert written == [
        "rejected_event",
        "call_event",
        *[str(t) for t, rows in plan.tables.items() if rows],
    ]
    assert writer.retry.consecutive_failures == 0
