"""The ingestor: prepares a batch (decode, reload uncached calls, plan) and makes the plan
durable. The consume loop (`worker.pipeline.consume_loop`) commits the offsets afterwards.

Delivery semantics, in the order they happen for every batch:

1. DECODE     every record is validated (pure: `worker.core.batch_plan`).
2. LOAD       calls that are not cached are reloaded from `call_event` through the store port.
3. PLAN       (pure) the batch is merged into the calls' event sets; the rows of every call
              whose set changed are rebuilt; invalid records become dead letters.
4. WRITE      (`write`, strictly in this order) dead letters to the DLQ topic (acks=all,
              awaited), then `rejected_event`, then new distinct events to `call_event`, then
              the rebuilt rows to their tables. Transient failures of the store or the broker
              are retried forever with capped backoff: input is never skipped.
5. COMMIT     (the consume loop) only with everything above durable.

A crash anywhere before 5 replays the batch; every write is idempotent (ReplacingMergeTree
with deterministic ids and a version that grows with the number of distinct events), so a
replay rewrites the same rows and never doubles them.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from schemas.rows import TableName
from worker.core.batch_plan import BatchPlanner, Plan, StoredEvent
from worker.core.call_state import CallCache, CallKey
from worker.core.rates import RatePlan
from worker.pipeline.config import PipelineConfig
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import DeadLetterSink, Message, Store, StoreUnavailable
from worker.pipeline.retry import retry_forever

log = logging.getLogger("ringlog.ingest")
T = TypeVar("T")


@dataclass
class BatchResult:
    events: int = 0
    rejected: int = 0
    duplicates: int = 0
    calls_changed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    max_event_time: datetime | None = None


def now_utc() -> datetime:
    return datetime.now(UTC)


class Ingestor:
    """Turns batches of raw messages into durable rows; commit is the caller's last step."""

    def __init__(
        self,
        config: PipelineConfig,
        store: Store,
        rates: RatePlan,
        dead_letters: DeadLetterSink,
        metrics: Metrics,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.config = config
        self.store = store
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.clock = clock
        self.planner = BatchPlanner(rates, config.call_timeout, config.cache_max_calls)
        self.newest_written: datetime | None = None
        self.consecutive_failures = 0
        self.last_write_ok = time.time()
        # Calls of the batch being written: kept cached until it is durable, so a reload
        # from call_event never misses events that are still on their way there.
        self._inflight: set[CallKey] = set()

    @property
    def cache(self) -> CallCache:
        return self.planner.cache

    # -- public ---------------------------------------------------------------------------

    async def prepare(self, messages: Sequence[Message]) -> Plan:
        """Everything but the writes: decode, load uncached calls, plan.

        May run while the previous batch's `write` is in flight (see `_inflight`).
        """
        decoded = self.planner.decode(messages)
        reloaded: list[StoredEvent] = []
        if decoded.missing:
            missing = decoded.missing
            stored = await self._retrying(
                "loading call state",
                lambda: asyncio.to_thread(self.store.load_call_events, missing),
            )
            reloaded = [
                (project_id, call_id, payload) for project_id, call_id, payload, *_ in stored
            ]
        plan = self.planner.plan(decoded, reloaded, self.clock(), keep=self._inflight)
        self.metrics.cached_calls.set(len(self.planner.cache))
        return plan

    async def write(self, plan: Plan) -> BatchResult:
        """Make a prepared batch durable: dead letters, then call_event, then rows."""
        self._inflight = plan.keys
        try:
            if plan.dead_letter_records:
                await self._retrying(
                    "producing dead letters",
                    lambda: self.dead_letters.send(plan.dead_letter_records),
                )
                await self._insert(TableName.REJECTED_EVENT, plan.rejected_rows)
            if plan.event_rows:
                await self._insert(TableName.CALL_EVENT, plan.event_rows)
            for table, rows in plan.tables.items():
                if rows:
                    await self._insert(table, rows)
        finally:
            self._inflight = set()
        self._report(plan)
        return BatchResult(
            events=plan.records,
            rejected=len(plan.rejected_rows),
            duplicates=plan.duplicates,
            calls_changed=plan.calls_changed,
            rows={t: len(r) for t, r in plan.tables.items() if r},
            max_event_time=plan.max_event_time,
        )

    def forget_partitions(self, partitions: set[int]) -> None:
        dropped = self.planner.forget_partitions(partitions)
        log.info("forgot %d cached calls of partitions %s", dropped, sorted(partitions))

    # -- steps ----------------------------------------------------------------------------

    def _report(self, plan: Plan) -> None:
        """Metrics and logs of a durable batch."""
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

    async def _insert(self, table: TableName, rows: Sequence[Mapping[str, object]]) -> None:
        def run() -> None:
            started = time.perf_counter()
            self.store.insert(table, rows)
            self.metrics.insert_seconds.labels(table).observe(time.perf_counter() - started)

        await self._retrying(f"inserting into {table}", lambda: asyncio.to_thread(run), table=table)
        self.metrics.rows_written.labels(table).inc(len(rows))

    async def _retrying(
        self, doing: str, attempt: Callable[[], Awaitable[T]], table: str | None = None
    ) -> T:
        """Retry transient store/broker failures forever with capped backoff."""

        def on_retry(failures: int, exc: BaseException, delay: float) -> None:
            self.consecutive_failures += 1
            self.metrics.insert_failures.inc()
            log.error(
                "%s failed (attempt %d), retrying in %.1fs: %s",
                doing,
                failures,
                delay,
                exc,
                extra={"error_code": "store_unavailable", "table": table, "attempt": failures},
            )

        value = await retry_forever(
            attempt, retry_on=(StoreUnavailable, OSError, ConnectionError), on_retry=on_retry
        )
        self.consecutive_failures = 0
        self.last_write_ok = time.time()
        return value
