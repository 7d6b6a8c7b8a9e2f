"""The consume loop: fetch a batch -> prepare it -> write it -> commit its offsets.

Delivery semantics, visible here:

* COMMIT AFTER WRITE: `_write_and_commit` is the only place offsets are committed, right after
  `PlanWriter.finish` made the batch durable (dead letters, rejected_event, call_event, rows).
* BACKPRESSURE: at most one batch is in flight. Batch N+1 is fetched and prepared while batch
  N is written, then `run` waits for N (`_drain`) before handing N+1 over. Fetching stops
  while it waits, so aiokafka's prefetch buffer (bounded per partition) is all that piles up.
* RELEASE: a durable batch's objects (records, events, rows: about 1.5M Python objects for 20k
  events, 34-51 ms to free) are freed before the next batch is decoded (`_release_written`), so
  at most two batches are alive at once, the one in flight and the one being prepared: a
  backlog's full batches set how much memory the allocators keep for good (README "RSS over a
  long run"). A batch that becomes durable while the next is being prepared is freed during
  that batch's reload query, while the loop's thread would only wait, and the last one before
  the loop goes idle as soon as it finds nothing to fetch: an idle worker holds only its cached
  calls. The free yields to the loop between slices, so the batch in flight's dead-letter acks
  and commit go on meanwhile instead of waiting behind the free and then the plan.
* THE BACKLOG'S END: a batch that has read every partition up to its log end, and whose
  records have been in the log for the whole window, closes at once (`_at_backlog_end`): the
  window gathers live traffic, and nothing newer is coming for those records to wait for.
* REBALANCE: `on_revoked` finishes (or, after REVOKE_GRACE_S, abandons and rewinds) the batch
  in flight before the partitions move; a batch prepared across a rebalance is rewound.

Kafka is reached only through the `Consumer` port (`worker.pipeline.ports`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from worker.core.call_state import CallKey
from worker.pipeline.batch_preparer import BatchPreparer
from worker.pipeline.config import PipelineConfig
from worker.pipeline.lag_tracker import LagTracker
from worker.pipeline.metrics import Metrics
from worker.pipeline.plan_writer import PlanWriter, Writing
from worker.pipeline.ports import (
    BrokerUnavailable,
    CommitRejected,
    Consumer,
    Message,
    TopicPartition,
)

log = logging.getLogger("ringlog.consumer")

REVOKE_GRACE_S = 20.0
# Items freed at a time when a durable batch is let go (RELEASE): about 1-2 ms each.
RELEASE_SLICE = 1000
# THE WRITE'S FIRST STEPS: turns of the event loop given to a batch's write task as it
# starts: one for the task's first step (its dead letters handed to the producer), one for
# the producer's sender that this wakes (the request on the wire). Without them both waited
# for the loop's next yield, behind the next batch's fetch and decode, and the commit then
# waited behind its plan too.
WRITE_FIRST_TURNS = 2


class Batch(list[Message]):
    """A fetched batch: its records, in fetch order, and the highest offset of each of their
    partitions (`last_offsets`), which the commit covers. `_fetch` takes each partition's
    from the last of its records in each fetch (a partition's records come in offset order),
    so the commit does not read every record (3.5 ms a 18k batch, on the loop's thread)."""

    __slots__ = ("last_offsets",)

    def __init__(self, records: Iterable[Message] = ()) -> None:
        super().__init__(records)
        self.last_offsets: dict[TopicPartition, int] = {}

    def add(self, tp: TopicPartition, records: Sequence[Message]) -> None:
        """Append one fetch's `records` of partition `tp` (in offset order)."""
        if records:
            self.extend(records)
            last = records[-1].offset
            if last > self.last_offsets.get(tp, -1):
                self.last_offsets[tp] = last

    def without(self, partitions: set[int]) -> tuple[Batch, list[Message]]:
        """This batch without the records of `partitions`, and those records."""
        kept = Batch(m for m in self if m.partition not in partitions)
        kept.last_offsets = {
            tp: off for tp, off in self.last_offsets.items() if tp.partition not in partitions
        }
        return kept, [m for m in self if m.partition in partitions]


@dataclass(frozen=True)
class InFlight:
    """The batch being written: its task, its records (to rewind) and its calls (kept
    cached until it is durable)."""

    task: asyncio.Task[None]
    records: Sequence[Message]
    calls: set[CallKey]


class ConsumeLoop:
    """Fetch a batch, prepare it, have it written, commit its offsets after it is durable."""

    def __init__(
        self,
        config: PipelineConfig,
        preparer: BatchPreparer,
        writer: PlanWriter,
        consumer: Consumer,
        metrics: Metrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        # The wall clock (Unix seconds) of the commit times and lags; tests pin it.
        self.clock = clock
        self.preparer = preparer
        self.writer = writer
        self.consumer = consumer
        self.metrics = metrics
        self._revoked: set[int] = set()
        self.committed: dict[TopicPartition, int] = {}
        self.last_commit = 0.0
        self.batches = 0
        self.running = False
        self._gauges_at = 0.0
        # When the current batch window opened: the end of the previous fetch (see _fetch).
        self._window_opened: float | None = None
        # Each partition's highwater and when this loop first saw it (monotonic): every record
        # below it was in the log by then (see _at_backlog_end). True whatever the assignment
        # does later, so never cleared.
        self._log_ends: dict[TopicPartition, tuple[int, float]] = {}
        # The batch being written (and then committed): at most one (the backpressure).
        self._inflight: InFlight | None = None
        self._generation = 0
        # Where each partition was last rewound to, until its next commit: a later rewind
        # never seeks past it, even when the consumer cannot tell its position.
        self._rewound_to: dict[TopicPartition, int] = {}
        # Batches made durable, held until the loop's thread has nothing better to do (RELEASE).
        self._written: list[Writing] = []
        # A fatal error of the batch in flight, met while a rebalance waited for it.
        self._fatal: BaseException | None = None
        # Joined the group (a member with an assignment, possibly empty).
        self.joined = False
        self.started_at = clock()
        self.lag = LagTracker(consumer, metrics, config.topic)

    async def on_revoked(self, partitions: set[int]) -> None:
        # Finish and commit the batch in flight before the partitions move, so the new owner
        # starts exactly where this worker's durable work ends. While ClickHouse is down that
        # batch cannot finish: after REVOKE_GRACE_S it is abandoned uncommitted (the new owner
        # replays it; writes are idempotent) instead of holding the whole group's rebalance.
        self._generation += 1  # a batch prepared across this rebalance is rewound (see run)
        # The loop keeps waiting for the same batch (`_drain`): it is left in place, so no
        # second batch can start while this one is finished or abandoned.
        inflight = self._inflight
        if inflight is not None and not inflight.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(inflight.task), REVOKE_GRACE_S)
            except TimeoutError:
                inflight.task.cancel()
                log.warning(
                    "abandoned the batch in flight on rebalance (ClickHouse not answering); "
                    "it will be consumed again",
                    extra={"partitions": sorted(partitions)},
                )
                await self._rewind(inflight.records, revoked=partitions)
            except Exception as exc:
                log.error(
                    "batch in flight failed during rebalance, it will be consumed again: %s", exc
                )
                await self._rewind(inflight.records, revoked=partitions)
                if not isinstance(exc, CommitRejected | BrokerUnavailable):
                    self._fatal = exc  # stop the worker as `_drain` would have (see `run`)
        self._revoked |= partitions
        self.preparer.forget_partitions(partitions)

    async def _rewind(self, records: Sequence[Message], revoked: set[int]) -> None:
        """THE REWIND, the one way records fetched but not committed are consumed again.

        Partitions in `revoked` (or no longer assigned) are replayed by their new owner from
        the group's last commit. For the partitions this worker keeps, seek back to the
        records' first offsets, never forward (an earlier rewind may already have gone
        further back), and forget their calls: the cache may hold events of these records
        that never became durable.
        """
        first: dict[TopicPartition, int] = {}
        for msg in records:
            tp = TopicPartition(msg.topic, msg.partition)
            first[tp] = min(first.get(tp, msg.offset), msg.offset)
        assigned = self.consumer.assignment()
        for tp, offset in first.items():
            if tp.partition in revoked or tp not in assigned:
                self._rewound_to.pop(tp, None)
                continue
            with contextlib.suppress(BrokerUnavailable):
                offset = min(offset, await self.consumer.position(tp))
            if tp not in self.consumer.assignment():
                continue  # taken away while we asked: its new owner replays it
            # Read after the await and seek at once (no await between): another rewind may
            # have run meanwhile (the rebalance callback and the loop both rewind).
            offset = min(offset, self._rewound_to.get(tp, offset))
            self.consumer.seek(tp, offset)
            self._rewound_to[tp] = offset
        self.preparer.forget_partitions({tp.partition for tp in first})

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe(
            self.config.topic, on_revoked=self._partitions_revoked, on_assigned=self._assigned
        )

    async def _partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.joined = False
        await self.on_revoked({tp.partition for tp in revoked})
        self.lag.forget(revoked)

    async def _assigned(self, assigned: set[TopicPartition]) -> None:
        partitions = sorted(tp.partition for tp in assigned)
        log.info(
            "assigned partitions %s",
            partitions,
            extra={"topic": self.config.topic, "partitions": partitions},
        )
        self.joined = True
        self.lag.refresh_soon()  # lag of the new partitions before our first commit

    async def stop(self) -> None:
        await self.consumer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and prepare batch N+1 while batch N is written; commit strictly in order.

        At most one batch is in flight, so memory and uncommitted work stay bounded (this is
        the backpressure), and a commit never covers a batch whose writes are not durable.
        """
        self.running = True
        self.started_at = self.clock()
        lag_task = asyncio.create_task(self.lag.run(stop), name="ringlog-lag")
        try:
            while not stop.is_set():
                self._raise_fatal()
                batch = await self._fetch(stop)
                if not batch:
                    await self._reap()
                    self._update_lag()
                    continue
                generation = self._generation
                await self._release_written()  # RELEASE: two batches alive at most, not three
                plan = await self.preparer.prepare(
                    batch, keep=self._calls_in_flight(), meanwhile=self._release_written
                )
                # BACKPRESSURE: at most one batch in flight. Batch N+1 waits here until batch
                # N is durable and committed; nothing more is fetched meanwhile, so memory and
                # uncommitted work stay bounded by two batches.
                await self._drain()
                self._raise_fatal()
                if generation != self._generation:
                    # A rebalance ran while this batch was prepared or waited (the callback
                    # runs in the consumer's coordinator task): the calls it merged into may
                    # be forgotten, so consume it again rather than write it.
                    await self._rewind(batch, revoked=set())
                    continue
                # The inserts start now, in a worker thread (PlanWriter.start); the task sends
                # the dead letters, waits for both and commits.
                writing = self.writer.start(plan)
                task = asyncio.create_task(self._write_and_commit(writing, batch))
                self._inflight = InFlight(task, batch, plan.keys)
                del writing, plan, batch  # held by the task, then by _written (RELEASE)
                for _ in range(WRITE_FIRST_TURNS):
                    await asyncio.sleep(0)
            await self._drain()
        finally:
            self.running = False
            lag_task.cancel()
            if self._inflight is not None and not self._inflight.task.done():
                self._inflight.task.cancel()

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            fatal, self._fatal = self._fatal, None
            raise fatal

    def _calls_in_flight(self) -> set[CallKey]:
        """Calls of the batch being written: they stay cached until it is durable."""
        return (
            self._inflight.calls if self._inflight is not None and self.batches_in_flight else set()
        )

    @property
    def batches_in_flight(self) -> int:
        """0 or 1: a batch whose writes (and then commit) are running."""
        return 0 if self._inflight is None or self._inflight.task.done() else 1

    async def _write_and_commit(self, writing: Writing, batch: Batch) -> None:
        await self.writer.finish(writing)
        await self._commit(batch)  # the only commit: after the batch is durable
        self.batches += 1
        self._update_lag()
        self._written.append(writing)  # its records are in its plan (RELEASE)

    async def _release_written(self) -> None:
        """RELEASE: free the batches made durable since the last call (see the docstring), a
        slice at a time: between two slices a thread waiting for the GIL gets it (the insert's
        or the reload's; one free of a whole batch held it 34-51 ms), and so does the loop
        (the batch in flight's dead letters and commit)."""
        while self._written:
            for part in self._written.pop().plan.bulk():
                while part:
                    del part[-RELEASE_SLICE:]
                    await asyncio.sleep(0)

    async def _drain(self) -> None:
        """Wait for the batch in flight (re-raising a fatal error from its writes); a batch
        abandoned by a rebalance (cancelled in `on_revoked`, already rewound) just ends."""
        inflight = self._inflight
        if inflight is None:
            return
        task = inflight.task
        await asyncio.wait({task})  # our own cancellation still propagates
        if self._inflight is inflight:
            self._inflight = None
        if not task.cancelled():
            task.result()

    async def _reap(self) -> None:
        if self._inflight is not None and self._inflight.task.done():
            await self._drain()

    async def _fetch(self, stop: asyncio.Event) -> Batch:
        """Fill a batch bounded by size and time; drop what a rebalance took away.

        THE BATCH WINDOW: a batch closes batch_max_seconds after the previous fetch ended,
        not after this one began. Records keep arriving in the consumer's buffer while the
        previous batch is prepared; counting that time keeps a record's wait for its batch
        within the bound (measured at 5000 events/s: p99 event-to-durable 2.3-2.8 s with the
        window opened at each fetch's start). A window already over takes what is buffered
        without waiting; with nothing buffered, a fresh window waits for records.
        """
        self._revoked = set()
        max_events = self.config.batch_max_events
        max_seconds = self.config.batch_max_seconds
        opened = self._window_opened if self._window_opened is not None else time.monotonic()
        deadline = opened + max_seconds
        batch = Batch()
        while len(batch) < max_events and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if batch:
                    break
                remaining = 0.0  # the window is over: take what is buffered, now
            records = await self.consumer.getmany(
                timeout_ms=int(remaining * 1000), max_records=max_events - len(batch)
            )
            for tp, tp_records in records.items():
                batch.add(tp, tp_records)
            self._note_log_ends(records)
            if not records:
                if batch:
                    break  # nothing more buffered: flush what we have rather than wait
                if remaining == 0.0:
                    deadline = time.monotonic() + max_seconds  # idle: a fresh window
                    self.preparer.rest()  # and the last batch's calls go back to rest
                    await self._reap()  # a durable batch in flight: its records go too
                    await self._release_written()
            elif len(batch) < max_events and await self._at_backlog_end(batch, max_seconds):
                break
        self._window_opened = time.monotonic()
        if self._revoked:
            # Those partitions now belong to another worker, which resumes from our last
            # commit; processing them here too would only race it. One may have been assigned
            # straight back and fetched again within this batch: the position is then past
            # the records dropped here, so they are rewound (the next commit would skip them).
            batch, dropped = batch.without(self._revoked)
            await self._rewind(dropped, revoked=set())
        return batch

    async def _at_backlog_end(self, batch: Batch, max_seconds: float) -> bool:
        """THE BACKLOG'S END: whether `batch` may close before its window does, because
        waiting cannot add to it what the window is for. True when some of its records have
        been in the log for at least `max_seconds` and every assigned partition has been read
        up to its highwater (what the broker held at the latest fetch).

        Live traffic gathers for the whole window as before: its records arrived with the
        fetch that showed them (a highwater first seen just now). A backlog's last records
        (a restart's catch-up, a replay) were under a highwater seen long ago; without this
        they waited out the window alone (0.2-0.3 s at the end of the benchmark's 3.4 s run).
        How long a record has been in the log is read from this loop's own clock (when a
        highwater above it was first seen), not from the records' timestamps: a producer's
        clock running late would otherwise close every batch early.
        """
        if self._revoked:
            return False  # a rebalance ran meanwhile: the batch is settled below, as before
        now = time.monotonic()
        waited = False
        for tp, last in batch.last_offsets.items():
            highwater, seen = self.consumer.highwater(tp), self._log_ends.get(tp)
            if highwater is None or seen is None or last + 1 < highwater:
                return False  # more of this partition to read: no waiting anyway
            waited = waited or now - seen[1] >= max_seconds
        if not waited:
            return False
        for tp in self.consumer.assignment() - batch.last_offsets.keys():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                return False
            try:
                if await self.consumer.position(tp) < highwater:
                    return False
            except BrokerUnavailable:
                return False  # not known: wait, as before
        return True

    def _note_log_ends(self, fetched: Iterable[TopicPartition]) -> None:
        """Note when each highwater of the `fetched` partitions was first seen."""
        now = time.monotonic()
        for tp in fetched:
            highwater, seen = self.consumer.highwater(tp), self._log_ends.get(tp)
            if highwater is not None and (seen is None or seen[0] != highwater):
                self._log_ends[tp] = (highwater, now)

    async def _commit(self, batch: Batch) -> None:
        offsets = {tp: offset + 1 for tp, offset in batch.last_offsets.items()}
        fetched = len(offsets)
        assigned = self.consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except CommitRejected as exc:
            # A rebalance took the partitions: the new owner replays from the previous
            # commit; the rows we wrote are idempotent, so nothing is lost or doubled.
            log.warning(
                "commit skipped after rebalance: %s",
                exc,
                extra={"topic": self.config.topic, "error_code": "commit_rebalance"},
            )
            return
        except BrokerUnavailable as exc:
            log.error(
                "commit failed, the batch will be replayed after restart: %s",
                exc,
                extra={"topic": self.config.topic, "error_code": "commit_failed"},
            )
            return
        self.committed.update(offsets)
        for tp in offsets:
            self._rewound_to.pop(tp, None)
        self.lag.committed(offsets)
        self.last_commit = self.clock()
        self.metrics.last_commit.set(self.last_commit)
        # Record timestamp -> this commit, for the records it covers (all of them unless a
        # rebalance took a partition away), one histogram update for the whole batch.
        covered: Sequence[Message] = batch
        if len(offsets) < fetched:
            covered = [m for m in batch if TopicPartition(m.topic, m.partition) in offsets]
        self.metrics.commit_latency.observe_ages(self.last_commit, [m.timestamp for m in covered])

    def _update_lag(self) -> None:
        metrics = self.metrics
        self.lag.publish()
        if self.writer.newest_written is not None:
            lag_s = self.clock() - self.writer.newest_written.timestamp()
            metrics.event_lag.set(max(0.0, lag_s))
        now = time.monotonic()
        if now - self._gauges_at >= 1.0:  # the gauges once a second are plenty
            self._gauges_at = now
            metrics.open_calls.set(self.preparer.cache.open_count())
