"""The consume loop and the ingestor against in-memory ports: the order in which a batch is
made durable, a crash at each step, rebalances mid-batch, a stuck batch, backpressure.

Exact rows: whatever happens, the rows read as ReplacingMergeTree FINAL would read them are
the rows the pure core gives for the distinct valid events, and every invalid message is
dead-lettered once per delivery.
"""

from __future__ import annotations

import asyncio
import dataclasses
import weakref
import zlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devtools.fault_harness import expected_rows
from devtools.traffic import generate_calls
from schemas.tables import ROW_TABLES
from tests.support import builders as b
from tests.support.fakes import (
    FakeDeadLetters,
    FakeRecord,
    FakeStore,
    Journal,
    ScriptedConsumer,
    eventually,
)
from worker.core.batch_plan import BatchPlanner, Plan
from worker.core.call_state import CallKey
from worker.pipeline import consume_loop
from worker.pipeline.batch_preparer import BatchPreparer
from worker.pipeline.config import PipelineConfig
from worker.pipeline.consume_loop import Batch, ConsumeLoop
from worker.pipeline.metrics import COMMIT_LATENCY_BUCKETS, Metrics
from worker.pipeline.plan_writer import PlanWriter, Writing
from worker.pipeline.ports import (
    CommitRejected,
    Message,
    StoreError,
    StoreUnavailable,
    TopicPartition,
)
from worker.pipeline.retry import OutageRetry

TOPIC = "calls"
PARTITIONS = 3
CLOCK = datetime(2030, 1, 1, tzinfo=UTC)
# No timeout close in these tests: the expected rows are those of every call's full event set.
CONFIG = PipelineConfig(
    topic=TOPIC, batch_max_events=25, batch_max_seconds=0.05, call_timeout=timedelta(days=3650)
)
Messages = list[tuple[int, bytes | None, bytes]]


def traffic(calls: int = 30, seed: int = 5) -> Messages:
    """Generated calls with duplicates and invalid messages, keyed by call onto partitions."""
    out: Messages = []
    for msg in generate_calls(
        calls, seed=seed, invalid_share=0.08, duplicate_share=0.2, oversized=0
    ):
        out.append((zlib.crc32(msg.key or b"") % PARTITIONS, msg.key, msg.value))
    return out


def expected(messages: Messages) -> tuple[dict[str, list[dict[str, object]]], int, int]:
    """(rows per table, distinct valid events, invalid messages) by the pure core alone."""
    tables, distinct, invalid = expected_rows(((k, v) for _, k, v in messages), b.test_rates())
    return {str(name): rows for name, rows in tables.items()}, distinct, invalid


def without_ingested_at(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(
        ({k: v for k, v in row.items() if k != "ingested_at"} for row in rows),
        key=lambda r: str(r["id"]),
    )


class Pipeline:
    """One worker's pipeline over shared fakes; `restart` is a new process (empty cache)."""

    def __init__(self, messages: Messages) -> None:
        self.journal: Journal = []
        self.store = FakeStore(self.journal)
        self.dead_letters = FakeDeadLetters(self.journal)
        self.consumer = ScriptedConsumer.of(TOPIC, messages, PARTITIONS, self.journal)
        self.messages = messages
        self.loop = self._new_loop()

    def _new_loop(self) -> ConsumeLoop:
        metrics = Metrics()
        retry = OutageRetry(metrics)
        planner = BatchPlanner(b.test_rates(), CONFIG.call_timeout, CONFIG.cache_max_calls)
        preparer = BatchPreparer(planner, self.store, retry, metrics, clock=lambda: CLOCK)
        writer = PlanWriter(self.store, self.dead_letters, retry, metrics)
        return ConsumeLoop(CONFIG, preparer, writer, self.consumer, metrics)

    def restart(self) -> None:
        """A new worker process: no cache, the group's committed offsets, a fresh join."""
        old = self.consumer
        self.consumer = ScriptedConsumer(TOPIC, old.logs, self.journal, old.committed_offsets)
        self.loop = self._new_loop()

    async def run(self, until: Callable[[], bool] | None = None, limit_s: float = 20.0) -> None:
        """Run the loop until `until()` (default: everything committed), then stop it."""
        done = until or self.consumer.drained
        stop = asyncio.Event()
        await self.loop.start()
        task = asyncio.create_task(self.loop.run(stop))
        try:
            await eventually(lambda: done() or task.done(), limit_s)
            if task.done():
                task.result()  # re-raise why the loop stopped
                raise AssertionError("the loop stopped by itself")
        finally:
            stop.set()
            await asyncio.wait({task}, timeout=limit_s)
        task.result()

    def assert_exact(self) -> None:
        tables, distinct, invalid = expected(self.messages)
        for table in ROW_TABLES:
            actual = without_ingested_at(self.store.final(table.name))
            assert actual == without_ingested_at(tables[table.name]), table.name
        assert len(self.store.final("call_event")) == distinct
        assert len(self.store.final("rejected_event")) == invalid
        # A redelivered invalid message is dead-lettered again (at-least-once), never less.
        assert len({rec[1] for rec in self.dead_letters.records}) == invalid
        assert self.consumer.drained()


WRITE_RANK = {"rejected_event": 1, "call_event": 2}


def batch_of(records: Sequence[Message]) -> Batch:
    """A batch of `records` with each partition's offset read from every record (the
    reference `Batch.add`, which reads only each fetch's last, is held to)."""
    batch = Batch(records)
    for msg in records:
        tp = TopicPartition(msg.topic, msg.partition)
        if msg.offset > batch.last_offsets.get(tp, -1):
            batch.last_offsets[tp] = msg.offset
    return batch


def batches_of(journal: Journal) -> list[list[tuple[str, Any]]]:
    """The journal cut after each commit: the writes each commit covers, then the commit."""
    out: list[list[tuple[str, Any]]] = [[]]
    for entry in journal:
        out[-1].append(entry)
        if entry[0] == "commit":
            out.append([])
    return [batch for batch in out if batch]


def test_a_batch_is_written_in_order_and_committed_last() -> None:
    p = Pipeline(traffic())
    asyncio.run(p.run())
    p.assert_exact()
    batches = batches_of(p.journal)
    assert len(batches) > 5  # small batches: many commits
    for batch in batches:
        assert batch[-1][0] == "commit", batch
        # The inserts in order (rejected, call_event, rows); the dead letters go beside them,
        # so only the commit must come after them.
        ranks = [WRITE_RANK.get(str(what), 3) for kind, what in batch[:-1] if kind == "insert"]
        assert ranks == sorted(ranks), batch
        dead_letters = [n for kind, n in batch[:-1] if kind == "dead_letters"]
        rejected = ("insert", "rejected_event") in batch
        assert len(dead_letters) == (1 if rejected else 0), batch
    # a commit covers what was fetched: offsets only grow, per partition
    seen: dict[TopicPartition, int] = {}
    for _, offsets in (e for e in p.journal if e[0] == "commit"):
        for tp, offset in offsets.items():
            assert offset > seen.get(tp, -1)
            seen[tp] = offset


def test_a_batchs_dead_letters_are_sent_before_the_next_fetch() -> None:
    """THE WRITE'S FIRST STEPS: a batch's dead letters reach the sink before the loop goes on
    to fetch (and decode) the next batch, not at its first yield after that."""
    p = Pipeline(traffic(seed=11))
    started: list[int] = []  # dead letters of each plan whose write started
    start = p.loop.writer.start

    def starting(plan: Plan) -> Writing:
        started.append(len(plan.dead_letter_records))
        return start(plan)

    setattr(p.loop.writer, "start", starting)  # noqa: B010
    behind: list[tuple[int, int]] = []

    def look(fetch: int) -> None:
        sent = len(p.dead_letters.records)
        if sent != sum(started):
            behind.append((fetch, sum(started) - sent))

    p.consumer.before_fetch = look
    asyncio.run(p.run())
    p.assert_exact()
    assert sum(1 for n in started if n) > 3  # several batches had dead letters
    assert behind == []


STEPS = ["dead_letters", "rejected_event", "call_event", *(t.name for t in ROW_TABLES)]


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_loses_and_doubles_nothing(step: str) -> None:
    """The third time the pipeline reaches `step`, it fails for good (a crash): that batch is
    not committed; a restarted worker replays it and the rows come out exact."""
    p = Pipeline(traffic(seed=11))
    reached = 0

    def crash(what: str) -> BaseException | None:
        nonlocal reached
        if what != step:
            return None
        reached += 1
        return StoreError(f"crash at {step}") if reached == 3 else None

    p.store.fail = crash
    p.dead_letters.fail = crash

    with pytest.raises(StoreError, match=f"crash at {step}"):
        asyncio.run(p.run())
    assert not p.consumer.drained()
    assert reached == 3
    committed_before = dict(p.consumer.committed_offsets)

    p.store.fail = p.dead_letters.fail = lambda what: None
    p.restart()
    asyncio.run(p.run())
    # the replay starts where the crashed worker's last commit ended
    assert all(p.consumer.committed_offsets[tp] >= off for tp, off in committed_before.items())
    tables, distinct, invalid = expected(p.messages)
    for table in ROW_TABLES:
        actual = without_ingested_at(p.store.final(table.name))
        assert actual == without_ingested_at(tables[table.name]), table.name
    assert len(p.store.final("call_event")) == distinct
    assert len(p.store.final("rejected_event")) == invalid


@pytest.mark.parametrize("table", ["call_event", "incoming_call_log_item"])
def test_an_outage_mid_batch_retries_that_insert_alone(
    table: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The inserts of a batch run in one thread: an outage at one of them is retried (the
    log names its table), the inserts before it are not made again, none after it is
    skipped, and the commit still comes last."""
    p = Pipeline(traffic(seed=13))
    failures = 0

    def outage(what: str) -> BaseException | None:
        nonlocal failures
        if what == table and failures < 2:
            failures += 1
            return StoreUnavailable("ClickHouse restarting")
        return None

    p.store.fail = outage
    asyncio.run(p.run())
    p.assert_exact()
    assert failures == 2
    assert f"inserting into {table} failed (attempt 2)" in caplog.text
    for batch in batches_of(p.journal):
        tables = [str(what) for kind, what in batch if kind == "insert"]
        assert len(tables) == len(set(tables)), batch  # each insert made once per batch
        assert batch[-1][0] == "commit", batch


def test_a_batch_prepared_across_a_rebalance_is_rewound_not_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p = Pipeline(traffic(seed=21))
    prepared: list[Plan] = []
    original = p.loop.preparer.prepare
    tp0 = TopicPartition(TOPIC, 0)

    async def prepare(
        batch: Sequence[Message], keep: set[CallKey], meanwhile: Callable[[], Awaitable[object]]
    ) -> Plan:
        plan = await original(batch, keep, meanwhile)
        prepared.append(plan)
        if len(prepared) == 2:
            # partition 0 is revoked and assigned straight back while batch 2 is prepared
            await p.consumer.revoke({tp0})
            await p.consumer.assign({tp0})
        return plan

    monkeypatch.setattr(p.loop.preparer, "prepare", prepare)
    asyncio.run(p.run())
    p.assert_exact()
    commits = [e for e in p.journal if e[0] == "commit"]
    assert len(prepared) > len(commits)  # the plan of batch 2 was dropped, its records re-read


def test_records_of_a_partition_revoked_during_the_fetch_are_dropped_then_reread() -> None:
    p = Pipeline(traffic(seed=31))
    tp1 = TopicPartition(TOPIC, 1)

    async def rebalance(fetch: int) -> None:
        if fetch == 3:
            await p.consumer.revoke({tp1})
        elif fetch == 5:
            await p.consumer.assign({tp1})

    p.consumer.before_fetch = rebalance
    asyncio.run(p.run())
    p.assert_exact()


@pytest.mark.parametrize("position_known", [True, False])
def test_a_stuck_batch_is_abandoned_on_revoke_and_replayed(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, position_known: bool
) -> None:
    """Batch 1 hangs in its write, batch 2 waits behind it; a revoke abandons batch 1 and
    rewinds, then batch 2 (prepared across the rebalance) is rewound too: never past batch
    1's records, even when the broker cannot tell the consumer's position."""
    monkeypatch.setattr(consume_loop, "REVOKE_GRACE_S", 0.2)
    p = Pipeline(traffic(seed=41))
    p.consumer.position_fails = not position_known
    p.store.open.clear()  # ClickHouse stops answering: the first batch's write hangs

    async def stuck_then_revoked() -> None:
        stop = asyncio.Event()
        await p.loop.start()
        task = asyncio.create_task(p.loop.run(stop))
        # batch 1 is stuck in its write, batch 2 is prepared and waits for it
        await eventually(lambda: p.loop.batches_in_flight == 1 and p.consumer.fetches >= 2)
        # partition 2 moves away; partition 0, whose records batches 1 and 2 hold, stays
        tp2 = TopicPartition(TOPIC, 2)
        await p.consumer.revoke({tp2})  # waits REVOKE_GRACE_S, then abandons batch 1
        assert "abandoned the batch in flight" in caplog.text
        assert not any(e[0] == "commit" for e in p.journal)
        assert not task.done()  # the loop goes on without the abandoned batch
        p.store.open.set()  # ClickHouse is back (the abandoned write may still land)
        await p.consumer.assign({tp2})
        await eventually(lambda: p.consumer.drained() or task.done())
        stop.set()
        await task

    asyncio.run(stuck_then_revoked())
    p.assert_exact()


def test_at_most_one_batch_is_in_flight() -> None:
    """Backpressure: while batch N's write hangs, batch N+1 is fetched and prepared, and
    nothing more is read from Kafka until N is durable."""
    p = Pipeline(traffic(seed=51))
    p.store.open.clear()
    prepared = 0
    original = p.loop.preparer.prepare

    async def prepare(
        batch: Sequence[Message], keep: set[CallKey], meanwhile: Callable[[], Awaitable[object]]
    ) -> Plan:
        nonlocal prepared
        prepared += 1
        return await original(batch, keep, meanwhile)

    setattr(p.loop.preparer, "prepare", prepare)  # noqa: B010

    async def scenario() -> None:
        stop = asyncio.Event()
        await p.loop.start()
        task = asyncio.create_task(p.loop.run(stop))
        await asyncio.sleep(0.5)
        read = sum(p.consumer.positions.values())
        assert prepared == 2, prepared
        assert read <= 2 * CONFIG.batch_max_events, read
        assert not any(e[0] == "commit" for e in p.journal)
        p.store.open.set()
        await eventually(lambda: p.consumer.drained() or task.done())
        stop.set()
        await task

    asyncio.run(scenario())
    p.assert_exact()


# -- commit latency ---------------------------------------------------------------------------

NOW_S = 1_900_000_000.0  # the loop's pinned wall clock
NOW_MS = 1_900_000_000_000
# Record ages at the commit, in ms (ages on a bucket's bound land in it), and one record whose
# producer clock runs 5 s ahead (observed as 0): every record's bucket is known exactly.
AGES_MS = [0, 50, 51, 499, 500, 1_500, 4_000, 299_999, 400_000, -5_000]
LATENCY = "ringlog_event_commit_latency_seconds"


def stamp(p: Pipeline, age_of: Callable[[int], int]) -> list[int]:
    """Give the n-th record of the logs the timestamp NOW_MS - age_of(n); returns the ages."""
    ages: list[int] = []
    for tp, log in p.consumer.logs.items():
        for i, rec in enumerate(log):
            ages.append(age_of(len(ages)))
            log[i] = dataclasses.replace(rec, timestamp=NOW_MS - ages[-1])
        assert all(r.partition == tp.partition for r in log)
    return ages


def latency(p: Pipeline, suffix: str, le: str | None = None) -> float:
    labels = {} if le is None else {"le": le}
    value = p.loop.metrics.registry.get_sample_value(LATENCY + suffix, labels)
    assert value is not None, (suffix, le)
    return value


def test_commit_latency_is_recorded_per_record_at_the_commit() -> None:
    p = Pipeline(traffic(seed=61))
    p.loop.clock = lambda: NOW_S
    ages = stamp(p, lambda n: AGES_MS[n % len(AGES_MS)])
    asyncio.run(p.run())
    p.assert_exact()
    commits = [e for e in p.journal if e[0] == "commit"]
    assert len(commits) > 5  # many batches, each added at its commit
    # every record committed once (no rewind in this run): exactly one observation each
    assert latency(p, "_count") == len(ages)
    observed = [max(0, a) for a in ages]
    for bound in COMMIT_LATENCY_BUCKETS:
        expected_count = sum(a <= round(bound * 1000) for a in observed)
        assert latency(p, "_bucket", repr(float(bound))) == expected_count, bound
    # by hand: records of each age in AGES_MS
    of_age = [sum(1 for n in range(len(ages)) if n % len(AGES_MS) == i) for i in range(10)]
    assert latency(p, "_bucket", "0.05") == of_age[0] + of_age[1] + of_age[9]  # 0, 50, future
    assert latency(p, "_bucket", "0.1") == latency(p, "_bucket", "0.05") + of_age[2]  # 51
    assert latency(p, "_bucket", "+Inf") == latency(p, "_bucket", "300.0") + of_age[8]
    assert latency(p, "_bucket", "+Inf") == len(ages)
    assert latency(p, "_sum") == pytest.approx(sum(observed) / 1000)


def test_commit_latency_counts_only_what_the_commit_covers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Records of a partition no longer assigned are not committed, so not observed; a
    rejected commit observes nothing."""
    p = Pipeline(traffic(seed=71))
    p.loop.clock = lambda: NOW_S
    stamp(p, lambda n: 200)
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
    batch = batch_of([*p.consumer.logs[tp0][:4], *p.consumer.logs[tp1][:3]])

    async def commit_with(assigned: set[TopicPartition]) -> None:
        await p.loop.start()
        await p.consumer.assign(assigned)
        await p.loop._commit(batch)

    asyncio.run(commit_with({tp0}))
    assert p.consumer.committed_offsets == {tp0: 4}
    assert latency(p, "_count") == 4
    assert latency(p, "_bucket", "0.25") == 4
    assert latency(p, "_bucket", "0.1") == 0

    async def rejected(offsets: object) -> None:
        raise CommitRejected("rebalanced (scripted)")

    monkeypatch.setattr(p.consumer, "commit", rejected)
    asyncio.run(p.loop._commit(batch))
    assert latency(p, "_count") == 4


def test_a_batch_knows_each_partitions_last_offset_from_its_fetches() -> None:
    """The commit covers each partition's highest offset, which the batch keeps from the last
    record of each fetch: the same as reading every record, across fetches and a seek back."""
    tp0, tp1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)

    def records(tp: TopicPartition, offsets: range) -> list[FakeRecord]:
        return [FakeRecord(tp.topic, tp.partition, n, b"k", b"v") for n in offsets]

    batch = Batch()
    batch.add(tp0, records(tp0, range(0, 5)))
    batch.add(tp1, records(tp1, range(10, 12)))
    batch.add(tp1, [])
    batch.add(tp0, records(tp0, range(5, 9)))
    batch.add(tp0, records(tp0, range(3, 6)))  # read again after a seek back
    assert batch.last_offsets == {tp0: 8, tp1: 11}
    assert batch_of(batch).last_offsets == batch.last_offsets
    assert [m.offset for m in batch] == [0, 1, 2, 3, 4, 10, 11, 5, 6, 7, 8, 3, 4, 5]
    kept, dropped = batch.without({1})
    assert kept.last_offsets == {tp0: 8}
    assert [m.offset for m in kept] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 3, 4, 5]
    assert [m.offset for m in dropped] == [10, 11]


def test_the_batch_window_opens_when_the_previous_fetch_ends() -> None:
    """Records buffered while the previous batch was prepared wait at most
    batch_max_seconds for their batch: a fetch whose window is already over takes what is
    buffered without waiting (getmany with no timeout)."""

    async def scenario() -> tuple[int, int, list[int]]:
        pipeline = Pipeline(traffic(calls=20))
        await pipeline.loop.start()
        timeouts: list[int] = []
        real = pipeline.consumer.getmany

        async def recording(timeout_ms: int, max_records: int) -> Any:
            timeouts.append(timeout_ms)
            return await real(timeout_ms=timeout_ms, max_records=max_records)

        pipeline.consumer.getmany = recording  # type: ignore[method-assign]
        stop = asyncio.Event()
        first = await pipeline.loop._fetch(stop)
        await asyncio.sleep(CONFIG.batch_max_seconds * 3)  # preparing the first batch
        timeouts.clear()
        second = await pipeline.loop._fetch(stop)
        return len(first), len(second), timeouts

    first, second, timeouts = asyncio.run(scenario())
    assert first > 0 and second > 0
    assert timeouts[0] == 0, timeouts


def test_every_cached_call_rests_packed_once_the_loop_is_idle() -> None:
    """The planner leaves the latest batch's calls unpacked for the next batch; an empty fetch
    puts them to rest (CallState.pack), so an idle worker holds only packed calls."""
    p = Pipeline(traffic())
    cache = p.loop.preparer.cache

    def drained_and_resting() -> bool:
        return p.consumer.drained() and all(state.resting for _, state in cache.items())

    asyncio.run(p.run(until=drained_and_resting, limit_s=5.0))
    assert len(cache) > 0
    p.assert_exact()


def test_an_idle_loop_holds_no_batch() -> None:
    """Once the last batch is durable and nothing more comes, the loop lets go of it (its
    records, its plan), so an idle worker holds only its cached calls (RELEASE)."""
    p = Pipeline(traffic())

    def drained_and_let_go() -> bool:
        return p.consumer.drained() and p.loop._inflight is None and not p.loop._written

    asyncio.run(p.run(until=drained_and_let_go, limit_s=5.0))
    p.assert_exact()


def test_written_batches_are_freed_before_the_next_is_prepared() -> None:
    """RELEASE: when a batch's preparation starts, the only earlier plan alive (its records,
    events and rows) is the batch in flight's; and once the reload query runs, that one too
    if it has become durable meanwhile."""
    p = Pipeline(traffic(calls=40))
    plans: list[weakref.ref[Plan]] = []
    outlived_start: list[int] = []
    outlived_reload: list[int] = []
    original = p.loop.preparer.prepare

    def alive(refs: list[weakref.ref[Plan]]) -> list[int]:
        return [i for i, ref in enumerate(refs) if ref() is not None]

    async def prepare(
        batch: Sequence[Message], keep: set[CallKey], meanwhile: Callable[[], Awaitable[object]]
    ) -> Plan:
        outlived_start.extend(alive(plans[:-1]))
        in_flight = plans[-1:] if p.loop.batches_in_flight else []

        async def release_and_look() -> None:
            await meanwhile()
            if not p.loop.batches_in_flight:
                outlived_reload.extend(alive(in_flight))

        plan = await original(batch, keep, release_and_look)
        plans.append(weakref.ref(plan))
        return plan

    setattr(p.loop.preparer, "prepare", prepare)  # noqa: B010
    asyncio.run(p.run())

    p.assert_exact()
    assert len(plans) >= 4
    assert outlived_start == []
    assert outlived_reload == []


class FetchScript:
    """A loop over two partitions (8 and 14 records; a third, empty) whose batches hold 10
    records and wait at most 0.3 s: the getmany timeouts of each `_fetch` are recorded."""

    WINDOW_S = 0.3

    def __init__(self) -> None:
        first: tuple[int, bytes | None, bytes] = (0, b"a", b"x")
        second: tuple[int, bytes | None, bytes] = (1, b"b", b"y")
        messages: Messages = [first] * 8 + [second] * 14
        self.pipeline = Pipeline(messages)
        self.loop = self.pipeline.loop
        self.consumer = self.pipeline.consumer
        self.loop.config = dataclasses.replace(
            CONFIG, batch_max_events=10, batch_max_seconds=self.WINDOW_S
        )
        self.timeouts: list[int] = []
        real = self.consumer.getmany

        async def recording(timeout_ms: int, max_records: int) -> Any:
            self.timeouts.append(timeout_ms)
            return await real(timeout_ms=timeout_ms, max_records=max_records)

        self.consumer.getmany = recording  # type: ignore[method-assign]

    async def backlog_read_up_to_its_last_two(self) -> None:
        """The first batch (8 + 2 records) notes both partitions' log ends; the second, made
        once those are older than the window, reads all but the last two records and opens
        a fresh window."""
        await self.loop.start()
        stop = asyncio.Event()
        assert len(await self.loop._fetch(stop)) == 10
        await asyncio.sleep(self.WINDOW_S + 0.05)  # the first batch being prepared
        assert len(await self.loop._fetch(stop)) == 10

    async def last_fetch(self) -> tuple[list[int], list[int]]:
        """The next `_fetch`: the offsets of its records and its getmany timeouts."""
        self.timeouts.clear()
        batch = await self.loop._fetch(asyncio.Event())
        return [m.offset for m in batch], list(self.timeouts)


def test_a_backlogs_last_records_do_not_wait_out_the_window() -> None:
    """THE BACKLOG'S END: records that have been in the log for a whole window, in a batch
    that has read every partition to its end, close their batch at once: one getmany, no
    second one waiting for records that are not coming."""

    async def scenario() -> tuple[list[int], list[int]]:
        script = FetchScript()
        await script.backlog_read_up_to_its_last_two()
        return await script.last_fetch()

    offsets, timeouts = asyncio.run(scenario())
    assert offsets == [12, 13]
    assert len(timeouts) == 1 and timeouts[0] > 0, timeouts


def test_live_records_still_gather_for_the_window() -> None:
    """Records the log did not hold at the last fetch (live traffic: a highwater never seen
    before) keep their batch open for more, as the window is for."""

    async def scenario() -> tuple[list[int], list[int]]:
        script = FetchScript()
        await script.backlog_read_up_to_its_last_two()
        log = script.consumer.logs[TopicPartition(TOPIC, 1)]
        log.extend([FakeRecord(TOPIC, 1, offset, b"b", b"z") for offset in (14, 15)])
        return await script.last_fetch()

    offsets, timeouts = asyncio.run(scenario())
    assert offsets == [12, 13, 14, 15]
    assert len(timeouts) >= 2 and timeouts[1] > 0, timeouts


def test_a_partition_whose_position_is_unknown_keeps_the_window() -> None:
    """Whether every partition was read to its end must be known: when the consumer cannot
    tell a position, the batch waits for its window as before."""

    async def scenario() -> tuple[list[int], list[int]]:
        script = FetchScript()
        await script.backlog_read_up_to_its_last_two()
        script.consumer.position_fails = True  # the empty third partition's position
        return await script.last_fetch()

    offsets, timeouts = asyncio.run(scenario())
    assert offsets == [12, 13]
    assert len(timeouts) >= 2 and timeouts[1] > 0, timeouts
