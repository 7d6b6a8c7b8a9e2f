"""Makes a plan durable: its dead letters to the DLQ topic (acks=all) and, at the same time,
its inserts in this order: `rejected_event`, `call_event`, then the rebuilt rows. Outages are
retried forever (`OutageRetry`); any other failure propagates and stops the worker with the
batch uncommitted. The consume loop commits the batch's offsets only after `finish` returns,
i.e. once both are durable (DESIGN.md section 4).

A crash anywhere before the commit replays the batch; every write is idempotent
(ReplacingMergeTree with deterministic ids and a version that grows with the number of
distinct events), so a replay rewrites the same rows and never doubles them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from schemas.rows import TableName
from worker.core.batch_plan import Plan
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import DeadLetterSink, Store
from worker.pipeline.retry import OutageRetry, ThreadAttempts

log = logging.getLogger("ringlog.write")


class PlanWriter:
    def __init__(
        self, store: Store, dead_letters: DeadLetterSink, retry: OutageRetry, metrics: Metrics
    ) -> None:
        self.store = store
        self.dead_letters = dead_letters
        self.retry = retry
        self.metrics = metrics
        # Event time of the newest event written: the base of ringlog_event_lag_seconds.
        self.newest_written: datetime | None = None

    def start(self, plan: Plan) -> Writing:
        """Start `plan`'s inserts in a worker thread now; `finish` makes the plan durable.

        THE INSERTS START HERE, not when the caller's task first runs: the loop's thread goes
        straight on to fetch and prepare the next batch, a synchronous step of about half a
        second, and a task created now would only start when that step first yields (measured:
        the inserts began 0.2-0.3 s after the plan was ready, and the next batch then waited
        for them). In order: `rejected_event`, `call_event`, then the rebuilt rows.
        """
        blocks: list[tuple[TableName, Sequence[Mapping[str, object]]]] = []
        if plan.dead_letter_records:
            blocks.append((TableName.REJECTED_EVENT, plan.rejected_rows))
        blocks.append((TableName.CALL_EVENT, plan.event_rows))
        blocks.extend(plan.tables.items())
        inserts = _Inserts(self.store, self.metrics, [(t, rows) for t, rows in blocks if rows])
        return Writing(plan, inserts, ThreadAttempts(inserts.run))

    async def finish(self, writing: Writing) -> None:
        """Send the plan's dead letters (acks=all, through the loop) while its inserts run, and
        return once both are durable. Outages are retried forever; an insert that failed is
        retried where it stopped."""
        plan, inserts = writing.plan, writing.inserts
        stored = asyncio.ensure_future(
            self.retry(
                lambda: f"inserting into {inserts.next_table}",
                writing.attempts,  # the first already running; each retry starts afresh
                lambda: inserts.next_table,
            )
        )
        try:
            if plan.dead_letter_records:
                await self.retry(
                    "producing dead letters",
                    lambda: self.dead_letters.send(plan.dead_letter_records),
                )
            await stored
        except BaseException:
            # Failed for good, or a rebalance gave the batch up: the thread starts no more
            # inserts (the one running finishes), and the batch is not committed.
            inserts.abandon()
            stored.cancel()
            raise
        self._report(plan)

    def _report(self, plan: Plan) -> None:
        """Metrics and logs of a durable plan."""
        for (event_type, outcome), n in plan.counts.items():
            self.metrics.events.labels(event_type, outcome).inc(n)
        for code, n in plan.dead_letter_codes.items():
            self.metrics.dead_letters.labels(code).inc(n)
        if plan.rejected_rows:
            self.metrics.events.labels("invalid", "rejected").inc(len(plan.rejected_rows))
        for row in plan.rejected_rows:
            # INFO, not WARNING: bad input is counted in ringlog_dead_letters_total and kept
            # in the DLQ; a flood of it must not drown the worker's own problems.
            log.info(
                "rejected event",
                extra={
                    "topic": row["topic"],
                    "partition": row["partition"],
                    "offset": row["offset"],
                    "error_code": row["error_code"],
                    "error_field": row["error_field"],
                    "reason": str(row["error_message"])[:300],
                },
            )
        if plan.max_event_time is not None and (
            self.newest_written is None or plan.max_event_time > self.newest_written
        ):
            self.newest_written = plan.max_event_time
        self.metrics.batch_events.observe(plan.records)


@dataclass(frozen=True)
class Writing:
    """A plan whose inserts have started (`PlanWriter.start`); `PlanWriter.finish` ends it."""

    plan: Plan
    inserts: _Inserts
    attempts: ThreadAttempts[None]


class _Inserts:
    """A plan's inserts, in order, run in a worker thread: `run` inserts what is left, and an
    insert that fails stays next (a retry resumes there, without repeating the others)."""

    def __init__(
        self,
        store: Store,
        metrics: Metrics,
        blocks: list[tuple[TableName, Sequence[Mapping[str, object]]]],
    ) -> None:
        self.store = store
        self.metrics = metrics
        self._blocks = deque(blocks)
        self._abandoned = False

    @property
    def next_table(self) -> TableName:
        """The table of the insert that runs (or failed) next."""
        return self._blocks[0][0]

    def abandon(self) -> None:
        """Start no more inserts (the insert already running finishes)."""
        self._abandoned = True

    def run(self) -> None:
        while self._blocks and not self._abandoned:
            table, rows = self._blocks[0]
            started = time.perf_counter()
            self.store.insert(table, rows)
            self._blocks.popleft()
            self.metrics.insert_seconds.labels(table).observe(time.perf_counter() - started)
            self.metrics.rows_written.labels(table).inc(len(rows))
