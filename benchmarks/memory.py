"""Memory of the call cache (issue 12, item 5): the worker's RSS per cached open call, and its
throughput once the open calls outgrow the cache.

    python -m benchmarks.memory --brokers 127.0.0.1:9092          # 10k, 100k and 1M calls
    python -m benchmarks.memory --calls 10000,100000 --json       # choose the sizes

The workload: N open calls of three events each (incoming_call.received,
incoming_call.dial_started, incoming_call.dial_ringing; no dial_ended or ended, so every call
stays open), valid per the contract and keyed by call_id, produced phase by phase: every
call's `received`, then every call's `dial_started`, then every `dial_ringing`. A call's later
events therefore come N calls after its earlier ones.

1. Memory, for each N of --calls: the worker runs as `ringlog worker` runs it (the Faust app
   and lifecycle, `start_in_background`) in a child process of its own, with
   RINGLOG_CACHE_MAX_CALLS = N (every call fits), a fresh topic and a fresh chDB store. Once it
   has joined the group and idles on the still empty topic, its VmRSS is the baseline; its
   fetches are then held while this process produces the 3N events, released, and the run
   ends when every offset is committed. Printed: (VmRSS - baseline) / N and
   (VmHWM - baseline) / N, the worker's memory per cached open call, and where the growth went
   (anonymous or file-backed pages, chDB's tracked memory, what gc + malloc_trim return).
2. Past the cache: the same workload of --evict-calls calls with a cache of --evict-cache
   calls, so a call's later events arrive after it was evicted and it is reloaded from
   call_event; events/s against the same workload when every call fits, with the evictions
   and reloads counted.
3. Breakdown, in this process without Kafka or ClickHouse: the worker's planner decodes and
   plans --breakdown-calls calls; tracemalloc measures what the cache holds per call, and a
   sys.getsizeof walk of one cached call splits it into its parts (each event's packed entry
   and its field values, beside the ValidEvent, model and __dict__ the entry stands for).

Each run is checked: every offset committed, call_event = 3N rows, incoming_call_log and
incoming_call_log_item = N rows, nothing rejected, every call cached and open when it fits.
Exit status 1 if a check fails. 1M calls takes several minutes and a few GiB in the child.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import itertools
import json
import logging
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from benchmarks.ingest import (
    DEFAULT_BATCH_MAX_EVENTS,
    POLL_S,
    REPO_ROOT,
    WorkerSpec,
    all_committed,
    child_env,
    proc_status_kib,
    row_counts,
    say,
    timed,
    worker_settings,
)
from devtools.kafka_local import topic_end_offsets
from devtools.planner_load import as_records
from devtools.producer import ensure_topic, produce
from devtools.traffic import Message
from worker.core.batch_plan import BatchPlanner
from worker.core.decode import ValidEvent
from worker.core.rates import load_rate_plan
from worker.service.faust_host import start_in_background
from worker.service.lifecycle import Worker

DEFAULT_CALLS = (10_000, 100_000, 1_000_000)
EVENTS_PER_CALL = 3
GOAL_BYTES_PER_CALL = 1024  # issue 12: <= 1 KiB per cached open call
PHASE_TIMEOUT_S = 1800.0  # a worker run gives up after this long (1M calls takes minutes)
JOIN_TIMEOUT_S = 60.0
IDLE_S = 1.0  # the worker idles this long (joined, fetches held) before its baseline
PROGRESS_EVERY_S = 5.0

# The workload's constant ids: one project, policy, escalation rule and user (a real project
# has few of each; the per-call ids below are unique).
PROJECT_ID = "6f1d3c2a-8b4e-4d5f-9a6b-7c8d9e0f1a2b"
POLICY_ID = "49eb0d00-e6c9-411a-ad60-6a82ab5e7b10"
RULE_ID = "b91148e8-f7a0-4efe-ad29-c39aa50fccb1"
USER_ID = "1e2a2c05-b127-413f-be0b-3177a247e4e1"
T0 = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# the workload


def _stamp(ms: int) -> str:
    return (
        (T0 + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def open_call_messages(calls: int, run: int) -> Iterator[Message]:
    """The 3 * `calls` messages of the workload, phase by phase (see the module docstring).

    Call i starts at T0 + i ms (1M calls span 17 minutes of event time, far from the 4 h call
    timeout); its dial starts 1 s later and rings 0.5 s after that. `run` (32 bits) makes the
    ids of one workload unique. Ids have the size of the UUIDs real producers send.
    """
    head = f"{run:08x}"
    for phase in range(EVENTS_PER_CALL):
        for i in range(calls):
            call_id = f"{head}-0000-4000-8000-{i:012x}"
            event: dict[str, Any] = {
                "event_id": f"{head}-{phase + 1:04x}-4000-a000-{i:012x}",
                "occurred_at": _stamp(i + (0, 1000, 1500)[phase]),
                "sequence": phase,
                "project_id": PROJECT_ID,
                "call_id": call_id,
                "source": "pbx",
            }
            if phase == 0:
                event["type"] = "incoming_call.received"
                event["incoming_call_policy_id"] = POLICY_ID
                event["caller_phone_number"] = f"+447700{i % 1_000_000:06d}"
                event["routing_phone_number"] = "+15550100"
            elif phase == 1:
                event["type"] = "incoming_call.dial_started"
                event["dial_id"] = f"{call_id}-1"
                event["user_id"] = USER_ID
                event["user_phone_number"] = "+15550111"
                event["escalation_rule_id"] = RULE_ID
                event["escalation_rule_order"] = 1
                event["repeat_count"] = 0
            else:
                event["type"] = "incoming_call.dial_ringing"
                event["dial_id"] = f"{call_id}-1"
            yield Message(call_id.encode(), orjson.dumps(event), call_id, True)


# ---------------------------------------------------------------------------------------------
# results


@dataclass
class RunFigures:
    """One worker run over the workload (`calls` open calls, a cache of `cache_max_calls`)."""

    label: str
    calls: int
    cache_max_calls: int
    events: int = 0  # produced: 3 per call
    topic: str = ""
    produce_rate: float = 0.0
    committed: int = 0  # offsets committed = events durable in ClickHouse
    seconds: float = 0.0  # first fetched message -> the commit covering the end offsets
    complete: bool = True
    rss_baseline_kib: int = 0  # VmRSS after start-up, idle, before consuming
    hwm_baseline_kib: int = 0  # VmHWM then (the start-up peak)
    rss_after_kib: int = 0  # VmRSS once every offset is committed
    hwm_after_kib: int = 0  # VmHWM then
    # VmRSS split in anonymous memory (heaps: Python's, glibc's, chDB's) and file-backed pages
    # (mapped libraries and store files), at the baseline and after
    anon_baseline_kib: int = 0
    file_baseline_kib: int = 0
    anon_after_kib: int = 0
    file_after_kib: int = 0
    # VmRSS after that, once gc.collect() and glibc's malloc_trim(0) ran: what of `after` is
    # garbage or free heap the allocators kept (0: not measured, no glibc)
    rss_trimmed_kib: int = 0
    # chDB's own MemoryTracking (ClickHouse's allocations in this process), when the store
    # is embedded (0 otherwise): how much of the growth is chDB's
    chdb_baseline_bytes: int = 0
    chdb_after_bytes: int = 0
    cached_calls: int = 0  # len(cache) at the end
    open_calls: int = 0  # cached calls without an end event at the end
    evictions: int = 0  # CallCache.evictions
    lookups: int = 0  # calls not cached when their event came: looked up in call_event
    reloaded_calls: int = 0  # of those, calls with stored events (evicted, then reloaded)
    reloaded_events: int = 0  # stored rows read back for them
    reload_queries: int = 0
    reload_seconds: float = 0.0  # inside load_call_events (a worker thread)
    rows: dict[str, int] = field(default_factory=dict)  # table -> count() FINAL
    dead_letters: int = 0
    rss_note: str = ""
    note: str = ""

    @property
    def rate(self) -> float:
        return self.committed / self.seconds if self.seconds > 0 else 0.0

    @property
    def rss_per_call(self) -> float:
        """Bytes of VmRSS above the idle baseline per call, once everything is committed."""
        return (self.rss_after_kib - self.rss_baseline_kib) * 1024 / max(1, self.calls)

    @property
    def hwm_per_call(self) -> float:
        return (self.hwm_after_kib - self.rss_baseline_kib) * 1024 / max(1, self.calls)

    def checks(self) -> dict[str, bool]:
        n = self.calls
        checks = {
            "every offset committed": self.complete and self.committed == self.events,
            "call_event = 3 rows per call": self.rows.get("call_event") == EVENTS_PER_CALL * n,
            "incoming_call_log = 1 row per call": self.rows.get("incoming_call_log") == n,
            "incoming_call_log_item = 1 row per call": (
                self.rows.get("incoming_call_log_item") == n
            ),
            "nothing rejected": self.rows.get("rejected_event") == 0 and self.dead_letters == 0,
        }
        if self.cache_max_calls >= n:
            checks["every call cached and open"] = self.cached_calls == self.open_calls == n
            checks["no eviction"] = self.evictions == 0
        else:
            checks["calls evicted and reloaded"] = self.evictions > 0 and self.reloaded_calls > 0
        return checks

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rate"] = self.rate
        data["rss_per_call_bytes"] = self.rss_per_call
        data["hwm_per_call_bytes"] = self.hwm_per_call
        data["checks"] = self.checks()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunFigures:
        for derived in ("rate", "rss_per_call_bytes", "hwm_per_call_bytes", "checks"):
            data.pop(derived, None)
        return cls(**data)


@dataclass
class EventParts:
    """One event of the measured call, as the decoder made it (for comparison: the cache
    keeps it packed)."""

    type: str
    fields: int  # set in the event
    as_decoded: int  # its ValidEvent, pydantic model, __dict__ and field values (B)
    payload_bytes: int  # its JSON as a bytes object (B)


@dataclass
class Breakdown:
    calls: int
    traced_per_call: float  # tracemalloc: bytes held after the run, per call
    events: list[EventParts]
    call_state: int  # sys.getsizeof(CallState) (a slotted dataclass)
    packed: int  # sys.getsizeof of the call's packed events (one bytes object)
    key: int  # the cache key: its tuple and call_id string (project_id is shared)

    @property
    def walked(self) -> int:
        return self.call_state + self.packed + self.key

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["walked_per_call"] = self.walked
        data["unwalked_per_call"] = self.traced_per_call - self.walked
        return data


@dataclass
class MemoryResult:
    command: str
    partitions: int
    batch_max_events: int
    runs: list[RunFigures] = field(default_factory=list)
    evict_calls: int = 0
    evict_cache: int = 0
    evict_run: RunFigures | None = None
    fits_run: RunFigures | None = None
    breakdown: Breakdown | None = None

    @property
    def all_runs(self) -> list[RunFigures]:
        extra = [r for r in (self.fits_run, self.evict_run) if r is not None]
        return self.runs + [r for r in extra if all(r is not x for x in self.runs)]

    @property
    def ok(self) -> bool:
        return all(all(r.checks().values()) for r in self.all_runs)

    def slopes(self) -> list[dict[str, Any]]:
        """RSS growth per added call between consecutive sizes of the memory runs."""
        runs = sorted(self.runs, key=lambda r: r.calls)
        out: list[dict[str, Any]] = []
        for smaller, larger in itertools.pairwise(runs):
            slope = marginal_per_call(smaller, larger)
            if slope is not None:
                out.append({"from": smaller.calls, "to": larger.calls, "bytes_per_call": slope})
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "command": self.command,
            "partitions": self.partitions,
            "batch_max_events": self.batch_max_events,
            "goal_bytes_per_call": GOAL_BYTES_PER_CALL,
            "memory_runs": [r.to_json() for r in self.runs],
            "memory_slopes": self.slopes(),
            "evict_calls": self.evict_calls,
            "evict_cache": self.evict_cache,
            "fits_run": self.fits_run.to_json() if self.fits_run is not None else None,
            "evict_run": self.evict_run.to_json() if self.evict_run is not None else None,
            "evict_over_fits_rate": _ratio(self.evict_run, self.fits_run),
            "breakdown": self.breakdown.to_json() if self.breakdown is not None else None,
            "ok": self.ok,
        }


def _ratio(a: RunFigures | None, b: RunFigures | None) -> float | None:
    if a is None or b is None or b.rate <= 0:
        return None
    return a.rate / b.rate


# ---------------------------------------------------------------------------------------------
# one worker run (in the child process, or in this one with --in-process)


@dataclass
class RunSpec:
    worker: WorkerSpec  # `ends` is filled in once the workload is produced
    label: str
    calls: int
    cache_max_calls: int
    timeout_s: float = PHASE_TIMEOUT_S

    def to_json(self) -> str:
        data = asdict(self)
        data["worker"] = asdict(self.worker)
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        data = json.loads(text)
        data["worker"] = WorkerSpec.from_json(json.dumps(data["worker"]))
        return cls(**data)


Feed = Callable[[RunFigures], Awaitable[dict[int, int]]]
"""Produces the workload once the worker idles (told its baseline); returns the end offsets."""


async def worker_run(spec: RunSpec, feed: Feed, progress: Callable[[str], None]) -> RunFigures:
    """Start the worker on the empty topic, take its idle baseline, hold its fetches while
    `feed` produces the workload, then run it until every offset is committed."""
    figures = RunFigures(spec.label, spec.calls, spec.cache_max_calls)
    settings = worker_settings(spec.worker, cache_max_calls=spec.cache_max_calls)
    w, stop, task = await start_in_background(settings)
    try:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        while not (w.loop.joined and w.loop.consumer.assignment()):
            if task.done() or time.monotonic() > deadline:
                raise RuntimeError("the worker did not join its group")
            await asyncio.sleep(POLL_S)

        # Benchmark instrumentation on this instance only (the worker's code is untouched).
        marks: dict[str, float] = {}
        gate, held = asyncio.Event(), asyncio.Event()
        consumer = w.loop.consumer
        fetch = consumer.getmany

        async def gated_getmany(timeout_ms: int, max_records: int) -> Any:
            if not gate.is_set():
                held.set()
                await gate.wait()
            records = await fetch(timeout_ms=timeout_ms, max_records=max_records)
            if records and "first" not in marks:
                marks["first"] = time.perf_counter()
            return records

        setattr(consumer, "getmany", gated_getmany)  # noqa: B010
        await asyncio.wait_for(held.wait(), JOIN_TIMEOUT_S)  # no fetch of the original left
        await asyncio.sleep(IDLE_S)
        (
            figures.rss_baseline_kib,
            figures.hwm_baseline_kib,
            figures.anon_baseline_kib,
            figures.file_baseline_kib,
        ) = _memory_status()
        figures.chdb_baseline_bytes = await asyncio.to_thread(chdb_memory, w)
        progress(
            f"  worker idle: VmRSS {figures.rss_baseline_kib / 1024:,.0f} MiB "
            f"(start-up peak {figures.hwm_baseline_kib / 1024:,.0f} MiB); producing ..."
        )
        ends = await feed(figures)
        spec.worker.ends = ends
        figures.events = sum(ends.values())

        load = w.preparer.store.load_call_events

        def counted_load(keys: Sequence[tuple[str, str]]) -> Any:
            started = time.perf_counter()
            stored = load(keys)
            figures.reload_seconds += time.perf_counter() - started
            figures.reload_queries += 1
            figures.lookups += len(keys)
            figures.reloaded_calls += len({(project, call) for project, call, *_ in stored})
            figures.reloaded_events += len(stored)
            return stored

        def on_commit(t0: float, t1: float, _result: Any) -> None:
            marks["last_commit"] = t1

        setattr(w.preparer.store, "load_call_events", counted_load)  # noqa: B010
        setattr(w.loop, "_commit", timed(w.loop._commit, on_commit))  # noqa: B010
        started = time.perf_counter()
        gate.set()
        deadline = time.monotonic() + spec.timeout_s
        next_report = time.monotonic() + PROGRESS_EVERY_S
        while not all_committed(w, spec.worker.topic, spec.worker.ends):
            if task.done():
                task.result()
                raise RuntimeError("the worker stopped before committing everything")
            now = time.monotonic()
            if now > deadline:
                figures.complete = False
                figures.note = f"not all committed after {spec.timeout_s:.0f}s"
                break
            if now >= next_report:
                next_report = now + PROGRESS_EVERY_S
                done = _committed(w, spec.worker)
                elapsed = time.perf_counter() - started
                progress(
                    f"  {spec.label}: {done:,}/{figures.events:,} events committed "
                    f"({done / max(1, figures.events):.0%}, {done / elapsed:,.0f}/s), "
                    f"{len(w.preparer.cache):,} calls cached, "
                    f"{w.preparer.cache.evictions:,} evictions, "
                    f"VmRSS {proc_status_kib('VmRSS') / 1024:,.0f} MiB"
                )
            await asyncio.sleep(POLL_S)
        (
            figures.rss_after_kib,
            figures.hwm_after_kib,
            figures.anon_after_kib,
            figures.file_after_kib,
        ) = _memory_status()
        figures.chdb_after_bytes = await asyncio.to_thread(chdb_memory, w)
        figures.rss_trimmed_kib = rss_after_trim()
        figures.committed = _committed(w, spec.worker)
        last = marks.get("last_commit", time.perf_counter())
        figures.seconds = last - marks.get("first", started)
        cache = w.preparer.cache
        figures.cached_calls = len(cache)
        figures.open_calls = cache.open_count()
        figures.evictions = cache.evictions
        progress(f"  {spec.label}: all committed; counting rows ...")
        figures.rows = await asyncio.to_thread(row_counts, w)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 60)
    figures.dead_letters = sum(
        (await topic_end_offsets(spec.worker.brokers, spec.worker.dlq_topic)).values()
    )
    return figures


def chdb_memory(w: Worker) -> int:
    """Bytes ClickHouse tracks as allocated in this process (embedded chDB store only)."""
    if not w.settings.clickhouse_url.startswith("chdb:"):
        return 0
    _, rows = w.store.query("SELECT value FROM system.metrics WHERE metric = 'MemoryTracking'")
    return int(str(rows[0][0])) if rows else 0


def _memory_status() -> tuple[int, int, int, int]:
    """VmRSS, VmHWM, RssAnon and RssFile of this process, KiB."""
    return (
        proc_status_kib("VmRSS"),
        proc_status_kib("VmHWM"),
        proc_status_kib("RssAnon"),
        proc_status_kib("RssFile"),
    )


def rss_after_trim() -> int:
    """VmRSS once the garbage is collected and glibc returned its free heap (0: no glibc)."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return 0
    libc.malloc_trim(0)
    return proc_status_kib("VmRSS")


def _committed(w: Worker, spec: WorkerSpec) -> int:
    return sum(
        min(off, spec.ends.get(tp.partition, 0))
        for tp, off in w.loop.committed.items()
        if tp.topic == spec.topic
    )


def _worker_child(spec_json: str) -> None:
    """Entry point of the worker subprocess. Protocol on stdout: `READY <figures>` once the
    worker idles, then (after the parent wrote the end offsets as a JSON line on stdin) one
    JSON line of RunFigures. Progress goes to stderr."""
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    spec = RunSpec.from_json(spec_json)

    async def feed(figures: RunFigures) -> dict[int, int]:
        sys.stdout.write("READY " + json.dumps(figures.to_json()) + "\n")
        sys.stdout.flush()
        line = await asyncio.to_thread(sys.stdin.readline)
        if not line.strip():
            raise RuntimeError("the parent gave no end offsets")
        return {int(k): int(v) for k, v in json.loads(line).items()}

    def progress(text: str) -> None:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()

    figures = asyncio.run(worker_run(spec, feed, progress))
    figures.rss_note = (
        "worker subprocess (it only runs the worker): baseline = its VmRSS after start-up, "
        "joined and idle before consuming; after = VmRSS and VmHWM once every offset is "
        "committed"
    )
    sys.stdout.write(json.dumps(figures.to_json()) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# the runs (this process)


@dataclass
class Options:
    calls: tuple[int, ...] = DEFAULT_CALLS
    evict_calls: int = 100_000
    evict_cache: int = 20_000
    breakdown_calls: int = 5_000
    partitions: int = 4
    brokers: str = "127.0.0.1:9092"
    batch_max_events: int = DEFAULT_BATCH_MAX_EVENTS
    timeout: float = PHASE_TIMEOUT_S
    json: bool = False
    clickhouse_url: str | None = None  # None: a fresh temporary chDB directory per run
    database: str = "bench"
    in_process: bool = False
    progress: bool = True
    command: str = ""


async def _produce_workload(opts: Options, topic: str, calls: int) -> tuple[float, dict[int, int]]:
    total = EVENTS_PER_CALL * calls
    say(f"  producing {total:,} events ({calls:,} open calls) to {topic} ...")
    stats = await produce(
        open_call_messages(calls, secrets.randbits(32)),
        brokers=opts.brokers,
        topic=topic,
        progress=opts.progress,
        total=total,
    )
    if stats.failed:
        raise RuntimeError(f"{stats.failed} messages not produced: {stats.errors[:3]}")
    ends = await topic_end_offsets(opts.brokers, topic)
    if sum(ends.values()) != total:
        raise RuntimeError(f"topic holds {sum(ends.values())} messages, sent {total}")
    say(f"  produced {stats.sent:,} messages ({stats.bytes / 1e6:.1f} MB) at {stats.rate:,.0f}/s")
    return stats.rate, ends


def run_one(opts: Options, label: str, calls: int, cache_max_calls: int) -> RunFigures:
    """Fresh topic and store; the worker in a child process (or here with --in-process)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    topic = f"ringlog-bench-memory-{stamp}-{uuid.uuid4().hex[:6]}"

    async def topics() -> None:
        await ensure_topic(opts.brokers, topic, partitions=opts.partitions)
        await ensure_topic(opts.brokers, topic + ".dlq", partitions=1)

    asyncio.run(topics())
    tmp_dir: str | None = None
    url = opts.clickhouse_url
    database = opts.database
    if url is None:
        tmp_dir = tempfile.mkdtemp(prefix="ringlog-bench-memory-chdb-")
        url = f"chdb://{tmp_dir}"
    else:  # a store of its own per run: the checks count rows
        database = f"{opts.database}_{uuid.uuid4().hex[:8]}"
    spec = RunSpec(
        worker=WorkerSpec(
            brokers=opts.brokers,
            topic=topic,
            dlq_topic=topic + ".dlq",
            group_id=f"ringlog-bench-memory-{uuid.uuid4().hex[:12]}",
            clickhouse_url=url,
            database=database,
            batch_max_events=opts.batch_max_events,
            ends={},
        ),
        label=label,
        calls=calls,
        cache_max_calls=cache_max_calls,
        timeout_s=opts.timeout,
    )
    where = "in this process" if opts.in_process else "in a subprocess"
    say(
        f"{label}: {calls:,} open calls, RINGLOG_CACHE_MAX_CALLS={cache_max_calls:,}, "
        f"worker {where}, store {url}"
    )
    rate = 0.0
    try:
        if opts.in_process:

            async def feed(_figures: RunFigures) -> dict[int, int]:
                nonlocal rate
                rate, ends = await _produce_workload(opts, topic, calls)
                return ends

            figures = asyncio.run(worker_run(spec, feed, say))
            figures.rss_note = (
                "in-process: VmRSS/VmHWM of this process (it also generated and produced the "
                "workload), so only a rough figure; run without --in-process for the worker's"
            )
        else:
            figures, rate = _run_child(opts, spec, topic, calls)
    finally:
        if tmp_dir is not None:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    figures.topic = topic
    figures.produce_rate = rate
    say(
        f"  {figures.committed:,} events durable in {figures.seconds:.1f}s = "
        f"{figures.rate:,.0f} events/s; RSS +{figures.rss_per_call:,.0f} B/call "
        f"(peak +{figures.hwm_per_call:,.0f} B/call)"
    )
    return figures


def _run_child(opts: Options, spec: RunSpec, topic: str, calls: int) -> tuple[RunFigures, float]:
    cmd = [sys.executable, "-m", "benchmarks.memory", "--worker-child", spec.to_json()]
    proc = subprocess.Popen(
        cmd,
        cwd=REPO_ROOT,
        env=child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,  # stderr (the child's progress and errors) goes to ours
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        for line in proc.stdout:
            if line.startswith("READY "):
                break
        else:
            raise RuntimeError(f"the worker subprocess ended before it was ready ({proc.wait()})")
        rate, ends = asyncio.run(_produce_workload(opts, topic, calls))
        proc.stdin.write(json.dumps(ends) + "\n")
        proc.stdin.flush()
        lines = proc.stdout.read().splitlines()
        code = proc.wait(timeout=120)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    result = next((ln for ln in reversed(lines) if ln.startswith("{")), None)
    if code != 0 or result is None:
        raise RuntimeError(f"the worker subprocess failed (exit {code}); see its stderr above")
    return RunFigures.from_json(json.loads(result)), rate


# ---------------------------------------------------------------------------------------------
# the breakdown (this process, no Kafka, no ClickHouse)


def measure_breakdown(calls: int, batch: int) -> Breakdown:
    """What the worker's planner keeps per cached open call of the workload."""
    records = as_records(open_call_messages(calls, secrets.randbits(32)))
    planner = BatchPlanner(load_rate_plan(None), timedelta(hours=4), calls)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for first in range(0, len(records), batch):
            plan = planner.plan(planner.decode(records[first : first + batch]), [], T0)
            del plan
        planner.rest()  # what the worker does once idle: every call packed
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    cached = list(planner.cache.items())
    if not cached:
        raise RuntimeError("the breakdown needs a cached call")
    (project_id, call_id), state = cached[0]
    payloads = {
        str(orjson.loads(r.value)["event_id"]): r.value
        for r in records
        if r.key == call_id.encode() and r.value is not None
    }
    packed = state.packed  # read before valid_events() unpacks the call
    parts = [_event_parts(ev, payloads) for ev in state.valid_events()]
    state.pack()
    return Breakdown(
        calls=calls,
        traced_per_call=held / calls,
        events=parts,
        call_state=sys.getsizeof(state),
        packed=sys.getsizeof(packed),
        key=sys.getsizeof((project_id, call_id)) + sys.getsizeof(call_id),
    )


def _event_parts(ev: ValidEvent, payloads: dict[str, bytes]) -> EventParts:
    model = ev.event
    values = [v for v in model.__dict__.values() if v is not None]
    return EventParts(
        type=model.type,
        fields=len(model.__pydantic_fields_set__),
        as_decoded=sys.getsizeof(ev)
        + sys.getsizeof(model)
        + sys.getsizeof(model.__dict__)
        + sum(sys.getsizeof(v) for v in values),
        payload_bytes=sys.getsizeof(payloads.get(model.event_id, b"")),
    )


# ---------------------------------------------------------------------------------------------
# output


def _mib(kib: int) -> str:
    return f"{kib / 1024:,.0f}"


def memory_table(runs: Sequence[RunFigures]) -> list[str]:
    lines = [
        f"{'calls':>10} {'idle MiB':>9} {'after MiB':>10} {'peak MiB':>9} "
        f"{'B/call':>8} {'peak B/call':>12} {'slope B/call':>13} {'events/s':>9} "
        f"{'vs 1 KiB':>9}",
    ]
    previous: RunFigures | None = None
    for r in sorted(runs, key=lambda run: run.calls):
        flag = "" if r.complete else "  (partial)"
        slope = marginal_per_call(previous, r)
        lines.append(
            f"{r.calls:>10,} {_mib(r.rss_baseline_kib):>9} {_mib(r.rss_after_kib):>10} "
            f"{_mib(r.hwm_after_kib):>9} {r.rss_per_call:>8,.0f} {r.hwm_per_call:>12,.0f} "
            f"{'-' if slope is None else f'{slope:,.0f}':>13} {r.rate:>9,.0f} "
            f"{r.rss_per_call / GOAL_BYTES_PER_CALL:>8.1f}x{flag}"
        )
        previous = r
    lines.append(
        "B/call = (VmRSS after - idle VmRSS) / calls; peak uses VmHWM; slope = the growth "
        "from the previous size per added call (fixed costs such as chDB's caches cancel out)"
    )
    return lines


def marginal_per_call(smaller: RunFigures | None, larger: RunFigures) -> float | None:
    """RSS growth per added call between two sizes: fixed costs cancel out."""
    if smaller is None or larger.calls <= smaller.calls:
        return None
    grown = (larger.rss_after_kib - larger.rss_baseline_kib) - (
        smaller.rss_after_kib - smaller.rss_baseline_kib
    )
    return grown * 1024 / (larger.calls - smaller.calls)


def breakdown_lines(b: Breakdown) -> list[str]:
    decoded = sum(e.as_decoded for e in b.events)
    payloads = sum(e.payload_bytes for e in b.events)
    unwalked = b.traced_per_call - b.walked
    return [
        f"breakdown ({b.calls:,} calls planned in this process, no Kafka/ClickHouse): "
        f"tracemalloc {b.traced_per_call:,.0f} B held per cached open call",
        f"  one cached call (sys.getsizeof, B): its {len(b.events)} events packed {b.packed:,}, "
        f"CallState {b.call_state}, key {b.key}; the rest {unwalked:,.0f} (the LRU's "
        "OrderedDict entry, allocator rounding)",
        f"  for scale: the same events as decoded (ValidEvent, model, __dict__, values) "
        f"{decoded:,}, as JSON bytes objects {payloads:,}",
    ]


def growth_lines(runs: Sequence[RunFigures], breakdown: Breakdown | None) -> list[str]:
    """Where each run's RSS growth went: chDB's own allocations, what gc.collect() and
    malloc_trim gave back, and the cache as the in-process breakdown measures it."""
    lines = ["where the growth went (MiB):"]
    for r in runs:
        grown = (r.rss_after_kib - r.rss_baseline_kib) / 1024
        chdb = (r.chdb_after_bytes - r.chdb_baseline_bytes) / 2**20
        parts = [f"  {r.label}: +{grown:,.0f}"]
        if r.anon_after_kib:
            anon = (r.anon_after_kib - r.anon_baseline_kib) / 1024
            mapped = (r.file_after_kib - r.file_baseline_kib) / 1024
            parts.append(f"anonymous {anon:+,.0f}, file-backed {mapped:+,.0f}")
        parts.append(f"chDB MemoryTracking {chdb:+,.0f}")
        if r.rss_trimmed_kib:
            kept = (r.rss_after_kib - r.rss_trimmed_kib) / 1024
            parts.append(f"freed by gc.collect + malloc_trim {kept:,.0f}")
        if breakdown is not None:
            cache = r.cached_calls * breakdown.traced_per_call / 2**20
            parts.append(
                f"the cache ~{cache:,.0f} ({r.cached_calls:,} calls x "
                f"{breakdown.traced_per_call:,.0f} B, tracemalloc in-process)"
            )
        lines.append(", ".join(parts))
    return lines


def summary(result: MemoryResult) -> str:
    lines = [
        "",
        "=" * 96,
        f"ringlog memory benchmark: open calls of {EVENTS_PER_CALL} events, "
        f"{result.partitions} partitions, batch_max_events={result.batch_max_events}; "
        f"goal <= {GOAL_BYTES_PER_CALL} B per cached open call",
        "",
    ]
    if result.runs:
        lines.append("1. memory (RINGLOG_CACHE_MAX_CALLS = calls): RSS above the idle worker")
        lines += ["   " + ln for ln in memory_table(result.runs)]
        lines.append(f"   ({result.runs[0].rss_note})")
        lines += ["   " + ln for ln in growth_lines(result.runs, result.breakdown)]
        lines.append("")
    fits, evict = result.fits_run, result.evict_run
    if fits is not None and evict is not None:
        ratio = _ratio(evict, fits) or 0.0
        lines += [
            f"2. past the cache: {result.evict_calls:,} open calls, cache "
            f"{result.evict_cache:,} calls vs {fits.cache_max_calls:,}",
            f"   fits:     {fits.rate:>9,.0f} events/s ({fits.committed:,} events in "
            f"{fits.seconds:.1f}s), {fits.evictions:,} evictions, {fits.reloaded_calls:,} "
            f"reloads, RSS +{(fits.rss_after_kib - fits.rss_baseline_kib) / 1024:,.0f} MiB",
            f"   evicting: {evict.rate:>9,.0f} events/s ({evict.committed:,} events in "
            f"{evict.seconds:.1f}s) = {ratio:.2f}x; {evict.evictions:,} evictions, "
            f"{evict.reloaded_calls:,} calls reloaded ({evict.reloaded_events:,} stored events "
            f"read back) in {evict.reload_queries:,} queries taking {evict.reload_seconds:.1f}s,"
            f" RSS +{(evict.rss_after_kib - evict.rss_baseline_kib) / 1024:,.0f} MiB",
            f"   ({evict.lookups:,} calls looked up in call_event, the first sight of a "
            "call included; the metrics have no reload counter: counted around "
            "load_call_events)",
            "",
        ]
    if result.breakdown is not None:
        first, *rest = breakdown_lines(result.breakdown)
        lines += ["3. " + first, *("   " + ln for ln in rest), ""]
    for r in result.all_runs:
        bad = [name for name, ok in r.checks().items() if not ok]
        state = "ok" if not bad else "FAILED: " + ", ".join(bad)
        lines.append(f"checks {r.label} ({r.calls:,} calls, cache {r.cache_max_calls:,}): {state}")
    lines += ["", f"command: {result.command}", "=" * 96]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the command


def run(opts: Options) -> MemoryResult:
    result = MemoryResult(opts.command, opts.partitions, opts.batch_max_events)
    if opts.breakdown_calls > 0:
        say(f"breakdown: planning {opts.breakdown_calls:,} calls in this process ...")
        result.breakdown = measure_breakdown(opts.breakdown_calls, opts.batch_max_events)
        say(f"  {result.breakdown.traced_per_call:,.0f} B per call (tracemalloc)")
    for calls in opts.calls:
        result.runs.append(run_one(opts, f"memory-{calls}", calls, calls))
    if opts.evict_calls > 0:
        result.evict_calls = opts.evict_calls
        result.evict_cache = opts.evict_cache
        fits = next((r for r in result.runs if r.calls == opts.evict_calls), None)
        if fits is None:
            fits = run_one(opts, "fits", opts.evict_calls, opts.evict_calls)
        else:
            say(f"fits: the {opts.evict_calls:,}-call memory run above is the same workload")
        result.fits_run = fits
        result.evict_run = run_one(opts, "evicting", opts.evict_calls, opts.evict_cache)
    return result


def _calls(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of integers: {text!r}"
        ) from None
    if any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError("sizes must be >= 1")
    return sizes


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.memory",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--calls",
        type=_calls,
        default=DEFAULT_CALLS,
        help="open calls per memory run, comma-separated (10000,100000,1000000); '' for none",
    )
    p.add_argument(
        "--evict-calls",
        type=int,
        default=100_000,
        help="open calls of the past-the-cache comparison (100000; 0 skips it)",
    )
    p.add_argument(
        "--evict-cache",
        type=int,
        default=20_000,
        help="RINGLOG_CACHE_MAX_CALLS of its evicting run (20000)",
    )
    p.add_argument(
        "--breakdown-calls",
        type=int,
        default=5_000,
        help="calls of the in-process tracemalloc breakdown (5000; 0 skips it)",
    )
    p.add_argument("--partitions", type=int, default=4, help="partitions of each fresh topic")
    p.add_argument("--brokers", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    p.add_argument(
        "--batch-max-events",
        type=int,
        default=DEFAULT_BATCH_MAX_EVENTS,
        help=f"worker batch size ({DEFAULT_BATCH_MAX_EVENTS})",
    )
    p.add_argument(
        "--timeout", type=float, default=PHASE_TIMEOUT_S, help="cap per worker run, s (1800)"
    )
    p.add_argument("--json", action="store_true", help="also print every figure as a JSON line")
    p.add_argument("--clickhouse-url", default=None, help="store URL (default: fresh chDB dirs)")
    p.add_argument("--database", default="bench", help="ClickHouse database (bench)")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the worker in this process (tests; the RSS figures are then not the worker's)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar while producing")
    p.add_argument("--worker-child", default=None, help=argparse.SUPPRESS)
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    clickhouse_url: str | None = None,
    database: str | None = None,
) -> MemoryResult | None:
    """Run the benchmark; `clickhouse_url`/`database` override the flags (for tests, which
    must share the session's chDB path). Returns the result (None in the worker child)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.worker_child is not None:
        _worker_child(args.worker_child)
        return None
    if args.evict_calls > 0 and not 0 < args.evict_cache < args.evict_calls:
        parser.error("--evict-cache must be between 1 and --evict-calls - 1")
    shown = list(sys.argv[1:] if argv is None else argv)
    opts = Options(
        calls=args.calls,
        evict_calls=args.evict_calls,
        evict_cache=args.evict_cache,
        breakdown_calls=args.breakdown_calls,
        partitions=args.partitions,
        brokers=args.brokers,
        batch_max_events=args.batch_max_events,
        timeout=args.timeout,
        json=args.json,
        clickhouse_url=clickhouse_url if clickhouse_url is not None else args.clickhouse_url,
        database=database if database is not None else args.database,
        in_process=args.in_process,
        progress=not args.no_progress,
        command=shlex.join(["python", "-m", "benchmarks.memory", *shown]),
    )
    result = run(opts)
    say(summary(result))
    if opts.json:
        say(json.dumps(result.to_json()))
    return result


if __name__ == "__main__":
    outcome = main()
    sys.exit(0 if outcome is None or outcome.ok else 1)
