"""Ingestion benchmark: bare aiokafka (a) vs the real worker (b) vs a no-op Faust agent (c)
vs a quixstreams app with ringlog's core (d).

All read the same freshly produced topic in one run, so their figures are comparable;
machines are shared and noisy, so compare the ratios to (a), not absolute rates.

    python -m benchmarks.ingest                      # 200k events, 4 partitions
    python -m benchmarks.ingest --events 50000 --skip-faust --profile /tmp/ingest.prof
    python -m benchmarks.ingest --events 50000 --rate 5000   # event -> durable latency

Steps:
1. generate N events (`devtools.traffic.generate_events`, 2% invalid, nothing oversized) and
   produce them to a fresh topic;
2. (a) a bare aiokafka consumer: getmany + orjson.loads + a dict keyed by call id + commit per
   batch, timed from its first message to its last;
3. (c) a faust-streaming agent iterating raw bytes, in a subprocess (`benchmarks.faust_consumer`);
   (d) a quixstreams app doing the worker's job with ringlog's pure core (decode, state in its
   RocksDB store, `build_call_rows`, a batching ClickHouse sink into a fresh chDB directory),
   in a subprocess (`benchmarks.quix_peer`), timed from its first message to the commit that
   covers the topic's end offsets; skipped when quixstreams is not installed (`--skip-quix`);
4. (b) the worker (the `ringlog worker` Faust app and lifecycle) with a fresh chDB store, timed
   from its first fetched message to the commit that covers the topic's end offsets, i.e. until
   everything is durable in ClickHouse. By default it runs in a child process that does
   nothing else, so that process's peak RSS (VmHWM) is the worker's peak; `--in-process` runs it
   here instead (then the RSS is sampled from /proc/self/status before and during the run).
Afterwards the row counts are checked against what was generated: every message must be
accounted for (distinct valid events in call_event, invalid ones in rejected_event and DLQ).

`--rate R` measures latency instead of throughput: nothing is produced beforehand; the worker
(b) is started as above, and once it has joined its group the events are produced at R per
second (bursts every 10 ms) while it consumes. Each committed record's latency is the worker's
commit time minus the record's Kafka timestamp (set when the producer sent it), taken in the
worker by wrapping its `_commit`; the run prints p50 / p99 / max, the worker's batch time bound
(batch_max_seconds) and whether p99 <= that bound + 1 s. (a) and (c) do not run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import importlib.util
import io
import json
import math
import os
import pstats
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import orjson
from aiokafka import AIOKafkaConsumer

from benchmarks.supervised import SupervisedFigures, run_supervised
from devtools.fault_harness import free_port
from devtools.kafka_local import topic_end_offsets
from devtools.producer import ProduceStats, ensure_topic, produce
from devtools.traffic import Message, generate_events
from schemas.tables import ALL_TABLES
from worker.core.batch_plan import Plan
from worker.pipeline.consume_loop import Batch, ConsumeLoop
from worker.pipeline.plan_writer import PlanWriter, Writing
from worker.pipeline.ports import TopicPartition
from worker.service.faust_host import start_in_background
from worker.service.lifecycle import Worker
from worker.service.settings import Settings

if TYPE_CHECKING:  # quixstreams is a dev extra: imported only when (d) runs
    from benchmarks.quix_peer import QuixFigures

REPO_ROOT = Path(__file__).resolve().parents[1]

# Same fetch sizes as the worker's consumer (worker/adapters/kafka/consumer.py), so (a) is not
# handicapped.
MAX_PARTITION_FETCH_BYTES = 8 * 1024 * 1024
FETCH_MAX_BYTES = 64 * 1024 * 1024

BARE_MAX_RECORDS = 10_000
BARE_TIMEOUT_MS = 1_000
PHASE_TIMEOUT_S = 900.0  # (a) and (b) give up after this long
FAUST_TIMEOUT_S = 120.0
QUIX_TIMEOUT_S = 600.0  # (d): from its process start
POLL_S = 0.01
JOIN_TIMEOUT_S = 120.0  # --rate: the worker must have joined its group before producing
RATE_TICK_S = 0.01  # --rate: a burst of rate * 10 ms events every 10 ms
LATENCY_GOAL_MARGIN_S = 1.0  # the goal: p99 <= batch_max_seconds + 1 s
LATENCY_METRIC = "ringlog_event_commit_latency_seconds"
CHILD_READY = "ringlog-bench: worker ready"  # the worker child waits for the end offsets


# ---------------------------------------------------------------------------------------------
# results


@dataclass
class ConsumerFigures:
    """One consumer's throughput: `messages` read between its first and last message."""

    name: str
    messages: int = 0
    seconds: float = 0.0
    complete: bool = True
    note: str = ""
    cpu_seconds: float = 0.0  # this process's CPU over the same span (0: not measured)

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0


@dataclass
class LatencyFigures:
    """--rate: each committed record's Kafka timestamp to the worker's commit covering it."""

    target_rate: float = 0.0  # events/s asked of the producer
    produced_rate: float = 0.0  # events/s it achieved (acknowledged)
    records: int = 0  # committed records measured
    p50: float = 0.0
    p99: float = 0.0
    max: float = 0.0
    batch_max_seconds: float = 0.0  # the worker's batch time bound
    histogram_count: int = 0  # the worker's own ringlog_event_commit_latency_seconds_count
    histogram_p99_le: str = ""  # the bucket of that histogram holding its p99

    @property
    def goal_seconds(self) -> float:
        return self.batch_max_seconds + LATENCY_GOAL_MARGIN_S

    @property
    def within_goal(self) -> bool:
        return self.records > 0 and self.p99 <= self.goal_seconds


@dataclass
class WorkerFigures:
    messages: int = 0  # committed = durable in ClickHouse
    seconds: float = 0.0  # first fetched message -> commit covering the end offsets
    seconds_from_start: float = 0.0  # consumer started (before group join) -> final commit
    complete: bool = True
    batches: int = 0
    fetch_seconds: float = 0.0  # time inside consumer.getmany (waiting for/filling batches)
    prepare_seconds: float = 0.0  # Ingestor.prepare: decode, load, correlate (event loop)
    write_seconds: float = 0.0  # Ingestor.write: DLQ + inserts (overlaps the next prepare)
    commit_seconds: float = 0.0
    # CPU over `seconds`: the worker's whole process (every thread, the embedded ClickHouse's
    # too) and its event loop's thread. Less sensitive to a busy host than the rates.
    cpu_seconds: float = 0.0
    loop_cpu_seconds: float = 0.0
    # Minor page faults over `seconds`, likewise: each is a fresh 4 KiB page the kernel zeroes
    # (about 3 us on this project's test hosts, 2026-12-05), so memory a batch takes anew and
    # gives back shows here.
    page_faults: int = 0
    loop_page_faults: int = 0
    rows: dict[str, int] = field(default_factory=dict)  # table -> count() FINAL
    dead_letters: int = 0  # messages on the DLQ topic
    rss_baseline_kib: int = 0
    rss_peak_kib: int = 0
    rss_note: str = ""
    note: str = ""
    latency: LatencyFigures | None = None  # --rate only

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WorkerFigures:
        data = dict(data)
        data.pop("rate", None)
        latency = data.pop("latency", None)
        return cls(**data, latency=LatencyFigures(**latency) if latency is not None else None)


@dataclass
class Expected:
    """What the generated messages must turn into."""

    messages: int = 0
    invalid: int = 0
    valid: int = 0
    distinct_valid: int = 0  # distinct (project_id, call_id, event_id): call_event rows

    @property
    def duplicates(self) -> int:
        return self.valid - self.distinct_valid


@dataclass
class BenchResult:
    command: str
    topic: str
    events_requested: int
    partitions: int
    batch_max_events: int
    produce_rate: float
    produce_seconds: float
    expected: Expected
    bare: ConsumerFigures | None  # None with --rate
    worker: WorkerFigures
    faust: ConsumerFigures | None
    faust_skipped_reason: str = ""
    quix: QuixFigures | None = None
    quix_skipped_reason: str = ""
    supervised: list[SupervisedFigures] = field(default_factory=list)
    checks: dict[str, bool] = field(default_factory=dict)
    profile: str = ""

    @property
    def accounted_for(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def worker_ratio(self) -> float:
        if self.bare is None:
            return 0.0
        return self.worker.rate / self.bare.rate if self.bare.rate > 0 else 0.0

    @property
    def faust_ratio(self) -> float | None:
        if self.faust is None or self.bare is None or self.bare.rate <= 0:
            return None
        return self.faust.rate / self.bare.rate

    @property
    def quix_ratio(self) -> float | None:
        if self.quix is None or self.bare is None or self.bare.rate <= 0:
            return None
        return self.quix.rate / self.bare.rate

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.bare is not None:
            data["bare"]["rate"] = self.bare.rate
        data["worker"]["rate"] = self.worker.rate
        latency = self.worker.latency
        if latency is None:
            del data["worker"]["latency"]  # the full-speed output stays as it was
        else:
            data["worker"]["latency"]["goal_seconds"] = latency.goal_seconds
            data["worker"]["latency"]["within_goal"] = latency.within_goal
        if self.faust is not None:
            data["faust"]["rate"] = self.faust.rate
        data["expected"]["duplicates"] = self.expected.duplicates
        data["ratio_worker_to_bare"] = self.worker_ratio
        for figures, out in zip(self.supervised, data["supervised"], strict=True):
            out["rate"] = figures.rate
            bare = self.bare.rate if self.bare is not None else 0.0
            out["ratio_to_bare"] = figures.rate / bare if bare > 0 else 0.0
        data["ratio_faust_to_bare"] = self.faust_ratio
        if self.quix is not None:
            data["quix"]["rate"] = self.quix.rate
        data["ratio_quix_to_bare"] = self.quix_ratio
        data["accounted_for"] = self.accounted_for
        return data


# The worker's default batch size (a pydantic field default is not a class attribute).
DEFAULT_BATCH_MAX_EVENTS: int = Settings.model_fields["batch_max_events"].default


@dataclass
class Options:
    events: int = 200_000
    partitions: int = 4
    brokers: str = "127.0.0.1:9092"
    batch_max_events: int = DEFAULT_BATCH_MAX_EVENTS
    seed: int = 1
    skip_faust: bool = False
    faust_timeout: float = FAUST_TIMEOUT_S
    skip_quix: bool = False
    quix_timeout: float = QUIX_TIMEOUT_S
    json: bool = False
    clickhouse_url: str | None = None  # None: a fresh temporary chDB directory
    database: str = "bench"
    in_process: bool = False
    profile: Path | None = None
    progress: bool = True
    rate: float | None = None  # events/s: the latency mode
    command: str = ""
    processes: tuple[int, ...] = (2,)  # `ringlog worker --processes N` runs, after (b)


# ---------------------------------------------------------------------------------------------
# helpers


def say(text: str) -> None:
    print(text, flush=True)


def proc_status_kib(field_name: str, pid: int | None = None) -> int:
    """A `kB` field of /proc/<pid>/status (VmRSS, VmHWM), of this process by default; 0 where
    there is no /proc or the process is gone."""
    try:
        with open(f"/proc/{'self' if pid is None else pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class RssSampler:
    """Samples VmRSS in a thread; `peak` is the highest sample since `start`."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.baseline = 0
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def start(self) -> None:
        self.baseline = self.peak = proc_status_kib("VmRSS")
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, proc_status_kib("VmRSS"))

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, proc_status_kib("VmRSS"))


def expected_of(messages: Sequence[Message]) -> Expected:
    exp = Expected(messages=len(messages))
    distinct: set[tuple[str, str, str]] = set()
    for msg in messages:
        if not msg.valid:
            exp.invalid += 1
            continue
        exp.valid += 1
        obj = orjson.loads(msg.value)
        distinct.add((str(uuid.UUID(str(obj["project_id"]))), obj["call_id"], obj["event_id"]))
    exp.distinct_valid = len(distinct)
    return exp


# ---------------------------------------------------------------------------------------------
# (a) bare aiokafka


async def bare_consumer(brokers: str, topic: str, ends: dict[int, int]) -> ConsumerFigures:
    """getmany + orjson.loads + dict per call id + commit per batch, until the end offsets."""
    figures = ConsumerFigures("bare aiokafka")
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=brokers,
        group_id=f"ringlog-bench-bare-{uuid.uuid4().hex[:12]}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_PARTITION_FETCH_BYTES,
        fetch_max_bytes=FETCH_MAX_BYTES,
    )
    calls: dict[str, tuple[str, int]] = {}  # call_id -> (last event type, events seen)
    undecodable = 0
    positions = dict.fromkeys(ends, 0)
    first: float | None = None
    last = cpu_first = cpu_last = 0.0
    deadline = time.monotonic() + PHASE_TIMEOUT_S
    await consumer.start()
    try:
        while any(positions[p] < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                figures.complete = False
                figures.note = f"gave up after {PHASE_TIMEOUT_S:.0f}s"
                break
            batch = await consumer.getmany(timeout_ms=BARE_TIMEOUT_MS, max_records=BARE_MAX_RECORDS)
            if not batch:
                continue
            if first is None:
                first = time.perf_counter()
                cpu_first = time.process_time()
            for tp, records in batch.items():
                for record in records:
                    try:
                        obj = orjson.loads(record.value)
                    except orjson.JSONDecodeError:
                        undecodable += 1
                        continue
                    if not isinstance(obj, dict):
                        undecodable += 1
                        continue
                    call_id = str(obj.get("call_id"))
                    seen = calls.get(call_id)
                    calls[call_id] = (str(obj.get("type")), 1 if seen is None else seen[1] + 1)
                positions[tp.partition] = records[-1].offset + 1
            await consumer.commit()
            last = time.perf_counter()
            cpu_last = time.process_time()
    finally:
        await consumer.stop()
    figures.messages = sum(positions.values())
    figures.seconds = last - first if first is not None else 0.0
    figures.cpu_seconds = cpu_last - cpu_first if first is not None else 0.0
    figures.note = (
        f"{undecodable} undecodable/non-object values skipped, {len(calls)} calls in the dict"
        + (f"; {figures.note}" if figures.note else "")
    )
    return figures


# ---------------------------------------------------------------------------------------------
# (c) faust, in a subprocess


def faust_consumer(brokers: str, topic: str, total: int, timeout_s: float) -> ConsumerFigures:
    figures = ConsumerFigures("faust-streaming no-op agent")
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.faust_consumer",
        "--brokers",
        brokers,
        "--topic",
        topic,
        "--events",
        str(total),
        "--timeout",
        str(timeout_s),
        "--app-id",
        f"ringlog-bench-faust-{uuid.uuid4().hex[:12]}",
    ]
    try:
        proc = subprocess.run(
            cmd,
            cwd=REPO_ROOT,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=timeout_s + 90,
            check=False,
        )
    except subprocess.TimeoutExpired:
        figures.complete = False
        figures.note = "the Faust subprocess did not exit in time (killed); no figures"
        return figures
    line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
    if line is None:
        figures.complete = False
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        figures.note = f"no result from the Faust subprocess (exit {proc.returncode}): {tail}"
        return figures
    data = json.loads(line)
    figures.messages = int(data["seen"])
    figures.seconds = float(data["seconds"])
    figures.complete = bool(data["complete"])
    startup = data.get("startup_seconds")
    figures.note = str(data["reason"]) + (
        f"; first message {startup:.1f}s after app start" if startup is not None else ""
    )
    return figures


# ---------------------------------------------------------------------------------------------
# (d) quixstreams + ringlog core, in a subprocess


def quix_consumer(
    opts: Options, topic: str, ends: dict[int, int]
) -> tuple[QuixFigures | None, str]:
    """(d), or None and why it was skipped."""
    if opts.skip_quix:
        return None, "--skip-quix"
    if importlib.util.find_spec("quixstreams") is None:
        return None, "quixstreams is not installed (the dev extra)"
    from benchmarks.quix_peer import run_quix_peer

    say(f"(d) quixstreams + ringlog core (subprocess, cap {opts.quix_timeout:.0f}s) ...")
    quix = asyncio.run(
        run_quix_peer(
            brokers=opts.brokers,
            topic=topic,
            ends=ends,
            timeout_s=opts.quix_timeout,
            database=opts.database,
        )
    )
    say(f"  {quix.messages:,} messages durable in {quix.seconds:.2f}s = {quix.rate:,.0f}/s")
    return quix, ""


def _quix_checks(quix: QuixFigures, expected: Expected) -> dict[str, bool]:
    return {
        "(d) committed every offset": quix.complete and quix.messages == expected.messages,
        "(d) call_event rows = distinct valid events": (
            quix.rows.get("call_event") == expected.distinct_valid
        ),
        "(d) rejected_event rows = invalid messages": (
            quix.rows.get("rejected_event") == expected.invalid
        ),
        "(d) DLQ messages = invalid messages": quix.dead_letters == expected.invalid,
    }


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


# ---------------------------------------------------------------------------------------------
# (b) the worker


@dataclass
class WorkerSpec:
    brokers: str
    topic: str
    dlq_topic: str
    group_id: str
    clickhouse_url: str
    database: str
    batch_max_events: int
    ends: dict[int, int]  # --rate: unknown until everything is produced ({})
    profile: str | None = None
    rate: float | None = None  # --rate: measure latency while the events are produced
    events: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> WorkerSpec:
        data = json.loads(text)
        data["ends"] = {int(k): int(v) for k, v in data["ends"].items()}
        return cls(**data)


class _ThreadProfiles:
    """cProfile for the threads started while active (the asyncio.to_thread workers that run
    the ClickHouse calls): cProfile itself only sees the thread that enabled it."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []

    def _hook(self, frame: FrameType, event: str, arg: object) -> None:
        profile = cProfile.Profile()
        self.profiles.append(profile)
        profile.enable()  # replaces this hook for the rest of the thread's life

    def __enter__(self) -> _ThreadProfiles:
        threading.setprofile(self._hook)
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)


def timed(
    call: Callable[..., Awaitable[Any]], on_done: Callable[[float, float, Any], None]
) -> Callable[..., Awaitable[Any]]:
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        value = await call(*args, **kwargs)
        on_done(started, time.perf_counter(), value)
        return value

    return wrapper


def _time_writes(writer: PlanWriter, on_done: Callable[[float, float, Any], None]) -> None:
    """Time each plan's write from `start` (its inserts begin) to the end of its `finish`."""
    start, finish = writer.start, writer.finish
    started: dict[int, float] = {}

    def timed_start(plan: Plan) -> Writing:
        writing = start(plan)
        started[id(writing)] = time.perf_counter()
        return writing

    async def timed_finish(writing: Writing) -> None:
        await finish(writing)
        on_done(started.pop(id(writing)), time.perf_counter(), None)

    setattr(writer, "start", timed_start)  # noqa: B010
    setattr(writer, "finish", timed_finish)  # noqa: B010


EndsFeed = Callable[[], Coroutine[Any, Any, dict[int, int]]]
"""--rate: produces the events (or waits for the parent to) and returns the end offsets."""


def _recording_latencies(
    loop: ConsumeLoop, commit: Callable[[Batch], Awaitable[None]], out: list[float]
) -> Callable[[Batch], Awaitable[None]]:
    """`loop._commit`, also appending to `out` each covered record's latency: the worker's
    commit time (the same clock as its histogram) minus the record's Kafka timestamp."""

    async def wrapper(batch: Batch) -> None:
        before = loop.last_commit
        await commit(batch)
        now = loop.last_commit
        if now == before:
            return  # not committed (rejected after a rebalance, or failed): replayed later
        committed = loop.committed
        out.extend(
            now - m.timestamp / 1000
            for m in batch
            if committed.get(TopicPartition(m.topic, m.partition), 0) > m.offset
        )

    return wrapper


def _latency_figures(latencies: list[float], w: Worker) -> LatencyFigures:
    ordered = sorted(latencies)
    n = len(ordered)

    def rank(q: float) -> float:  # nearest rank: a latency some record really had
        return ordered[max(0, math.ceil(q * n) - 1)] if n else 0.0

    figures = LatencyFigures(
        records=n,
        p50=rank(0.5),
        p99=rank(0.99),
        max=ordered[-1] if n else 0.0,
        batch_max_seconds=w.loop.config.batch_max_seconds,
    )
    # The worker's own histogram of the same commits, as a cross-check.
    for family in w.metrics.registry.collect():
        if family.name != LATENCY_METRIC:
            continue
        buckets = [s for s in family.samples if s.name == LATENCY_METRIC + "_bucket"]
        figures.histogram_count = int(buckets[-1].value)
        figures.histogram_p99_le = next(
            (s.labels["le"] for s in buckets if s.value >= 0.99 * figures.histogram_count), ""
        )
    return figures


async def _joined(w: Worker, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not w.loop.joined:
        if task.done():
            task.result()
            raise RuntimeError("the worker stopped before it joined its group")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not join its group in {JOIN_TIMEOUT_S:.0f}s")
        await asyncio.sleep(POLL_S)


def worker_settings(spec: WorkerSpec, **extra: Any) -> Settings:
    """The worker's settings for `spec` (a free HTTP port); `extra` sets other fields, and
    fields left unset come from RINGLOG_* variables as for `ringlog worker`."""
    return Settings(
        kafka_brokers=spec.brokers,
        topic=spec.topic,
        dlq_topic=spec.dlq_topic,
        group_id=spec.group_id,
        clickhouse_url=spec.clickhouse_url,
        database=spec.database,
        http_port=free_port(),
        batch_max_events=spec.batch_max_events,
        log_level="WARNING",
        **extra,
    )


async def run_worker_phase(spec: WorkerSpec, feed: EndsFeed | None = None) -> WorkerFigures:
    """Run the worker (the `ringlog worker` app, in process) until every offset up to
    `spec.ends` is committed. With `feed` (--rate), the events are produced once the worker has
    joined its group, the end offsets are what `feed` returns, and each committed record's
    latency is measured."""
    figures = WorkerFigures()
    settings = worker_settings(spec)
    marks: dict[str, float] = {}

    def on_fetch(t0: float, t1: float, records: Any) -> None:
        # only fetches inside the timed window (waits before the first message don't count)
        if "first" in marks:
            figures.fetch_seconds += t1 - t0
        elif records:
            marks["first"] = t1
            marks["cpu_first"], marks["loop_cpu_first"] = time.process_time(), time.thread_time()
            marks["faults_first"], marks["loop_faults_first"] = _minor_faults()

    def on_prepare(t0: float, t1: float, _result: Any) -> None:
        figures.prepare_seconds += t1 - t0
        figures.batches += 1

    def on_write(t0: float, t1: float, _result: Any) -> None:
        figures.write_seconds += t1 - t0

    def on_commit(t0: float, t1: float, _result: Any) -> None:
        figures.commit_seconds += t1 - t0
        marks["last_commit"] = t1
        # on the event loop's thread, as on_fetch
        marks["cpu_last"], marks["loop_cpu_last"] = time.process_time(), time.thread_time()
        marks["faults_last"], marks["loop_faults_last"] = _minor_faults()

    profiler = cProfile.Profile() if spec.profile else None
    thread_profiles = _ThreadProfiles()
    with thread_profiles if profiler is not None else contextlib.nullcontext():
        if profiler is not None:
            profiler.enable()
        marks["start"] = time.perf_counter()
        # The same Faust app and lifecycle as `ringlog worker`, in this event loop.
        w, stop, task = await start_in_background(settings)
        try:
            marks["start"] = time.perf_counter()
            # Benchmark instrumentation on this instance only (the worker's code is untouched).
            consumer = w.loop.consumer
            setattr(consumer, "getmany", timed(consumer.getmany, on_fetch))  # noqa: B010
            setattr(w.preparer, "prepare", timed(w.preparer.prepare, on_prepare))  # noqa: B010
            _time_writes(w.writer, on_write)
            commit: Callable[[Batch], Awaitable[None]] = w.loop._commit
            latencies: list[float] = []
            if feed is not None:
                commit = _recording_latencies(w.loop, commit, latencies)
            setattr(w.loop, "_commit", timed(commit, on_commit))  # noqa: B010
            ends = spec.ends
            feeding: asyncio.Task[dict[int, int]] | None = None
            if feed is not None:
                # Events produced before the group join would wait for it: not the latency
                # of a running worker.
                await _joined(w, task)
                feeding = asyncio.create_task(feed(), name="bench-feed")
            deadline = time.monotonic() + PHASE_TIMEOUT_S + _produce_seconds(spec)

            def finished() -> bool:
                nonlocal ends
                if feeding is not None:
                    if not feeding.done():
                        return False
                    ends = feeding.result()  # re-raises why producing failed
                return all_committed(w, spec.topic, ends)

            while not finished():
                if task.done():
                    task.result()
                    raise RuntimeError("the worker stopped before committing everything")
                if time.monotonic() > deadline:
                    figures.complete = False
                    figures.note = f"not all committed after {PHASE_TIMEOUT_S:.0f}s"
                    break
                await asyncio.sleep(POLL_S)
            if profiler is not None:
                profiler.disable()
            if feeding is not None and not feeding.done():
                feeding.cancel()
            figures.messages = sum(
                min(off, ends.get(tp.partition, 0))
                for tp, off in w.loop.committed.items()
                if tp.topic == spec.topic
            )
            if feed is not None:
                figures.latency = _latency_figures(latencies, w)
            last = marks.get("last_commit", time.perf_counter())
            figures.seconds = last - marks.get("first", marks["start"])
            figures.seconds_from_start = last - marks["start"]
            if "cpu_first" in marks and "cpu_last" in marks:
                figures.cpu_seconds = marks["cpu_last"] - marks["cpu_first"]
                figures.loop_cpu_seconds = marks["loop_cpu_last"] - marks["loop_cpu_first"]
                figures.page_faults = int(marks["faults_last"] - marks["faults_first"])
                figures.loop_page_faults = int(
                    marks["loop_faults_last"] - marks["loop_faults_first"]
                )
            figures.rows = await asyncio.to_thread(row_counts, w)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 60)
    figures.dead_letters = sum((await topic_end_offsets(spec.brokers, spec.dlq_topic)).values())
    if profiler is not None and spec.profile:
        profiler.dump_stats(spec.profile)
        if thread_profiles.profiles:
            merged = pstats.Stats(thread_profiles.profiles[0])
            for extra in thread_profiles.profiles[1:]:
                merged.add(extra)
            merged.dump_stats(spec.profile + ".threads")
    return figures


def _produce_seconds(spec: WorkerSpec) -> float:
    """--rate: how long producing takes, on top of the phase's time limit."""
    return spec.events / spec.rate if spec.rate else 0.0


def all_committed(w: Worker, topic: str, ends: dict[int, int]) -> bool:
    committed = {tp.partition: off for tp, off in w.loop.committed.items() if tp.topic == topic}
    return all(committed.get(p, 0) >= end for p, end in ends.items() if end > 0)


def row_counts(w: Worker) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in ALL_TABLES:
        _, rows = w.store.query(f"SELECT count() FROM {table.name} FINAL")
        counts[table.name] = int(str(rows[0][0]))
    return counts


async def _worker_in_process(spec: WorkerSpec, feed: EndsFeed | None = None) -> WorkerFigures:
    sampler = RssSampler()
    sampler.start()
    try:
        figures = await run_worker_phase(spec, feed)
    finally:
        sampler.stop()
    figures.rss_baseline_kib = sampler.baseline
    figures.rss_peak_kib = sampler.peak
    figures.rss_note = (
        "in-process: VmRSS sampled every 20 ms; baseline = this process before the worker "
        + (
            "started (generation already ran; the producer runs during the worker run)"
            if feed is not None
            else "started (generation, produce and consumer (a) already ran)"
        )
        + ", peak = highest sample during the worker run, so peak - baseline is what the "
        "worker added"
    )
    return figures


def _worker_subprocess(spec: WorkerSpec) -> WorkerFigures:
    cmd = [sys.executable, "-m", "benchmarks.ingest", "--worker-child", spec.to_json()]
    proc = subprocess.run(
        cmd,
        cwd=REPO_ROOT,
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=PHASE_TIMEOUT_S + 120,
        check=False,
    )
    return _child_figures(proc.returncode, proc.stdout, proc.stderr)


def _child_figures(returncode: int, stdout: str, stderr: str) -> WorkerFigures:
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), None)
    if returncode != 0 or line is None:
        raise RuntimeError(f"worker subprocess failed (exit {returncode}):\n{stderr[-4000:]}")
    return WorkerFigures.from_json(json.loads(line))


def _worker_subprocess_at_rate(spec: WorkerSpec, produce_at_rate: EndsFeed) -> WorkerFigures:
    """--rate with the worker in a child: it says when it has joined its group, this process
    then produces and hands it the end offsets on its stdin."""
    cmd = [sys.executable, "-m", "benchmarks.ingest", "--worker-child", spec.to_json()]
    # stderr to a file: a pipe nobody reads while producing could fill and stall the child
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO_ROOT,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            while (line := proc.stdout.readline()) and line.strip() != CHILD_READY:
                pass
            if not line:  # it exited before joining
                proc.wait()
                errors.seek(0)
                return _child_figures(proc.returncode, "", errors.read())
            ends = asyncio.run(produce_at_rate())
            proc.stdin.write(json.dumps(ends) + "\n")
            proc.stdin.flush()
            stdout, _ = proc.communicate(timeout=PHASE_TIMEOUT_S + 120)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        errors.seek(0)
        return _child_figures(proc.returncode, stdout, errors.read())


async def _ends_from_parent() -> dict[int, int]:
    """The child's feed in --rate mode: say it is ready, then read the end offsets the parent
    sends once it has produced everything (a pipe read in the event loop, no thread)."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    sys.stdout.write(CHILD_READY + "\n")
    sys.stdout.flush()
    line = await reader.readline()
    if not line:
        raise RuntimeError("the parent closed stdin before sending the end offsets")
    return {int(p): int(end) for p, end in json.loads(line).items()}


def _worker_child(spec_json: str) -> None:
    """Entry point of the worker subprocess: one JSON line of WorkerFigures on stdout."""
    import logging

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    from benchmarks.timeline import spans_to_file_if_asked  # it imports this module

    spec = WorkerSpec.from_json(spec_json)
    baseline = proc_status_kib("VmRSS")
    feed = _ends_from_parent if spec.rate is not None else None
    with spans_to_file_if_asked():  # `python -m benchmarks.timeline`: the stages timed
        figures = asyncio.run(run_worker_phase(spec, feed))
    figures.rss_baseline_kib = baseline
    figures.rss_peak_kib = proc_status_kib("VmHWM")
    figures.rss_note = (
        "worker subprocess (it only runs the worker): peak = its VmHWM at the end, "
        "baseline = its VmRSS after imports, before the worker started"
    )
    data = asdict(figures)
    data["rate"] = figures.rate
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# the run


def _generate(opts: Options) -> tuple[list[Message], Expected]:
    say(f"generating {opts.events:,} events (seed {opts.seed}) ...")
    t0 = time.perf_counter()
    messages = list(generate_events(opts.events, seed=opts.seed, invalid_share=0.02, oversized=0))
    expected = expected_of(messages)
    say(
        f"  {len(messages):,} messages ({expected.invalid:,} invalid, {expected.duplicates:,} "
        f"duplicate valid) in {time.perf_counter() - t0:.1f}s"
    )
    return messages, expected


async def _create_topics(opts: Options, topic: str) -> None:
    await ensure_topic(opts.brokers, topic, partitions=opts.partitions)
    await ensure_topic(opts.brokers, topic + ".dlq", partitions=1)


async def _produced(
    opts: Options, topic: str, stats: ProduceStats, expected: Expected
) -> dict[int, int]:
    """The topic's end offsets, once every message is acknowledged and on it."""
    if stats.failed:
        raise RuntimeError(f"{stats.failed} messages not produced: {stats.errors[:3]}")
    ends = await topic_end_offsets(opts.brokers, topic)
    if sum(ends.values()) != expected.messages:
        raise RuntimeError(f"topic holds {sum(ends.values())} messages, sent {expected.messages}")
    say(
        f"produced {stats.sent:,} messages ({stats.bytes / 1e6:.1f} MB) to {topic} "
        f"({opts.partitions} partitions) at {stats.rate:,.0f} msg/s"
    )
    return ends


async def _prepare(opts: Options, topic: str) -> tuple[float, float, Expected, dict[int, int]]:
    messages, expected = _generate(opts)
    await _create_topics(opts, topic)
    stats = await produce(
        messages, brokers=opts.brokers, topic=topic, progress=opts.progress, total=len(messages)
    )
    del messages
    ends = await _produced(opts, topic, stats, expected)
    return stats.rate, stats.elapsed_s, expected, ends


def _store_url(opts: Options) -> tuple[str, str | None]:
    """The store URL and the temporary chDB directory to remove afterwards (if one)."""
    if opts.clickhouse_url is not None:
        return opts.clickhouse_url, None
    tmp_dir = tempfile.mkdtemp(prefix="ringlog-bench-chdb-")
    return f"chdb://{tmp_dir}", tmp_dir


def _worker_spec(opts: Options, topic: str, url: str, ends: dict[int, int]) -> WorkerSpec:
    return WorkerSpec(
        brokers=opts.brokers,
        topic=topic,
        dlq_topic=topic + ".dlq",
        group_id=f"ringlog-bench-worker-{uuid.uuid4().hex[:12]}",
        clickhouse_url=url,
        database=opts.database,
        batch_max_events=opts.batch_max_events,
        ends=ends,
        profile=str(opts.profile) if opts.profile is not None else None,
    )


def _worker_checks(worker: WorkerFigures, expected: Expected) -> dict[str, bool]:
    return {
        "(b) committed every offset": worker.complete and worker.messages == expected.messages,
        "call_event rows = distinct valid events": (
            worker.rows.get("call_event") == expected.distinct_valid
        ),
        "rejected_event rows = invalid messages": (
            worker.rows.get("rejected_event") == expected.invalid
        ),
        "DLQ messages = invalid messages": worker.dead_letters == expected.invalid,
    }


def run(opts: Options) -> BenchResult:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    topic = f"ringlog-bench-{stamp}-{uuid.uuid4().hex[:6]}"
    if opts.rate is not None:
        return run_at_rate(opts, topic, opts.rate)
    produce_rate, produce_s, expected, ends = asyncio.run(_prepare(opts, topic))

    say("(a) bare aiokafka consumer ...")
    bare = asyncio.run(bare_consumer(opts.brokers, topic, ends))
    say(f"  {bare.messages:,} messages in {bare.seconds:.2f}s = {bare.rate:,.0f} msg/s")

    faust: ConsumerFigures | None = None
    skipped = ""
    if opts.skip_faust:
        skipped = "--skip-faust"
    else:
        say(f"(c) faust-streaming no-op agent (subprocess, cap {opts.faust_timeout:.0f}s) ...")
        faust = faust_consumer(opts.brokers, topic, expected.messages, opts.faust_timeout)
        say(
            f"  {faust.messages:,} messages in {faust.seconds:.2f}s = {faust.rate:,.0f} msg/s "
            f"({faust.note})"
        )
    quix, quix_skipped = quix_consumer(opts, topic, ends)

    url, tmp_dir = _store_url(opts)
    spec = _worker_spec(opts, topic, url, ends)
    where = "in this process" if opts.in_process else "in a subprocess"
    say(f"(b) worker ({where}, batch_max_events={opts.batch_max_events}, store {url}) ...")
    try:
        if opts.in_process:
            worker = asyncio.run(_worker_in_process(spec))
        else:
            worker = _worker_subprocess(spec)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    say(f"  {worker.messages:,} messages durable in {worker.seconds:.2f}s = {worker.rate:,.0f}/s")
    supervised = [_supervised(opts, topic, ends, n) for n in opts.processes]

    result = BenchResult(
        command=opts.command,
        topic=topic,
        events_requested=opts.events,
        partitions=opts.partitions,
        batch_max_events=opts.batch_max_events,
        produce_rate=produce_rate,
        produce_seconds=produce_s,
        expected=expected,
        bare=bare,
        worker=worker,
        faust=faust,
        faust_skipped_reason=skipped,
        quix=quix,
        quix_skipped_reason=quix_skipped,
        supervised=supervised,
    )
    result.checks = {
        "(a) read every message": bare.complete and bare.messages == expected.messages,
        **_worker_checks(worker, expected),
    }
    if faust is not None:
        result.checks["(c) read every message"] = faust.complete
    if quix is not None:
        result.checks.update(_quix_checks(quix, expected))
    for fig in supervised:
        result.checks[f"(b) --processes {fig.processes}: committed every offset"] = (
            fig.complete and fig.messages == expected.messages
        )
        result.checks[f"(b) --processes {fig.processes}: call_event rows"] = (
            fig.rows.get("call_event") == expected.distinct_valid
        )
    if opts.profile is not None:
        result.profile = profile_report(opts.profile)
    return result


def _supervised(opts: Options, topic: str, ends: dict[int, int], n: int) -> SupervisedFigures:
    """`ringlog worker --processes n` on the same topic, into a store of its own."""
    tmp_dir: str | None = None
    url = opts.clickhouse_url
    if url is None or url.startswith("chdb:"):
        tmp_dir = tempfile.mkdtemp(prefix=f"ringlog-bench-p{n}-")
        url = f"chdb://{tmp_dir}"
    say(f"(b) ringlog worker --processes {n} (the command, in a subprocess; store {url}) ...")
    try:
        asyncio.run(ensure_topic(opts.brokers, f"{topic}.dlq.p{n}", partitions=1))
        figures = asyncio.run(
            run_supervised(
                brokers=opts.brokers,
                topic=topic,
                ends=ends,
                processes=n,
                clickhouse_url=url,
                database=opts.database,
                batch_max_events=opts.batch_max_events,
            )
        )
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    say(
        f"  {figures.messages:,} messages durable in {figures.seconds:.2f}s = {figures.rate:,.0f}/s"
    )
    return figures


def run_at_rate(opts: Options, topic: str, rate: float) -> BenchResult:
    """--rate: the worker consumes while the events are produced at `rate` per second; the
    result carries each committed record's timestamp-to-commit latency (worker.latency)."""
    messages, expected = _generate(opts)
    asyncio.run(_create_topics(opts, topic))
    url, tmp_dir = _store_url(opts)
    spec = _worker_spec(opts, topic, url, ends={})
    spec.rate, spec.events = rate, len(messages)
    produced: list[ProduceStats] = []

    async def produce_at_rate() -> dict[int, int]:
        say(f"  worker joined its group; producing {len(messages):,} events at {rate:,.0f}/s")
        stats = await produce(
            messages,
            brokers=opts.brokers,
            topic=topic,
            rate=rate,
            progress=opts.progress,
            total=len(messages),
            chunk=max(1, round(rate * RATE_TICK_S)),  # small bursts, every 10 ms
        )
        produced.append(stats)
        return await _produced(opts, topic, stats, expected)

    where = "in this process" if opts.in_process else "in a subprocess"
    say(
        f"(b) worker ({where}, batch_max_events={opts.batch_max_events}, store {url}), "
        f"events produced at {rate:,.0f}/s while it consumes ..."
    )
    try:
        if opts.in_process:
            worker = asyncio.run(_worker_in_process(spec, produce_at_rate))
        else:
            worker = _worker_subprocess_at_rate(spec, produce_at_rate)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    stats = produced[0]
    latency = worker.latency or LatencyFigures()
    worker.latency = latency
    latency.target_rate, latency.produced_rate = rate, stats.rate
    say(f"  {worker.messages:,} messages durable in {worker.seconds:.2f}s = {worker.rate:,.0f}/s")

    result = BenchResult(
        command=opts.command,
        topic=topic,
        events_requested=opts.events,
        partitions=opts.partitions,
        batch_max_events=opts.batch_max_events,
        produce_rate=stats.rate,
        produce_seconds=stats.elapsed_s,
        expected=expected,
        bare=None,
        worker=worker,
        faust=None,
        faust_skipped_reason="--rate",
        quix_skipped_reason="--rate",
    )
    result.checks = {
        **_worker_checks(worker, expected),
        "latency measured for every record": latency.records == expected.messages,
        "worker histogram observed every record": latency.histogram_count == expected.messages,
    }
    if opts.profile is not None:
        result.profile = profile_report(opts.profile)
    return result


# ---------------------------------------------------------------------------------------------
# output


def profile_report(path: Path, top: int = 15) -> str:
    out = io.StringIO()
    for label, file in (
        ("event-loop thread (decode, correlation, Kafka)", path),
        ("to_thread workers (ClickHouse load/insert)", Path(str(path) + ".threads")),
    ):
        if not file.exists():
            continue
        out.write(f"\n=== profile: {label}: top {top} by cumulative time ({file}) ===\n")
        stats = pstats.Stats(str(file), stream=out)
        stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def _rate_row(
    name: str,
    fig: ConsumerFigures | WorkerFigures | SupervisedFigures | QuixFigures | None,
    ratio: str,
) -> str:
    if fig is None:
        return f"{name:<45} {'-':>10} {'-':>9} {'-':>11} {ratio:>8}"
    flag = "" if fig.complete else "  (partial)"
    return f"{name:<45} {fig.messages:>10,} {fig.seconds:>9.2f} {fig.rate:>11,.0f} {ratio:>8}{flag}"


def summary(result: BenchResult) -> str:
    w = result.worker
    lines = [
        "",
        "=" * 90,
        f"ringlog ingest benchmark: {result.expected.messages:,} messages, "
        f"{result.partitions} partitions, batch_max_events={result.batch_max_events}",
        f"topic {result.topic}; produced at {result.produce_rate:,.0f} msg/s",
        "",
        f"{'consumer':<45} {'messages':>10} {'seconds':>9} {'events/s':>11} {'vs (a)':>8}",
    ]
    if result.bare is not None:
        lines += [
            _rate_row("(a) bare aiokafka getmany+orjson+dict+commit", result.bare, "1.00"),
            _rate_row("(b) worker, until durable in ClickHouse", w, f"{result.worker_ratio:.3f}"),
        ]
    else:
        lines += [
            _rate_row("(a) bare aiokafka: skipped (--rate)", None, "-"),
            _rate_row("(b) worker, until durable in ClickHouse", w, "-"),
        ]
    for fig in result.supervised:
        share = fig.rate / result.bare.rate if result.bare is not None and result.bare.rate else 0
        lines.append(
            _rate_row(f"(b) ringlog worker --processes {fig.processes}", fig, f"{share:.3f}")
        )
    if result.faust is not None:
        ratio = result.faust_ratio
        lines.append(
            _rate_row(
                "(c) faust-streaming no-op agent", result.faust, f"{ratio:.3f}" if ratio else "-"
            )
        )
    else:
        lines.append(_rate_row(f"(c) faust: skipped ({result.faust_skipped_reason})", None, "-"))
    if result.quix is not None:
        ratio = result.quix_ratio
        lines.append(
            _rate_row(
                "(d) quixstreams + ringlog core, until durable",
                result.quix,
                f"{ratio:.3f}" if ratio else "-",
            )
        )
    else:
        lines.append(
            _rate_row(f"(d) quixstreams: skipped ({result.quix_skipped_reason})", None, "-")
        )
    lines.append("")
    if result.bare is not None:
        lines.append(f"(a) {result.bare.note}")
    if result.faust is not None:
        lines.append(f"(c) {result.faust.note}")
    if result.quix is not None:
        q = result.quix
        lines += [
            f"(d) {q.describe()}",
            "    rows (count() FINAL): "
            + ", ".join(f"{t}={n:,}" for t, n in sorted(q.rows.items()))
            + f"; dead letters on {q.dlq_topic}: {q.dead_letters:,}",
        ]
    busy = w.fetch_seconds + w.prepare_seconds + w.write_seconds + w.commit_seconds
    lines += [
        f"(b) {w.batches} batches (mean {w.messages / max(1, w.batches):,.0f} messages); "
        f"{w.seconds_from_start:.2f}s from consumer start incl. group join",
        f"    time split: fetch {w.fetch_seconds:.2f}s, prepare {w.prepare_seconds:.2f}s, "
        f"write {w.write_seconds:.2f}s (overlaps the next prepare), "
        f"commit {w.commit_seconds:.2f}s (sum {busy:.2f}s)",
        f"    peak RSS {w.rss_peak_kib / 1024:,.0f} MiB, baseline {w.rss_baseline_kib / 1024:,.0f}"
        f" MiB, delta {(w.rss_peak_kib - w.rss_baseline_kib) / 1024:,.0f} MiB",
        f"    ({w.rss_note})",
    ]
    lines += _cpu_lines(result.bare, w)
    if w.note:
        lines.append(f"    note: {w.note}")
    for fig in result.supervised:
        lines.append(
            f"(b) --processes {fig.processes}: {fig.steady_messages:,} messages committed from "
            f"every worker in the group to the end ({fig.seconds:.2f}s; "
            f"{fig.seconds_from_first_assignment:.2f}s from the first assignment, start-up "
            f"rebalances included); peak RSS {fig.rss_peak_kib / 1024:,.0f} MiB "
            "(supervisor + workers)" + (f"; note: {fig.note}" if fig.note else "")
        )
    if w.latency is not None:
        lines += _latency_lines(w.latency)
    exp = result.expected
    lines += [
        "",
        f"generated: {exp.messages:,} messages = {exp.distinct_valid:,} distinct valid + "
        f"{exp.duplicates:,} duplicates + {exp.invalid:,} invalid",
        "rows per table (count() FINAL): "
        + ", ".join(f"{t}={n:,}" for t, n in sorted(w.rows.items())),
        f"dead letters on {result.topic}.dlq: {w.dead_letters:,}",
        *report_footer(result.checks, result.command),
    ]
    return "\n".join(lines)


def _cpu_lines(bare: ConsumerFigures | None, w: WorkerFigures) -> list[str]:
    """CPU per message of (b) and (a): a busy host slows the rates more than it adds CPU."""
    if w.cpu_seconds <= 0 or w.loop_cpu_seconds <= 0 or w.messages <= 0:
        return []
    per = 1e6 / w.messages
    line = (
        f"    CPU per message: {w.cpu_seconds * per:.1f} us in the worker's process, "
        f"{w.loop_cpu_seconds * per:.1f} us of it on the event loop's thread (the rest: the "
        "writer's threads and the embedded ClickHouse; the broker is not counted)"
    )
    faults = (
        f"    page faults per message: {w.page_faults / w.messages:.2f} in the worker's process, "
        f"{w.loop_page_faults / w.messages:.2f} on the event loop's thread"
    )
    if bare is None or bare.cpu_seconds <= 0 or bare.messages <= 0:
        return [line, faults]
    bare_us = bare.cpu_seconds * 1e6 / bare.messages
    return [
        line,
        faults,
        f"    (a) {bare_us:.1f} us per message: (a)/(b) CPU per message "
        f"{bare_us / (w.cpu_seconds * per):.3f}, against (b)'s event loop thread "
        f"{bare_us / (w.loop_cpu_seconds * per):.3f}",
    ]


def _minor_faults() -> tuple[int, int]:
    """Minor page faults so far: this process's, the calling thread's."""
    return (
        resource.getrusage(resource.RUSAGE_SELF).ru_minflt,
        resource.getrusage(resource.RUSAGE_THREAD).ru_minflt,
    )


def report_footer(checks: Mapping[str, bool], command: str) -> list[str]:
    """The last lines of a benchmark's report: its checks, then the command that made it."""
    verdicts = ", ".join(f"{name}: {'ok' if ok else 'FAILED'}" for name, ok in checks.items())
    return [f"checks: {verdicts}", "", f"command: {command}", "=" * 96]


def _latency_lines(lat: LatencyFigures) -> list[str]:
    verdict = "met" if lat.within_goal else "NOT met"
    return [
        "",
        f"event -> durable latency (Kafka record timestamp -> the worker's commit covering it), "
        f"{lat.records:,} records produced at {lat.produced_rate:,.0f}/s "
        f"(asked {lat.target_rate:,.0f}/s):",
        f"    p50 {lat.p50:.3f} s   p99 {lat.p99:.3f} s   max {lat.max:.3f} s",
        f"    batch time bound (batch_max_seconds) {lat.batch_max_seconds:g} s; "
        f"goal p99 <= {lat.goal_seconds:g} s (bound + {LATENCY_GOAL_MARGIN_S:g} s): {verdict}",
        f"    worker histogram {LATENCY_METRIC}: {lat.histogram_count:,} observations, "
        f"p99 in the bucket le={lat.histogram_p99_le}",
    ]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.ingest",
        description="Kafka ingestion benchmark: bare aiokafka vs the ringlog worker vs Faust "
        "vs quixstreams.",
    )
    p.add_argument(
        "--events", type=_positive(int), default=200_000, help="events to generate (200000)"
    )
    p.add_argument(
        "--partitions", type=_positive(int), default=4, help="partitions of the fresh topic"
    )
    p.add_argument("--brokers", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    p.add_argument(
        "--batch-max-events",
        type=_positive(int),
        default=DEFAULT_BATCH_MAX_EVENTS,
        help=f"worker batch size ({DEFAULT_BATCH_MAX_EVENTS})",
    )
    p.add_argument("--seed", type=int, default=1, help="traffic generator seed")
    p.add_argument("--skip-faust", action="store_true", help="do not run consumer (c)")
    p.add_argument(
        "--faust-timeout", type=_positive(float), default=FAUST_TIMEOUT_S, help="cap for (c), s"
    )
    p.add_argument("--skip-quix", action="store_true", help="do not run consumer (d)")
    p.add_argument(
        "--quix-timeout", type=_positive(float), default=QUIX_TIMEOUT_S, help="cap for (d), s"
    )
    p.add_argument("--json", action="store_true", help="also print the result as a JSON line")
    p.add_argument("--clickhouse-url", default=None, help="store URL (default: fresh chDB dir)")
    p.add_argument("--database", default="bench", help="ClickHouse database (bench)")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the worker in this process (default: a subprocess, for an honest peak RSS)",
    )
    p.add_argument("--profile", type=Path, default=None, help="cProfile the worker run to PATH")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while producing")
    p.add_argument(
        "--processes",
        default="2",
        help="also run `ringlog worker --processes N` for each N of this comma list, on the "
        "same topic, each into a fresh store ('' for none; default 2)",
    )
    p.add_argument(
        "--rate",
        type=_positive(float),
        default=None,
        help="latency mode: produce at RATE events/s while the worker consumes, then print "
        "p50/p99/max event-to-durable latency ((a) and (c) do not run)",
    )
    p.add_argument("--worker-child", default=None, help=argparse.SUPPRESS)
    return p


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type: `kind` of the text, refused unless above 0."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: must be above 0")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


def _process_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        _parser().error(f"--processes {text!r}: a comma list of process counts, e.g. 1,2")
    if any(not 1 <= n <= 64 for n in counts):
        _parser().error(f"--processes {text!r}: each count must be 1-64")
    return counts


def main(
    argv: Sequence[str] | None = None,
    *,
    clickhouse_url: str | None = None,
    database: str | None = None,
) -> BenchResult | None:
    """Run the benchmark; `clickhouse_url`/`database` override the flags (for tests, which
    must share the session's chDB path). Returns the result (None in the worker child)."""
    args = _parser().parse_args(argv)
    if args.worker_child is not None:
        _worker_child(args.worker_child)
        return None
    shown = list(sys.argv[1:] if argv is None else argv)
    opts = Options(
        events=args.events,
        partitions=args.partitions,
        brokers=args.brokers,
        batch_max_events=args.batch_max_events,
        seed=args.seed,
        skip_faust=args.skip_faust,
        faust_timeout=args.faust_timeout,
        skip_quix=args.skip_quix,
        quix_timeout=args.quix_timeout,
        json=args.json,
        clickhouse_url=clickhouse_url if clickhouse_url is not None else args.clickhouse_url,
        database=database if database is not None else args.database,
        in_process=args.in_process,
        profile=args.profile,
        progress=not args.no_progress,
        rate=args.rate,
        command=shlex.join(["python", "-m", "benchmarks.ingest", *shown]),
        processes=_process_counts(args.processes),
    )
    result = run(opts)
    say(summary(result))
    if result.profile:
        say(result.profile)
    if opts.json:
        say(json.dumps(result.to_json()))
    return result


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if outcome is None or outcome.accounted_for else 1)
