"""The hot path: Kafka batch in, ClickHouse rows out, offsets committed last.

Delivery semantics, in the order they happen for every batch (`Ingestor.process`):

1. FETCH      aiokafka `getmany` fills a batch of up to RINGLOG_BATCH_MAX_EVENTS messages or
              RINGLOG_BATCH_MAX_SECONDS of waiting. Backpressure is natural: the next batch is
              not fetched into the pipeline until this one is committed, and aiokafka's
              prefetch buffer is bounded by `max_partition_fetch_bytes` per partition.
2. DECODE     every message is validated (pure, `worker.core.decode`).
3. DEAD-LETTER invalid messages are produced to the DLQ topic (acks=all, awaited) AND written
              to `rejected_event`. Nothing invalid is ever dropped silently.
4. LOAD       calls that are not cached are reloaded from `call_event` (their earlier events).
5. WRITE      new distinct events go to `call_event` first, then the rebuilt rows of every
              changed call go to their tables. Inserts retry forever with capped backoff
              while ClickHouse is unavailable: input is never skipped.
6. COMMIT     only now, with everything above durable, the batch's offsets are committed.

A crash anywhere before 6 replays the batch; every write is idempotent (ReplacingMergeTree
with deterministic ids and a version that grows with the number of distinct events), so a
replay rewrites the same rows and never doubles them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import orjson

from worker.core.call_state import CallCache, CallKey, CallState
from worker.core.correlation import Row, build_call_rows
from worker.core.decode import Rejection, ValidEvent, decode, decode_stored, without_payload
from worker.core.rates import RatePlan
from worker.pipeline.config import PipelineConfig
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import DeadLetterSink, Message, Store, StoreUnavailable
from worker.pipeline.retry import async_with_retry

log = logging.getLogger("ringlog.ingest")
SCAN_EVERY = timedelta(minutes=1)
T = TypeVar("T")


@dataclass
class BatchResult:
    events: int = 0
    rejected: int = 0
    duplicates: int = 0
    calls_changed: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    max_event_time: datetime | None = None


@dataclass
class Plan:
    """A prepared batch: everything `Ingestor.write` must make durable before the commit."""

    messages: int
    ingested_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    dead_letter_records: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    rejected_rows: list[Row] = field(default_factory=list)
    event_rows: list[Row] = field(default_factory=list)
    tables: dict[str, list[Row]] = field(default_factory=lambda: defaultdict(list))
    keys: set[CallKey] = field(default_factory=set)
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    calls_changed: int = 0
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
        self.rates = rates
        self.dead_letters = dead_letters
        self.metrics = metrics
        self.clock = clock
        self.cache = CallCache(config.cache_max_calls)
        # The newest event time this worker has seen: the clock of the timeout close.
        self.watermark: datetime | None = None
        self.newest_written: datetime | None = None
        self.consecutive_failures = 0
        self.last_write_ok = time.time()
        self._last_scan: datetime | None = None
        self._inflight: set[CallKey] = set()

    # -- public ---------------------------------------------------------------------------

    async def process(self, messages: Sequence[Message]) -> BatchResult:
        """Prepare and write one batch (what the consume loop does, without pipelining)."""
        return await self.write(await self.prepare(messages))

    async def prepare(self, messages: Sequence[Message]) -> Plan:
        """Everything but the writes: decode, load uncached calls, merge, rebuild rows.

        May run while the previous batch's `write` is in flight: calls of that batch are kept
        in the cache until it is durable (`_inflight`), so a reload from `call_event` never
        misses events that are still on their way there.
        """
        plan = Plan(messages=len(messages))
        valid: list[tuple[Message, ValidEvent]] = []
        rejected: list[tuple[Message, Rejection]] = []
        for msg in messages:
            decoded = decode(msg.key, msg.value if msg.value is not None else b"")
            if isinstance(decoded, ValidEvent):
                valid.append((msg, decoded))
            else:
                rejected.append((msg, decoded))
        ingested_at = self.clock()
        plan.ingested_at = ingested_at
        if rejected:
            self._dead_letters_of(rejected, plan)

        by_call: dict[CallKey, list[tuple[Message, ValidEvent]]] = defaultdict(list)
        for msg, ev in valid:
            by_call[(ev.event.project_id, ev.event.call_id)].append((msg, ev))
        # Calls reloaded from call_event are rebuilt even when every event of this batch is
        # already stored: a worker that died (or abandoned a batch) between its call_event
        # insert and its row inserts left those events durable but their rows unwritten,
        # and the replay would otherwise find only duplicates and write nothing.
        reloaded = {key for key in by_call if key not in self.cache}
        await self._load_missing(by_call)

        changed: list[CallKey] = []
        for key, items in by_call.items():
            state = self.cache.get(key)
            if state is None:
                continue  # forgotten by a rebalance meanwhile: the caller discards this plan
            touched = False
            for msg, ev in items:
                if state.merge(without_payload(ev)):
                    touched = True
                    plan.event_rows.append(_call_event_row(msg, ev, ingested_at))
                    plan.counts[(ev.event.type, "written")] += 1
                else:
                    plan.duplicates += 1
                    plan.counts[(ev.event.type, "duplicate")] += 1
                occurred = ev.event.occurred_at
                if self.watermark is None or occurred > self.watermark:
                    self.watermark = occurred
                if plan.max_event_time is None or occurred > plan.max_event_time:
                    plan.max_event_time = occurred
            if touched or key in reloaded:
                changed.append(key)

        for key in changed:
            self._rebuild(key, plan.tables, now=None)
        # Timeout close (DESIGN.md section 3): open cached calls that have been silent for
        # RINGLOG_CALL_TIMEOUT of event time are closed at their last event.
        for key in self._timed_out_calls(exclude=set(changed)):
            self._rebuild(key, plan.tables, now=self.watermark)
        for rows in plan.tables.values():
            for row in rows:
                row["ingested_at"] = ingested_at
        plan.keys = set(by_call)
        plan.calls_changed = len(changed)
        self.cache.evict_overflow(keep=plan.keys | self._inflight)
        self.metrics.cached_calls.set(len(self.cache))
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
                await self._insert("rejected_event", plan.rejected_rows)
            if plan.event_rows:
                await self._insert("call_event", plan.event_rows)
            for table, rows in plan.tables.items():
                if rows:
                    await self._insert(table, rows)
        finally:
            self._inflight = set()
        for (event_type, outcome), n in plan.counts.items():
            self.metrics.events.labels(event_type, outcome).inc(n)
        if plan.max_event_time is not None and (
            self.newest_written is None or plan.max_event_time > self.newest_written
        ):
            self.newest_written = plan.max_event_time
        self.metrics.batch_events.observe(plan.messages)
        return BatchResult(
            events=plan.messages,
            rejected=len(plan.rejected_rows),
            duplicates=plan.duplicates,
            calls_changed=plan.calls_changed,
            rows={t: len(r) for t, r in plan.tables.items() if r},
            max_event_time=plan.max_event_time,
        )

    def forget_partitions(self, partitions: set[int]) -> None:
        dropped = self.cache.drop_partitions(partitions)
        log.info("forgot %d cached calls of revoked partitions %s", dropped, sorted(partitions))

    # -- steps ----------------------------------------------------------------------------

    def _rebuild(self, key: CallKey, tables: dict[str, list[Row]], now: datetime | None) -> None:
        state = self.cache.get(key)
        if state is None:
            return
        rows = build_call_rows(
            state.events.values(), self.rates, now=now, timeout=self.config.call_timeout
        )
        state.open = rows.open
        state.last_event_at = rows.last_event_at
        if now is not None:
            state.timeout_closed = True
        elif rows.open:
            state.timeout_closed = False
        for table, table_rows in rows.tables().items():
            tables[table].extend(table_rows)

    def _timed_out_calls(self, exclude: set[CallKey]) -> list[CallKey]:
        # A scan walks the whole cache, so it runs once per minute of event time, not per
        # batch; a close is at most a minute (event time) late, and its rows do not depend on
        # when it ran (ended_at is the call's last event).
        if self.watermark is None:
            return []
        if self._last_scan is not None and self.watermark - self._last_scan < SCAN_EVERY:
            return []
        self._last_scan = self.watermark
        deadline = self.watermark - self.config.call_timeout
        return [
            key
            for key, state in self.cache.items()
            if state.open
            and not state.timeout_closed
            and key not in exclude
            and state.last_event_at is not None
            and state.last_event_at <= deadline
        ]

    async def _load_missing(self, by_call: dict[CallKey, list[tuple[Message, ValidEvent]]]) -> None:
        missing = [key for key in by_call if key not in self.cache]
        if not missing:
            return
        stored = await self._retrying(
            "loading call state", lambda: asyncio.to_thread(self.store.load_call_events, missing)
        )
        for key in missing:
            partition = by_call[key][0][0].partition
            self.cache.put(key, CallState(partition=partition))
        for project_id, call_id, payload, _topic, _partition, _offset in stored:
            state = self.cache.get((project_id, call_id))
            if state is None:
                continue
            event = _reload(payload)
            if event is not None:
                state.merge(without_payload(event))
        for key in missing:
            state = self.cache.get(key)
            if state is not None and state.events:
                latest = max(ev.event.occurred_at for ev in state.events.values())
                state.last_event_at = latest

    def _dead_letters_of(self, rejected: list[tuple[Message, Rejection]], plan: Plan) -> None:
        rejected_at = plan.ingested_at
        records = plan.dead_letter_records
        rows = plan.rejected_rows
        for msg, rej in rejected:
            raw = msg.value if msg.value is not None else b""
            payload, encoding = _payload_text(raw)
            key_text = msg.key.decode("utf-8", "replace") if msg.key is not None else None
            envelope = {
                "error": {"code": rej.code, "message": rej.message, "field": rej.field},
                "source": {
                    "topic": msg.topic,
                    "partition": msg.partition,
                    "offset": msg.offset,
                    "key": key_text,
                },
                "payload": payload,
                "payload_encoding": encoding,
                "rejected_at": rejected_at.isoformat(timespec="milliseconds").replace(
                    "+00:00", "Z"
                ),
            }
            records.append((msg.key, orjson.dumps(envelope)))
            rows.append(
                {
                    "topic": msg.topic,
                    "partition": msg.partition,
                    "offset": msg.offset,
                    "key": key_text,
                    "error_code": rej.code,
                    "error_message": rej.message,
                    "error_field": rej.field,
                    "payload": payload,
                    "rejected_at": rejected_at,
                    "version": 1,
                }
            )
            self.metrics.dead_letters.labels(rej.code).inc()
            self.metrics.events.labels("invalid", "rejected").inc()
            # INFO, not WARNING: bad input is counted in ringlog_dead_letters_total and kept
            # in the DLQ; a flood of it must not drown the worker's own problems.
            log.info(
                "rejected event",
                extra={
                    "topic": msg.topic,
                    "partition": msg.partition,
                    "offset": msg.offset,
                    "error_code": rej.code,
                    "error_field": rej.field,
                    "reason": rej.message[:300],
                },
            )

    async def _insert(self, table: str, rows: list[Row]) -> None:
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

        value = await async_with_retry(
            attempt,
            forever=True,
            base=0.2,
            cap=30.0,
            retry_on=(StoreUnavailable, OSError, ConnectionError),
            on_retry=on_retry,
        )
        self.consecutive_failures = 0
        self.last_write_ok = time.time()
        return value


def _call_event_row(msg: Message, ev: ValidEvent, ingested_at: datetime) -> Row:
    e = ev.event
    return {
        "project_id": e.project_id,
        "call_id": e.call_id,
        "event_id": e.event_id,
        "type": e.type,
        "occurred_at": e.occurred_at,
        "sequence": e.sequence,
        "source": e.source,
        "payload": ev.payload,
        "topic": msg.topic,
        "partition": msg.partition,
        "offset": msg.offset,
        "ingested_at": ingested_at,
        "version": ev.digest,
    }


def _reload(payload: str) -> ValidEvent | None:
    """A stored event (it was valid when written, under the same contract)."""
    event = decode_stored(payload)
    if isinstance(event, Rejection):
        log.error("stored event no longer validates: %s", event.message)
        return None
    return event


def _payload_text(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
