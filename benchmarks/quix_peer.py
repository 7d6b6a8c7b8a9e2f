"""Contender (d) of `benchmarks.ingest`: a quixstreams application with ringlog's pure core.

The job is the worker's, done the quixstreams way, so that only the framework differs:

* consume the topic (its own consumer group, `auto_offset_reset="earliest"`);
* per message, `worker.core.decode.decode(key, value)`; an invalid message becomes a
  rejected_event row and a dead letter, built by the worker's own `BatchPlanner._dead_letter`;
* a valid event is merged into its call's events in quixstreams' state store (RocksDB, with
  its changelog topic; prefixed by the message key = call_id, keyed by project_id), kept as
  `{event_id: payload text}`; the larger digest wins on a repeated event_id, as in
  `CallState.merge`. A duplicate changes nothing and emits nothing; otherwise the stored
  payloads are decoded again (`decode_stored`) and the call's rows rebuilt with
  `build_call_rows`, and the message emits its call_event row and the rebuilt rows;
* a `BatchingSink` writes them to ClickHouse (`ClickHouseStore.insert`, one insert per table
  per checkpoint, the dead letters produced with acks=all first). quixstreams flushes its
  sinks before it commits the offsets, which is ringlog's commit-after-write guarantee.

Rows of one call rebuilt several times in one checkpoint are de-duplicated by id in the sink
(the last one kept), as ReplacingMergeTree would do anyway.

What it does not do (the worker does): no timeout close of silent calls, no retry of a failed
write (an exception aborts the checkpoint and stops the app), no write of batch N while
batch N+1 is prepared (a quixstreams checkpoint flushes its sinks synchronously), no reload of
state from call_event (its state is the RocksDB store and its changelog).

The app runs in a process of its own (chDB allows one process per data directory, and peak
RSS is then the app's), started and watched by `run_quix_peer`, which reads the group's
committed offsets from Kafka until they cover the topic's end offsets. What quixstreams itself
costs: `--mode noop` iterates raw bytes; `--mode state` does the bare loop's (a) work in
quixstreams (orjson + per call its last event type and count, here in the RocksDB state with
its changelog instead of a dict); `--mode decode` runs ringlog's decoder only (no state, no
sink). Standalone, on a topic that already holds the events (e.g. one left by an ingest run),
it also times the bare aiokafka loop (a) on the same topic for the ratio:

    python -m benchmarks.quix_peer --brokers 127.0.0.1:9092 --topic T [--mode decode]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from aiokafka.admin import AIOKafkaAdminClient
from quixstreams import Application, State, message_context
from quixstreams.sinks.base import BatchingSink, SinkBatch

from benchmarks.ingest import bare_consumer, child_env, proc_status_kib
from benchmarks.supervised import committed_offsets
from devtools.kafka_local import topic_end_offsets
from devtools.producer import ensure_topic
from schemas.rows import TableName
from schemas.tables import ALL_TABLES
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.core.batch_plan import BatchPlanner, Plan
from worker.core.call_event_rows import CallEventRows, call_event_row
from worker.core.correlation import build_call_rows
from worker.core.decode import Rejection, ValidEvent, decode, decode_stored, payload_digest
from worker.core.rates import load_rate_plan
from worker.service.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[1]
Mode = Literal["full", "decode", "state", "noop"]
MODES: tuple[Mode, ...] = ("full", "decode", "state", "noop")
# The worker's batch bounds (RINGLOG_BATCH_MAX_EVENTS / _SECONDS) as the checkpoint bounds, so
# both write batches of the same size.
COMMIT_EVERY: int = Settings.model_fields["batch_max_events"].default
COMMIT_INTERVAL_S: float = Settings.model_fields["batch_max_seconds"].default
POLL_S = 0.05  # how often the parent reads the group's committed offsets
STOP_GRACE_S = 120.0  # after SIGTERM: final checkpoint, row counts, exit
DLQ_FLUSH_TIMEOUT_S = 30.0

Written = tuple[str, Mapping[str, Any]]  # (table, row)


# ---------------------------------------------------------------------------------------------
# the app (child process)


@dataclass(slots=True)
class Output:
    """What one message emits to the sink: its rows, and its dead letter if it was invalid."""

    rows: list[Written]
    dead_letter: bytes | None = None


@dataclass(slots=True)
class _Record:
    """The `Record` shape the worker's planner helpers read (quixstreams has no record)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class Progress:
    """First message time (wall clock: the parent compares it with its own) and a count."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.processed = 0

    def tick(self) -> None:
        if self.first is None:
            self.first = time.time()
        self.processed += 1


class CallProcessor:
    """The per-message function of the full mode: ringlog's decoder and correlation, with
    each call's events in quixstreams' state."""

    def __init__(self, progress: Progress) -> None:
        settings = Settings()
        self.rates = load_rate_plan(settings.rates_file)
        # Only its dead-letter helper is used: it has no state of its own.
        self._planner = BatchPlanner(self.rates, settings.call_timeout, 1)
        self.progress = progress

    def __call__(
        self,
        value: bytes,
        key: bytes | None,
        timestamp: int,
        headers: object,
        state: State[str, dict[str, str]],
    ) -> Output | None:
        self.progress.tick()
        ctx = message_context()
        record = _Record(ctx.topic, ctx.partition, ctx.offset, key, value)
        now = datetime.now(UTC)
        decoded = decode(key, value)
        if isinstance(decoded, Rejection):
            plan = Plan(1, now, CallEventRows(now))
            self._planner._dead_letter(record, decoded, plan)
            _, envelope = plan.dead_letter_records[0]
            return Output([(TableName.REJECTED_EVENT, plan.rejected_rows[0])], envelope)
        e = decoded.event
        # The state is prefixed by the message key (= call_id, checked by decode).
        stored: dict[str, str] = state.get(e.project_id) or {}
        current = stored.get(e.event_id)
        if current is not None and payload_digest(current.encode()) >= decoded.digest:
            return None  # a duplicate changes nothing (CallState.merge)
        stored[e.event_id] = value.decode("utf-8")  # the exact text (valid: decode parsed it)
        state.set(e.project_id, stored)
        events = [decoded]
        for event_id, payload in stored.items():
            if event_id == e.event_id:
                continue
            earlier = decode_stored(payload)
            if isinstance(earlier, ValidEvent):
                events.append(earlier)
        rows: list[Written] = [(TableName.CALL_EVENT, call_event_row(record, decoded, now))]
        for table, table_rows in build_call_rows(events, self.rates).tables().items():
            for row in table_rows:
                row["ingested_at"] = now
                rows.append((table, row))
        return Output(rows)


class ClickHouseSink(BatchingSink):
    """Writes a checkpoint's rows in the worker's order: dead letters (acks=all), then
    rejected_event, call_event and the rebuilt rows; one insert per table per checkpoint."""

    def __init__(self, store: ClickHouseStore, app: Application, dlq_topic: str) -> None:
        super().__init__()
        self.store = store
        self.dlq_topic = dlq_topic
        self._producer = app.get_producer()
        self.flushes = 0
        self.rows_written = 0

    def write(self, batch: SinkBatch) -> None:
        self._write([batch])

    def flush(self) -> None:
        # All partitions at once (the base class writes each partition's batch by itself).
        try:
            self._write(list(self._batches.values()))
        finally:
            self._batches.clear()

    def close(self) -> None:
        self._producer.flush(DLQ_FLUSH_TIMEOUT_S)

    def _write(self, batches: Iterable[SinkBatch]) -> None:
        plain: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        by_id: dict[str, dict[str, Mapping[str, Any]]] = defaultdict(dict)
        dead: list[tuple[bytes | None, bytes]] = []
        for batch in batches:
            for item in batch:
                out: Output | None = item.value
                if out is None:
                    continue
                if out.dead_letter is not None:
                    dead.append((item.key, out.dead_letter))
                for table, row in out.rows:
                    row_id = row.get("id")
                    if row_id is None:
                        plain[table].append(row)
                    else:  # a later rebuild of the same call replaces the earlier one
                        by_id[table][str(row_id)] = row
        if dead:
            self._dead_letters(dead)
        for table in (TableName.REJECTED_EVENT, TableName.CALL_EVENT):
            self._insert(table, plain.pop(table, []))
        for table, rows in plain.items():
            self._insert(table, rows)
        for table, keyed in by_id.items():
            self._insert(table, list(keyed.values()))
        self.flushes += 1

    def _insert(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if rows:
            self.store.insert(table, rows)
            self.rows_written += len(rows)

    def _dead_letters(self, records: list[tuple[bytes | None, bytes]]) -> None:
        failed: list[str] = []

        def delivered(err: object, _msg: object) -> None:  # confluent_kafka has no types
            if err is not None:
                failed.append(str(err))

        for key, value in records:
            self._producer.produce(self.dlq_topic, value, key, on_delivery=delivered)
        remaining = self._producer.flush(DLQ_FLUSH_TIMEOUT_S)
        if remaining or failed:  # the checkpoint is aborted: nothing is committed
            raise RuntimeError(f"dead letters not acknowledged: {remaining} left, {failed[:3]}")


@dataclass
class PeerSpec:
    brokers: str
    topic: str
    dlq_topic: str
    group_id: str
    clickhouse_url: str
    database: str
    state_dir: str
    mode: Mode = "full"
    commit_interval: float = COMMIT_INTERVAL_S
    commit_every: int = COMMIT_EVERY


def run_app(spec: PeerSpec) -> dict[str, Any]:
    """Run the app until SIGTERM (quixstreams then stops and commits its last checkpoint);
    returns the child's figures."""
    started = time.time()
    progress = Progress()
    store: ClickHouseStore | None = None
    app = Application(
        broker_address=spec.brokers,
        consumer_group=spec.group_id,
        auto_offset_reset="earliest",
        # An idle poll waits this long before the checkpoint is looked at (default 1 s): the
        # last checkpoint is not held back by a poll that has nothing left to read.
        consumer_poll_timeout=0.1,
        commit_interval=spec.commit_interval,
        commit_every=spec.commit_every,
        state_dir=spec.state_dir,
        loglevel="WARNING",
        producer_extra_config={"acks": "all"},
    )
    topic = app.topic(spec.topic, key_deserializer="bytes", value_deserializer="bytes")
    sdf = app.dataframe(topic)
    sink: ClickHouseSink | None = None
    if spec.mode == "full":
        store = ClickHouseStore(spec.clickhouse_url, spec.database)
        store.migrate()
        sink = ClickHouseSink(store, app, spec.dlq_topic)
        sdf = sdf.apply(CallProcessor(progress), stateful=True, metadata=True)
        sdf.sink(sink)
    elif spec.mode == "decode":

        def decode_only(value: bytes, key: bytes | None, timestamp: int, headers: object) -> None:
            progress.tick()
            decode(key, value)

        sdf.apply(decode_only, metadata=True)
    elif spec.mode == "state":

        def seen(value: bytes, state: State[str, list[Any]]) -> None:
            progress.tick()
            try:
                obj = orjson.loads(value)
            except orjson.JSONDecodeError:
                return
            if isinstance(obj, dict):  # [last event type, events seen] of the message's call
                count: int = state.get("seen", [None, 0])[1]
                state.set("seen", [obj.get("type"), count + 1])

        sdf.apply(seen, stateful=True)
    else:

        def noop(value: bytes) -> None:
            progress.tick()

        sdf.apply(noop)
    baseline = proc_status_kib("VmRSS")
    app.run()
    result: dict[str, Any] = {
        "mode": spec.mode,
        "first": progress.first,
        "processed": progress.processed,
        "startup_seconds": progress.first - started if progress.first is not None else None,
        "rss_baseline_kib": baseline,
        "rows": {},
    }
    if sink is not None and store is not None:
        sink.close()
        result["flushes"], result["rows_written"] = sink.flushes, sink.rows_written
        for table in ALL_TABLES:
            _, rows = store.query(f"SELECT count() FROM {table.name} FINAL")
            result["rows"][table.name] = int(str(rows[0][0]))
        store.close()
    result["rss_peak_kib"] = proc_status_kib("VmHWM")
    return result


# ---------------------------------------------------------------------------------------------
# the runner (parent process)


@dataclass
class QuixFigures:
    mode: str = "full"
    messages: int = 0  # covered by the group's committed offsets
    seconds: float = 0.0  # the app's first message -> its commits cover the end offsets
    complete: bool = True
    processed: int = 0  # messages the app processed (re-reads after a rebalance included)
    startup_seconds: float = 0.0  # process start -> first message
    flushes: int = 0  # sink flushes (checkpoints with rows)
    rows: dict[str, int] = field(default_factory=dict)  # table -> count() FINAL
    dead_letters: int = 0  # messages on its DLQ topic
    dlq_topic: str = ""  # of this run only: a rerun on the same topic must not count these
    rss_baseline_kib: int = 0
    rss_peak_kib: int = 0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def describe(self) -> str:
        """One line for a summary: what the figures rest on."""
        return (
            f"mode {self.mode}, {self.processed:,} messages processed, {self.flushes} sink "
            f"flushes, first message {self.startup_seconds:.1f}s after its start; peak RSS "
            f"{self.rss_peak_kib / 1024:,.0f} MiB (baseline {self.rss_baseline_kib / 1024:,.0f}"
            " MiB after imports)" + (f"; {self.note}" if self.note else "")
        )


async def run_quix_peer(
    *,
    brokers: str,
    topic: str,
    ends: dict[int, int],
    timeout_s: float,
    mode: Mode = "full",
    database: str = "bench",
    commit_interval: float = COMMIT_INTERVAL_S,
    commit_every: int = COMMIT_EVERY,
) -> QuixFigures:
    """Run the app in a child process, into a fresh chDB directory and state directory, until
    its group's committed offsets cover `ends` (or `timeout_s` from its start)."""
    run_id = uuid.uuid4().hex[:12]
    figures = QuixFigures(mode=mode, dlq_topic=f"{topic}.dlq.quix-{run_id}")
    tmp_dir = tempfile.mkdtemp(prefix="ringlog-bench-quix-")
    spec = PeerSpec(
        brokers=brokers,
        topic=topic,
        dlq_topic=figures.dlq_topic,
        group_id=f"ringlog-bench-quix-{run_id}",
        clickhouse_url=f"chdb://{tmp_dir}/clickhouse",
        database=database,
        state_dir=f"{tmp_dir}/state",
        mode=mode,
        commit_interval=commit_interval,
        commit_every=commit_every,
    )
    if mode == "full":
        await ensure_topic(brokers, spec.dlq_topic, partitions=1)
    command = [sys.executable, "-m", "benchmarks.quix_peer", "--child", json.dumps(asdict(spec))]
    covered_at: float | None = None
    # stderr to a file: a pipe nobody reads while the app runs could fill and stall it
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(  # noqa: ASYNC220 (once, at start)
            command,
            cwd=REPO_ROOT,
            env=child_env(),
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
        await admin.start()
        try:
            deadline = time.monotonic() + timeout_s
            while proc.poll() is None:
                committed = await committed_offsets(admin, spec.group_id, topic)
                figures.messages = sum(min(committed.get(p, 0), end) for p, end in ends.items())
                if all(committed.get(p, 0) >= end for p, end in ends.items() if end > 0):
                    covered_at = time.time()
                    break
                if time.monotonic() > deadline:
                    figures.complete = False
                    figures.note = f"time cap of {timeout_s:.0f}s reached"
                    break
                await asyncio.sleep(POLL_S)
        finally:
            await admin.close()
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # quixstreams stops and commits
            try:
                stdout, _ = await asyncio.to_thread(proc.communicate, timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                stdout, _ = await asyncio.to_thread(proc.communicate)
            shutil.rmtree(tmp_dir, ignore_errors=True)
        errors.seek(0)
        stderr = errors.read()
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:  # reported, not raised: the other contenders' figures still count
        tail = " | ".join(stderr.strip().splitlines()[-5:])
        figures.complete = False
        figures.note = f"no result from the quixstreams app (exit {proc.returncode}): {tail}"
        return figures
    data = json.loads(line)
    first: float | None = data["first"]
    if covered_at is None:  # the cap or an early exit: measure to now
        figures.complete = False
        covered_at = time.time()
    figures.seconds = covered_at - first if first is not None else 0.0
    figures.processed = int(data["processed"])
    figures.startup_seconds = float(data["startup_seconds"] or 0.0)
    figures.flushes = int(data.get("flushes", 0))
    figures.rows = {str(k): int(v) for k, v in data["rows"].items()}
    figures.rss_baseline_kib = int(data["rss_baseline_kib"])
    figures.rss_peak_kib = int(data["rss_peak_kib"])
    if mode == "full":
        figures.dead_letters = sum((await topic_end_offsets(brokers, spec.dlq_topic)).values())
    return figures


# ---------------------------------------------------------------------------------------------
# command line


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.quix_peer",
        description="Contender (d): quixstreams + ringlog core on an existing topic, with the "
        "bare aiokafka loop (a) on the same topic for the ratio.",
    )
    p.add_argument("--brokers", default="127.0.0.1:9092")
    p.add_argument("--topic", help="a topic that already holds the events")
    p.add_argument("--mode", choices=MODES, default="full", help="what the app does (full)")
    p.add_argument("--timeout", type=float, default=900.0, help="cap in seconds (900)")
    p.add_argument(
        "--commit-interval",
        type=float,
        default=COMMIT_INTERVAL_S,
        help=f"checkpoint after this many seconds ({COMMIT_INTERVAL_S:g}: the worker's bound)",
    )
    p.add_argument(
        "--commit-every",
        type=int,
        default=COMMIT_EVERY,
        help=f"...or this many messages ({COMMIT_EVERY}, the worker's batch size)",
    )
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    return p


def _standalone(args: argparse.Namespace) -> None:
    brokers, topic, mode = args.brokers, args.topic, args.mode
    ends = asyncio.run(topic_end_offsets(brokers, topic))
    print(f"topic {topic}: {sum(ends.values()):,} messages; (a) bare aiokafka ...", flush=True)
    bare = asyncio.run(bare_consumer(brokers, topic, ends))
    print(f"  {bare.messages:,} in {bare.seconds:.2f}s = {bare.rate:,.0f}/s", flush=True)
    print(f"(d) quixstreams, mode {mode} ...", flush=True)
    fig = asyncio.run(
        run_quix_peer(
            brokers=brokers,
            topic=topic,
            ends=ends,
            timeout_s=args.timeout,
            mode=mode,
            commit_interval=args.commit_interval,
            commit_every=args.commit_every,
        )
    )
    ratio = fig.rate / bare.rate if bare.rate > 0 else 0.0
    print(
        f"  {fig.messages:,} in {fig.seconds:.2f}s = {fig.rate:,.0f}/s = {ratio:.3f} of (a)"
        + ("" if fig.complete else " (partial)"),
        flush=True,
    )
    print(f"  {fig.describe()}", flush=True)
    if fig.rows:
        print("  rows: " + ", ".join(f"{t}={n:,}" for t, n in sorted(fig.rows.items())))
        print(f"  dead letters on {fig.dlq_topic}: {fig.dead_letters:,}", flush=True)
    print(json.dumps({**asdict(fig), "rate": fig.rate, "bare_rate": bare.rate, "ratio": ratio}))


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.child is not None:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
        result = run_app(PeerSpec(**json.loads(args.child)))
        sys.stdout.write(json.dumps(result) + "\n")  # stdout carries only the result line
        sys.stdout.flush()
        return
    if not args.topic:
        _parser().error("--topic is required")
    _standalone(args)


if __name__ == "__main__":
    main()
