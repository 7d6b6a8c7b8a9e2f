"""Soak, in two modes.

Kill mode (the default): many calls, many kill -9s of the worker, then lost / doubled / wrong
rows (all must be 0).

    python -m benchmarks.soak --calls 10000 --kills 50

Runs the fault harness of tests/faults (the worker as a child process on the local Apache
Kafka and an embedded ClickHouse store): produces the calls at --rate events/s while killing
the worker with SIGKILL at random moments and restarting it, waits until every offset is
committed, then diffs every row read back with FINAL against the rows the pure core computes
from the same events. Exit status 1 if anything was lost, doubled or wrong.

Long-run mode (--events N): is the worker's RSS flat over a long run? No kills.

    python -m benchmarks.soak --events 10000000 --rss-every 60

Starts `ringlog worker` as a child process (the fault harness's WorkerProcess, as in kill mode,
with the worker's own defaults: call timeout, batch size, call cache) on an embedded chDB store,
then a producer process streams N generated events (devtools.traffic: 2% invalid, 10%
duplicates, nothing oversized; never held in memory) to a fresh 4-partition topic, as fast as it
can or at --rate, while the worker consumes. Every --rss-every seconds one line: seconds since
producing started, messages produced and committed (offsets the worker's group committed, i.e.
durable in ClickHouse), committed events/s over the interval, the worker's VmRSS (its
/proc/<pid>/status, read every second), the floor (the lowest VmRSS read since the previous
line: a transient peak such as a merge in chDB does not raise it, memory kept for good does),
VmHWM, and the calls in its cache (ringlog_cached_calls and ringlog_open_calls
from its /metrics). The first line is the idle worker, the last the moment every offset is
committed.

Then the verdict on flatness: the run is split at the first line with at least half of the
committed events; the floor's growth over each half in MiB and MiB per million events (the
first half includes the call cache filling up), and the least-squares slope of the floor over
the second half's lines (VmHWM's growth is printed beside it). Checks: every message produced
and every offset committed, call_event rows = distinct valid events produced, rejected_event
rows and DLQ messages = invalid messages produced, the worker stopped cleanly on SIGTERM, and
the second half's slope at most --max-growth MiB per million events. --json prints every
figure and the RSS series as one JSON line. Exit status 1 if a check fails. The worker's logs
and the store are kept in a temporary directory (--remove-store removes the store at the end).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import shlex
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from benchmarks.ingest import (
    REPO_ROOT,
    Expected,
    child_env,
    proc_status_kib,
    report_footer,
    say,
)
from devtools.chdb_http import spawn_server
from devtools.fault_harness import Setup, WorkerProcess, committed_and_end, crash_run, metric
from devtools.kafka_local import kafka_up, topic_end_offsets
from devtools.producer import ensure_topic
from devtools.traffic import Message, generate_events
from worker.adapters.kafka.bulk_publisher import Acks, BulkPublisher
from worker.adapters.kafka.connection import KafkaConnection
from worker.service.settings import Settings

# kill mode's defaults (its flags default to None so that a long run can refuse them)
KILL_CALLS = 10_000
KILL_KILLS = 50
KILL_RATE = 1500.0
KILL_BATCH_MAX_EVENTS = 1000

PARTITIONS = 4
INVALID_SHARE = 0.02
PRODUCE_CHUNK = 5_000  # records per BulkPublisher.send
DEFAULT_RSS_EVERY_S = 60.0
DEFAULT_MAX_GROWTH = 1.0  # MiB of VmRSS per million events over the second half
STALL_S = 300.0  # give up when nothing more is committed for this long
POLL_S = 1.0  # how often the end of the run is checked between two lines
IDLE_S = 1.0  # the worker idles this long once ready before the first line
# The worker's own call timeout: the fault harness sets 100000h so that its exact-row diffs do
# not depend on timeout closes, but a long run should close calls as a deployed worker does.
DEFAULT_CALL_TIMEOUT: timedelta = Settings.model_fields["call_timeout"].default


# ---------------------------------------------------------------------------------------------
# long-run mode: what the generated traffic must turn into


@dataclass
class Tally:
    """Counts the produced messages as benchmarks.ingest's expected_of does, while they stream
    by: one 64-bit hash per distinct valid event instead of the events (10M events in about
    0.5 GB; a collision, about 3 in a million runs of 10M, would count one event short)."""

    messages: int = 0
    invalid: int = 0
    valid: int = 0
    seen: set[int] = field(default_factory=set, repr=False)

    def add(self, msg: Message) -> None:
        self.messages += 1
        if not msg.valid:
            self.invalid += 1
            return
        self.valid += 1
        obj = orjson.loads(msg.value)
        # call_event's key, the project id as ClickHouse writes a UUID
        project = str(uuid.UUID(str(obj["project_id"])))
        self.seen.add(hash((project, obj["call_id"], obj["event_id"])))

    def expected(self) -> Expected:
        return Expected(
            messages=self.messages,
            invalid=self.invalid,
            valid=self.valid,
            distinct_valid=len(self.seen),
        )


def tallied(messages: Iterator[Message], tally: Tally) -> Iterator[Message]:
    for msg in messages:
        tally.add(msg)
        yield msg


@dataclass(frozen=True)
class ProducerSpec:
    brokers: str
    topic: str
    events: int
    seed: int
    rate: float | None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProducerSpec:
        return cls(**json.loads(text))


async def produce_bulk(spec: ProducerSpec, messages: Iterator[Message]) -> dict[str, Any]:
    """Produce `messages` as `ringlog replay` does (BulkPublisher: record batches per
    partition, about twice as fast as devtools.producer's send() per message, which could not
    keep up with the worker here); one chunk in flight while the next is generated."""
    publisher = BulkPublisher(KafkaConnection(brokers=spec.brokers), spec.topic)
    await publisher.start()
    sent = size = 0
    in_flight: Acks | None = None
    started = time.perf_counter()
    try:
        while chunk := list(islice(messages, PRODUCE_CHUNK)):
            records: list[tuple[bytes, bytes]] = []
            for msg in chunk:
                if msg.key is None:  # generated messages always have one
                    raise ValueError("a generated message without a key")
                records.append((msg.key, msg.value))
                size += len(msg.value)
            acks = await publisher.send(records)
            if in_flight is not None:
                sent += await in_flight.wait()
            in_flight = acks
            if spec.rate is not None:
                ahead = (sent + len(records)) / spec.rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if in_flight is not None:
            sent += await in_flight.wait()
    finally:
        seconds = time.perf_counter() - started
        await publisher.stop()
    return {"sent": sent, "bytes": size, "seconds": seconds, "rate": sent / seconds}


def _producer_child(spec_json: str) -> None:
    """Entry point of the producer process: generates and produces the events, then one JSON
    line on stdout: what was produced and the Expected counts."""
    spec = ProducerSpec.from_json(spec_json)
    tally = Tally()
    events = generate_events(spec.events, seed=spec.seed, invalid_share=INVALID_SHARE, oversized=0)
    out = asyncio.run(produce_bulk(spec, tallied(events, tally)))
    out["expected"] = asdict(tally.expected())
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


# ---------------------------------------------------------------------------------------------
# long-run mode: the RSS series and its flatness (pure)


@dataclass(frozen=True)
class Sample:
    """One printed line."""

    seconds: float  # since producing started (the idle line: 0)
    produced: int  # messages on the topic (its end offsets)
    committed: int  # offsets the worker's group committed: messages durable in ClickHouse
    rate: float  # committed messages per second since the previous line
    rss_kib: int  # the worker's VmRSS
    # the lowest VmRSS read (every second) since the previous line: a transient peak (a merge
    # in chDB, a large batch) does not raise it, memory kept for good does
    floor_kib: int
    hwm_kib: int  # its VmHWM (the peak so far)
    cached_calls: int | None  # ringlog_cached_calls (None: /metrics did not answer)
    open_calls: int | None  # ringlog_open_calls


@dataclass(frozen=True)
class Flatness:
    """The VmRSS floor (Sample.floor_kib) over the two halves of a run, split at the first
    sample holding at least half of the committed messages."""

    split_committed: int  # committed at the split sample
    first_events: int  # messages committed in the first half
    second_events: int
    start_rss_mib: float  # the first sample (the idle worker)
    split_rss_mib: float
    end_rss_mib: float
    second_hwm_growth_mib: float  # VmHWM at the end minus at the split
    second_samples: int  # samples of the second half, the split included
    # least-squares slope of the floor against committed messages over the second half's
    # samples (None with fewer than 3 samples there): less sensitive to one sample than the ends
    second_slope_mib_per_million: float | None

    @property
    def first_growth_mib(self) -> float:
        return self.split_rss_mib - self.start_rss_mib

    @property
    def second_growth_mib(self) -> float:
        return self.end_rss_mib - self.split_rss_mib

    @property
    def first_mib_per_million(self) -> float | None:
        return _per_million(self.first_growth_mib, self.first_events)

    @property
    def second_mib_per_million(self) -> float | None:
        return _per_million(self.second_growth_mib, self.second_events)

    @property
    def judged_mib_per_million(self) -> float | None:
        """What --max-growth is compared with: the slope, else the ends of the second half."""
        if self.second_slope_mib_per_million is not None:
            return self.second_slope_mib_per_million
        return self.second_mib_per_million

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["first_growth_mib"] = self.first_growth_mib
        data["second_growth_mib"] = self.second_growth_mib
        data["first_mib_per_million"] = self.first_mib_per_million
        data["second_mib_per_million"] = self.second_mib_per_million
        data["judged_mib_per_million"] = self.judged_mib_per_million
        return data


def _per_million(mib: float, events: int) -> float | None:
    return mib / (events / 1e6) if events > 0 else None


def _mib(kib: int) -> float:
    return kib / 1024


def least_squares_slope(points: Sequence[tuple[float, float]]) -> float | None:
    """Slope of the least-squares line through (x, y) points; None if x does not vary."""
    n = len(points)
    if n < 2:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    var = sum((x - mean_x) ** 2 for x, _ in points)
    if var == 0:
        return None
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / var


def flatness(samples: Sequence[Sample]) -> Flatness | None:
    """The halves of the run (None with fewer than 3 samples: no middle to split at)."""
    if len(samples) < 3:
        return None
    first, last = samples[0], samples[-1]
    half = last.committed / 2
    # the split is a sample strictly inside the run, so both halves have an end
    split_at = next(
        (i for i, s in enumerate(samples[1:-1], start=1) if s.committed >= half), len(samples) - 2
    )
    split = samples[split_at]
    second = samples[split_at:]
    slope = (
        least_squares_slope([(s.committed / 1e6, _mib(s.floor_kib)) for s in second])
        if len(second) >= 3
        else None
    )
    return Flatness(
        split_committed=split.committed,
        first_events=split.committed - first.committed,
        second_events=last.committed - split.committed,
        start_rss_mib=_mib(first.floor_kib),
        split_rss_mib=_mib(split.floor_kib),
        end_rss_mib=_mib(last.floor_kib),
        second_hwm_growth_mib=_mib(last.hwm_kib - split.hwm_kib),
        second_samples=len(second),
        second_slope_mib_per_million=slope,
    )


# ---------------------------------------------------------------------------------------------
# long-run mode: the run


@dataclass
class LongOptions:
    events: int
    rss_every: float
    seed: int
    rate: float | None
    brokers: str
    batch_max_events: int | None  # None: the worker's default
    cache_max_calls: int | None
    max_growth: float
    remove_store: bool
    store_process: bool  # serve the store from a process of its own (not in the worker)
    json: bool
    command: str


@dataclass
class LongResult:
    command: str
    topic: str
    work_dir: str
    events_requested: int
    rss_every: float
    rate: float | None
    worker_env: dict[str, str]
    max_growth: float
    producer: dict[str, Any] = field(default_factory=dict)
    expected: Expected = field(default_factory=Expected)
    samples: list[Sample] = field(default_factory=list)
    flat: Flatness | None = None
    complete: bool = True
    note: str = ""
    call_event_rows: int = 0
    rejected_rows: int = 0
    dead_letters: int = 0
    worker_exit: int | None = None
    # --store-process: the store's server process VmRSS (KiB) once ready and at the end, which
    # the worker's VmRSS then does not include
    store_rss_start_kib: int = 0
    store_rss_end_kib: int = 0
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    @property
    def committed(self) -> int:
        return self.samples[-1].committed if self.samples else 0

    def check(self) -> None:
        exp = self.expected
        judged = self.flat.judged_mib_per_million if self.flat is not None else None
        self.checks = {
            "every message produced": self.producer.get("sent") == exp.messages,
            "every offset committed": self.complete and self.committed == exp.messages,
            "call_event rows = distinct valid events": self.call_event_rows == exp.distinct_valid,
            "rejected_event rows = invalid messages": self.rejected_rows == exp.invalid,
            "DLQ messages = invalid messages": self.dead_letters == exp.invalid,
            "worker stopped cleanly (SIGTERM, exit 0)": self.worker_exit == 0,
            f"RSS flat (second half <= {self.max_growth:g} MiB per million events)": (
                judged is not None and judged <= self.max_growth
            ),
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = "long-run"
        data["flat"] = self.flat.to_json() if self.flat is not None else None
        data["expected"]["duplicates"] = self.expected.duplicates
        data["committed"] = self.committed
        data["ok"] = self.ok
        return data


def _header() -> str:
    return (
        f"{'elapsed':>8} {'produced':>11} {'committed':>11} {'events/s':>9} "
        f"{'VmRSS MiB':>10} {'floor MiB':>10} {'VmHWM MiB':>10} {'cached calls':>13} "
        f"{'open calls':>11}"
    )


def _line(s: Sample, note: str = "") -> str:
    cached = "-" if s.cached_calls is None else f"{s.cached_calls:,}"
    opened = "-" if s.open_calls is None else f"{s.open_calls:,}"
    return (
        f"{s.seconds:>7.0f}s {s.produced:>11,} {s.committed:>11,} {s.rate:>9,.0f} "
        f"{_mib(s.rss_kib):>10,.0f} {_mib(s.floor_kib):>10,.0f} {_mib(s.hwm_kib):>10,.0f} "
        f"{cached:>13} {opened:>11}" + (f"  {note}" if note else "")
    )


def _gauge(worker: WorkerProcess, name: str) -> int | None:
    value = metric(worker, name).get("")
    return None if value is None else int(value)


class _Monitor:
    """Takes the samples: Kafka's committed and end offsets, /proc and /metrics of the worker."""

    def __init__(self, setup: Setup, worker: WorkerProcess, started: float) -> None:
        self.setup = setup
        self.worker = worker
        self.started = started
        self.samples: list[Sample] = []
        self.floor_kib: int | None = None  # the lowest VmRSS read since the last sample

    def _pid(self) -> int | None:
        return self.worker.proc.pid if self.worker.proc is not None else None

    def read_rss(self) -> int:
        """Read the worker's VmRSS now (every second), keeping the lowest since the last line."""
        pid = self._pid()
        rss = proc_status_kib("VmRSS", pid) if pid is not None else 0
        self.floor_kib = rss if self.floor_kib is None else min(self.floor_kib, rss)
        return rss

    async def offsets(self) -> tuple[int, int, bool]:
        """(produced, committed, every offset on the topic committed)."""
        committed, ends = await committed_and_end(self.setup)
        done = bool(ends) and all(committed.get(p, 0) >= end for p, end in ends.items())
        return sum(ends.values()), sum(committed.values()), done

    async def sample(self, now: float) -> Sample:
        produced, committed, _ = await self.offsets()
        pid = self._pid()
        cached = await asyncio.to_thread(_gauge, self.worker, "ringlog_cached_calls")
        opened = await asyncio.to_thread(_gauge, self.worker, "ringlog_open_calls")
        previous = self.samples[-1] if self.samples else None
        seconds = max(0.0, now - self.started)
        rate = 0.0
        if previous is not None and seconds > previous.seconds:
            rate = (committed - previous.committed) / (seconds - previous.seconds)
        rss = self.read_rss()
        floor = self.floor_kib if self.floor_kib is not None else rss
        self.floor_kib = None
        sample = Sample(
            seconds=seconds,
            produced=produced,
            committed=committed,
            rate=rate,
            rss_kib=rss,
            floor_kib=floor,
            hwm_kib=proc_status_kib("VmHWM", pid) if pid is not None else 0,
            cached_calls=cached,
            open_calls=opened,
        )
        self.samples.append(sample)
        return sample


async def _start_producer(spec: ProducerSpec) -> asyncio.subprocess.Process:
    # its own process: generating events is CPU-bound Python, and here it would hold up the
    # lines (and share this process's GIL)
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "benchmarks.soak",
        "--producer-child",
        spec.to_json(),
        cwd=REPO_ROOT,
        env=child_env(),
        stdout=asyncio.subprocess.PIPE,  # its stderr (errors only) goes to ours
    )


async def _producer_result(proc: asyncio.subprocess.Process) -> dict[str, Any]:
    stdout, _ = await proc.communicate()
    lines = stdout.decode().splitlines()
    line = next((ln for ln in reversed(lines) if ln.startswith("{")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"the producer process failed (exit {proc.returncode})")
    data: dict[str, Any] = json.loads(line)
    return data


async def _consume_while_producing(
    opts: LongOptions, setup: Setup, worker: WorkerProcess, result: LongResult
) -> None:
    """Produce in the background and print a line every opts.rss_every seconds until every
    produced offset is committed (or nothing more is committed for STALL_S)."""
    await asyncio.sleep(IDLE_S)
    monitor = _Monitor(setup, worker, time.monotonic())
    say(_header())
    say(_line(await monitor.sample(monitor.started), "idle worker, before producing"))
    spec = ProducerSpec(opts.brokers, setup.topic, opts.events, opts.seed, opts.rate)
    proc = await _start_producer(spec)
    producing = asyncio.create_task(_producer_result(proc), name="soak-producer")
    try:
        next_line = monitor.started + opts.rss_every
        last_progress = (time.monotonic(), 0)
        while True:
            now = time.monotonic()
            monitor.read_rss()
            if producing.done():
                result.producer = producing.result()  # re-raises why producing failed
                _, committed, done = await monitor.offsets()
                if done:
                    break
                if committed > last_progress[1]:
                    last_progress = (now, committed)
            if now >= next_line:
                sample = await monitor.sample(now)
                say(_line(sample))
                next_line += opts.rss_every
                if sample.committed > last_progress[1]:
                    last_progress = (now, sample.committed)
            if not worker.alive():
                result.complete = False
                result.note = "the worker exited during the run"
                break
            if now - last_progress[0] > STALL_S:
                result.complete = False
                result.note = f"nothing more committed for {STALL_S:.0f}s"
                break
            await asyncio.sleep(max(0.0, min(POLL_S, next_line - time.monotonic())))
        if result.complete:
            say(_line(await monitor.sample(time.monotonic()), "every offset committed"))
    finally:
        if not producing.done():
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            with contextlib.suppress(Exception):
                await producing
        result.samples = monitor.samples
    exp = result.producer.get("expected")
    if exp is not None:
        result.expected = Expected(**exp)


async def long_run(opts: LongOptions) -> LongResult:
    work = Path(tempfile.mkdtemp(prefix="ringlog-soak-long-"))
    env = {
        "RINGLOG_CALL_TIMEOUT": f"{DEFAULT_CALL_TIMEOUT.total_seconds():g}s",
        "RINGLOG_PROCESSES": "1",  # one worker process: its RSS is the process's
    }
    if opts.batch_max_events is not None:
        env["RINGLOG_BATCH_MAX_EVENTS"] = str(opts.batch_max_events)
    if opts.cache_max_calls is not None:
        env["RINGLOG_CACHE_MAX_CALLS"] = str(opts.cache_max_calls)
    server = spawn_server(work / "store") if opts.store_process else None
    setup = Setup(
        opts.brokers,
        server.url if server is not None else f"chdb://{work / 'store'}",
        name=f"soak-long-{uuid.uuid4().hex[:10]}",
        extra_env=env,
    )
    result = LongResult(
        command=opts.command,
        topic=setup.topic,
        work_dir=str(work),
        events_requested=opts.events,
        rss_every=opts.rss_every,
        rate=opts.rate,
        worker_env=env,
        max_growth=opts.max_growth,
    )
    pace = "as fast as it can" if opts.rate is None else f"at {opts.rate:,.0f}/s"
    say(
        f"soak long run: {opts.events:,} events produced {pace} to {setup.topic} "
        f"({PARTITIONS} partitions), `ringlog worker` with {env}, a line every "
        f"{opts.rss_every:g}s; logs and store in {work}"
    )
    await ensure_topic(setup.brokers, setup.topic, partitions=PARTITIONS)
    await ensure_topic(setup.brokers, setup.dlq_topic, partitions=1)
    worker = WorkerProcess(setup, work)
    worker.start()
    try:
        await asyncio.to_thread(worker.wait_ready)
        if server is not None:
            result.store_rss_start_kib = proc_status_kib("VmRSS", server.process.pid)
        await _consume_while_producing(opts, setup, worker, result)
        if result.complete:
            say("counting rows (count() FINAL) ...")
            result.call_event_rows = _count(worker, "call_event")
            result.rejected_rows = _count(worker, "rejected_event")
            dlq = await topic_end_offsets(setup.brokers, setup.dlq_topic)
            result.dead_letters = sum(dlq.values())
        if server is not None:
            result.store_rss_end_kib = proc_status_kib("VmRSS", server.process.pid)
        result.worker_exit = await asyncio.to_thread(worker.stop)
    finally:
        worker.kill()  # never leave a worker behind
        if server is not None:
            server.stop()
        if opts.remove_store:
            shutil.rmtree(work / "store", ignore_errors=True)
    result.flat = flatness(result.samples)
    result.check()
    return result


def _count(worker: WorkerProcess, table: str) -> int:
    return int(worker.query(f"SELECT count() AS n FROM {table} FINAL")[0]["n"])


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def long_summary(r: LongResult) -> str:
    exp = r.expected
    seconds = r.samples[-1].seconds if r.samples else 0.0
    producer = r.producer
    lines = [
        "",
        "=" * 96,
        f"soak long run: {r.committed:,} of {exp.messages:,} messages committed in "
        f"{seconds:,.0f}s ({r.committed / seconds if seconds else 0:,.0f}/s overall); "
        f"produced at {producer.get('rate', 0):,.0f}/s in {producer.get('seconds', 0):,.0f}s",
        f"generated: {exp.messages:,} messages = {exp.distinct_valid:,} distinct valid + "
        f"{exp.duplicates:,} duplicates + {exp.invalid:,} invalid",
        f"rows (count() FINAL): call_event={r.call_event_rows:,}, "
        f"rejected_event={r.rejected_rows:,}; dead letters on {r.topic}.dlq: {r.dead_letters:,}",
    ]
    if r.store_rss_start_kib:
        lines.append(
            f"the store's own process (--store-process; not in the worker's VmRSS): VmRSS "
            f"{r.store_rss_start_kib / 1024:,.0f} MiB once ready -> "
            f"{r.store_rss_end_kib / 1024:,.0f} MiB at the end"
        )
    f = r.flat
    if f is None:
        lines.append("RSS: fewer than 3 lines, no verdict (a longer run or a shorter --rss-every)")
    else:
        lines += [
            f"VmRSS floor: idle {f.start_rss_mib:,.0f} MiB -> {f.split_rss_mib:,.0f} MiB at "
            f"{f.split_committed:,} messages -> {f.end_rss_mib:,.0f} MiB at the end",
            f"  first half  ({f.first_events:>11,} messages): {f.first_growth_mib:+,.1f} MiB = "
            f"{_fmt(f.first_mib_per_million)} MiB per million (start-up, the call cache fills)",
            f"  second half ({f.second_events:>11,} messages): {f.second_growth_mib:+,.1f} MiB = "
            f"{_fmt(f.second_mib_per_million)} MiB per million; least-squares slope over its "
            f"{f.second_samples} lines {_fmt(f.second_slope_mib_per_million)} MiB per million; "
            f"VmHWM {f.second_hwm_growth_mib:+,.1f} MiB",
        ]
        judged = f.judged_mib_per_million
        flat = judged is not None and judged <= r.max_growth
        lines.append(
            f"verdict: {'flat' if flat else 'NOT flat'} ({_fmt(judged)} MiB per million events "
            f"in the second half, limit {r.max_growth:g})"
        )
    if r.note:
        lines.append(f"note: {r.note}")
    lines += report_footer(r.checks, r.command)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# the command


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    kill = p.add_argument_group("kill mode (the default)")
    kill.add_argument("--calls", type=int, default=None, help=f"calls to simulate ({KILL_CALLS})")
    kill.add_argument(
        "--kills", type=int, default=None, help=f"SIGKILLs of the worker ({KILL_KILLS})"
    )
    long = p.add_argument_group("long-run mode (--events)")
    long.add_argument(
        "--events",
        type=int,
        default=None,
        help="long-run mode: produce about this many generated events (no kills) and print "
        "the worker's RSS as they are consumed",
    )
    long.add_argument(
        "--rss-every",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"print a line every SECONDS ({DEFAULT_RSS_EVERY_S:g})",
    )
    long.add_argument(
        "--max-growth",
        type=float,
        default=None,
        metavar="MIB",
        help="the flatness check: at most MIB of VmRSS per million events over the second half "
        f"of the run ({DEFAULT_MAX_GROWTH:g})",
    )
    long.add_argument(
        "--cache-max-calls",
        type=int,
        default=None,
        help="RINGLOG_CACHE_MAX_CALLS of the worker (default: the worker's)",
    )
    long.add_argument(
        "--remove-store",
        action="store_true",
        help="remove the chDB store at the end (a 10M-event store takes a few GB)",
    )
    long.add_argument(
        "--store-process",
        action="store_true",
        help="serve the chDB store from a process of its own (python -m devtools store serve) "
        "that the worker reaches over HTTP, so the worker's VmRSS leaves the store out; the "
        "store's VmRSS is printed at the start and the end",
    )
    long.add_argument(
        "--json", action="store_true", help="also print every figure and the series as JSON"
    )
    both = p.add_argument_group("both modes")
    both.add_argument("--seed", type=int, default=1, help="traffic (and kill-time) seed")
    both.add_argument(
        "--rate",
        type=float,
        default=None,
        help=f"events/s produced (kill mode: {KILL_RATE:g}; long run: as fast as possible)",
    )
    both.add_argument(
        "--batch-max-events",
        type=int,
        default=None,
        help=f"worker batch size (kill mode: {KILL_BATCH_MAX_EVENTS}, smaller so that more "
        "kills land mid-batch; long run: the worker's default)",
    )
    both.add_argument(
        "--brokers", default=None, help="Kafka bootstrap (default: start/reuse the local broker)"
    )
    p.add_argument("--producer-child", default=None, help=argparse.SUPPRESS)
    return p


def _kill_mode(args: argparse.Namespace) -> int:
    calls = args.calls if args.calls is not None else KILL_CALLS
    kills = args.kills if args.kills is not None else KILL_KILLS
    rate = args.rate if args.rate is not None else KILL_RATE
    batch = args.batch_max_events if args.batch_max_events is not None else KILL_BATCH_MAX_EVENTS
    brokers = args.brokers or kafka_up()
    work = Path(tempfile.mkdtemp(prefix="ringlog-soak-"))
    setup = Setup(
        brokers,
        f"chdb://{work / 'store'}",
        extra_env={"RINGLOG_BATCH_MAX_EVENTS": str(batch)},
    )
    print(
        f"soak: {calls} calls, {kills} kills, rate {rate:.0f}/s, "
        f"topic {setup.topic}, logs in {work}",
        flush=True,
    )
    started = time.monotonic()
    result = asyncio.run(
        crash_run(setup, calls=calls, kills=kills, seed=args.seed, log_dir=work, rate=rate)
    )
    result["seconds"] = round(time.monotonic() - started)
    print(json.dumps(result, indent=2))
    bad = {k: v for k, v in result.items() if k not in ("starts", "messages", "seconds") and v}
    print(
        "RESULT:",
        "FAIL " + json.dumps(bad) if bad else "ok: nothing lost, nothing doubled, nothing wrong",
    )
    return 1 if bad else 0


def _long_mode(args: argparse.Namespace, argv: Sequence[str]) -> int:
    opts = LongOptions(
        events=args.events,
        rss_every=args.rss_every if args.rss_every is not None else DEFAULT_RSS_EVERY_S,
        seed=args.seed,
        rate=args.rate,
        brokers=args.brokers or kafka_up(),
        batch_max_events=args.batch_max_events,
        cache_max_calls=args.cache_max_calls,
        max_growth=args.max_growth if args.max_growth is not None else DEFAULT_MAX_GROWTH,
        remove_store=args.remove_store,
        store_process=args.store_process,
        json=args.json,
        command=shlex.join(["python", "-m", "benchmarks.soak", *argv]),
    )
    result = asyncio.run(long_run(opts))
    say(long_summary(result))
    say("RESULT: " + ("ok" if result.ok else "FAIL"))
    if opts.json:
        say(json.dumps(result.to_json()))
    return 0 if result.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.producer_child is not None:
        _producer_child(args.producer_child)
        return 0
    if args.events is None:
        given = [
            flag
            for flag, value in (
                ("--rss-every", args.rss_every),
                ("--max-growth", args.max_growth),
                ("--cache-max-calls", args.cache_max_calls),
                ("--remove-store", args.remove_store or None),
                ("--store-process", args.store_process or None),
                ("--json", args.json or None),
            )
            if value is not None
        ]
        if given:
            parser.error(f"{', '.join(given)}: long-run mode only (give --events)")
        return _kill_mode(args)
    if args.calls is not None or args.kills is not None:
        parser.error("--calls and --kills are kill mode's: a long run (--events) kills nothing")
    if args.events < 1:
        parser.error("--events must be >= 1")
    if args.rss_every is not None and args.rss_every <= 0:
        parser.error("--rss-every must be > 0")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    return _long_mode(args, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
