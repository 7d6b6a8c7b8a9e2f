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

REST POINTS: every --rest-every messages (an eighth of the run by default; 0: none) the
producer stops until every produced offset is committed and the worker has then idled
REST_S (longer than its collection period, so it has collected and handed free heap pages
back), and a line "at rest" reads its VmRSS and its live heap from /metrics: Python's
allocated blocks and glibc's bytes in use, free and mmapped (worker.service.heap_metrics). The
producer then goes on at --rate from there (no catch-up burst, which would itself be a
backlog), and the run ends with one more rest point. A running worker's floor follows the
backlog it is working through; rest points compare the same state (idle, collected) after
more and more events, and the live heap tells a leak (it grows) from memory the allocators
keep after a backlog (it does not).

Then the verdict on flatness: the series is split at the first point with at least half of
the committed events; the growth over each half in MiB and MiB per million events (the first
half includes the call cache filling up), and the least-squares slope over the second half's
points. Judged: VmRSS at the rest points (the idle worker before producing, then each rest
point), or without rest points the floor of every line (VmHWM's growth is printed beside it).
Checks: every message produced and every offset committed, call_event rows = distinct valid
events produced, rejected_event rows and DLQ messages = invalid messages produced, the worker
stopped cleanly on SIGTERM, and the second half's slope at most --max-growth MiB per million
events. --json prints every figure and the series as one JSON line. Exit status 1 if a check
fails. The worker's logs and the store are kept in a temporary directory (--remove-store
removes the store at the end).
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
from collections.abc import Awaitable, Callable, Iterator, Sequence
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
from worker.service.garbage_collector import EVERY_S as WORKER_GC_EVERY_S
from worker.service.heap_metrics import BLOCKS, HEAP
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
REST_POINTS = 8  # rest points per run by default (the last at the end)
MIN_REST_EVERY = 100_000  # fewer messages between rest points by default: none
# A rest point's idle time after the last commit: one collection period of the worker and a
# margin, so it has collected and handed free heap pages back (GarbageCollector.run).
REST_S = WORKER_GC_EVERY_S + 5.0
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
    rest_every: int = 0  # messages between two rest points (0: none)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProducerSpec:
        return cls(**json.loads(text))


async def produce_bulk(
    spec: ProducerSpec,
    messages: Iterator[Message],
    rest: Callable[[int], Awaitable[object]] | None = None,
) -> dict[str, Any]:
    """Produce `messages` as `ringlog replay` does (BulkPublisher: record batches per
    partition, about twice as fast as devtools.producer's send() per message, which could not
    keep up with the worker here); one chunk in flight while the next is generated.

    Every `spec.rest_every` messages, once they are acknowledged, awaits `rest(sent)` (REST
    POINTS), then paces on from there: the pause is not made up for."""
    publisher = BulkPublisher(KafkaConnection(brokers=spec.brokers), spec.topic)
    await publisher.start()
    sent = size = 0
    in_flight: Acks | None = None
    started = time.perf_counter()
    resting = 0.0  # seconds spent in rests, left out of the pacing and the rate
    paced_from = (started, 0)  # (when, queued): the pacing's origin, moved by each rest
    queued = 0  # messages handed to the publisher: `sent` and the chunk in flight
    next_rest = spec.rest_every if rest is not None and spec.rest_every > 0 else None
    try:
        while chunk := list(islice(messages, PRODUCE_CHUNK)):
            if rest is not None and next_rest is not None and queued >= next_rest:
                if in_flight is not None:
                    sent += await in_flight.wait()
                    in_flight = None
                began = time.perf_counter()
                await rest(sent)
                resting += time.perf_counter() - began
                paced_from = (time.perf_counter(), queued)
                while next_rest <= queued:
                    next_rest += spec.rest_every
            records: list[tuple[bytes, bytes]] = []
            for msg in chunk:
                if msg.key is None:  # generated messages always have one
                    raise ValueError("a generated message without a key")
                records.append((msg.key, msg.value))
                size += len(msg.value)
            acks = await publisher.send(records)
            queued += len(records)
            if in_flight is not None:
                sent += await in_flight.wait()
            in_flight = acks
            if spec.rate is not None:
                since, base = paced_from
                due = (queued - base) / spec.rate
                ahead = due - (time.perf_counter() - since)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        if in_flight is not None:
            sent += await in_flight.wait()
    finally:
        seconds = time.perf_counter() - started - resting
        await publisher.stop()
    return {
        "sent": sent,
        "bytes": size,
        "seconds": seconds,
        "rate": sent / seconds,
        "resting_seconds": resting,
    }


async def _rest_on_stdin(sent: int) -> None:
    """A rest point of the producer child: say so on stdout, go on at a line on stdin."""
    sys.stdout.write(json.dumps({"rest": sent}) + "\n")
    sys.stdout.flush()
    await asyncio.to_thread(sys.stdin.readline)


def _producer_child(spec_json: str) -> None:
    """Entry point of the producer process: generates and produces the events (at each rest
    point a line {"rest": sent} on stdout, and on at the next line on stdin), then one JSON
    line on stdout: what was produced and the Expected counts."""
    spec = ProducerSpec.from_json(spec_json)
    tally = Tally()
    events = generate_events(spec.events, seed=spec.seed, invalid_share=INVALID_SHARE, oversized=0)
    out = asyncio.run(produce_bulk(spec, tallied(events, tally), _rest_on_stdin))
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
    at_rest: bool = False  # a rest point: idle and collected (REST POINTS)
    # the live heap (worker.service.heap_metrics; None: not served), read at rest points
    python_blocks: int | None = None
    malloc_in_use: int | None = None  # bytes: in the heaps and mmapped
    malloc_free: int | None = None  # bytes free inside the heaps


@dataclass(frozen=True)
class Flatness:
    """VmRSS (the floor of each line, or the VmRSS of each rest point) over the two halves of
    a run, split at the first sample holding at least half of the committed messages."""

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


def _floor(s: Sample) -> int:
    return s.floor_kib


def _rss(s: Sample) -> int:
    return s.rss_kib


def flatness(samples: Sequence[Sample], level: Callable[[Sample], int] = _floor) -> Flatness | None:
    """The halves of the run, of `level` (KiB; the floor by default), None with fewer than 3
    samples: no middle to split at."""
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
        least_squares_slope([(s.committed / 1e6, _mib(level(s))) for s in second])
        if len(second) >= 3
        else None
    )
    return Flatness(
        split_committed=split.committed,
        first_events=split.committed - first.committed,
        second_events=last.committed - split.committed,
        start_rss_mib=_mib(level(first)),
        split_rss_mib=_mib(level(split)),
        end_rss_mib=_mib(level(last)),
        second_hwm_growth_mib=_mib(last.hwm_kib - split.hwm_kib),
        second_samples=len(second),
        second_slope_mib_per_million=slope,
    )


def rest_points(samples: Sequence[Sample]) -> list[Sample]:
    """The idle worker before producing (the first sample) and every rest point."""
    return [*samples[:1], *(s for s in samples[1:] if s.at_rest)]


def running(samples: Sequence[Sample]) -> list[Sample]:
    """The lines taken while the worker ran (and the first): the floor's series."""
    return [s for s in samples if not s.at_rest]


def rest_flatness(samples: Sequence[Sample]) -> Flatness | None:
    """VmRSS at the rest points (None with fewer than two of them after the first)."""
    return flatness(rest_points(samples), _rss)


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
    rest_every: int = 0  # messages between two rest points (0: none)


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
    rest_every: int = 0
    producer: dict[str, Any] = field(default_factory=dict)
    expected: Expected = field(default_factory=Expected)
    samples: list[Sample] = field(default_factory=list)
    flat: Flatness | None = None  # the floor of the lines taken while running
    rest: Flatness | None = None  # VmRSS at the rest points
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

    @property
    def judged(self) -> tuple[str, Flatness | None]:
        """What the flatness check judges: VmRSS at rest with rest points, else the floor."""
        if self.rest_every > 0:
            return "RSS at rest flat", self.rest
        return "RSS flat", self.flat

    def check(self) -> None:
        exp = self.expected
        what, flat = self.judged
        judged = flat.judged_mib_per_million if flat is not None else None
        self.checks = {
            "every message produced": self.producer.get("sent") == exp.messages,
            "every offset committed": self.complete and self.committed == exp.messages,
            "call_event rows = distinct valid events": self.call_event_rows == exp.distinct_valid,
            "rejected_event rows = invalid messages": self.rejected_rows == exp.invalid,
            "DLQ messages = invalid messages": self.dead_letters == exp.invalid,
            "worker stopped cleanly (SIGTERM, exit 0)": self.worker_exit == 0,
            f"{what} (second half <= {self.max_growth:g} MiB per million events)": (
                judged is not None and judged <= self.max_growth
            ),
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["mode"] = "long-run"
        data["flat"] = self.flat.to_json() if self.flat is not None else None
        data["rest"] = self.rest.to_json() if self.rest is not None else None
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


def _heap(worker: WorkerProcess) -> tuple[int | None, int | None, int | None]:
    """The worker's live heap from /metrics: Python's blocks, malloc's bytes in use (in the
    heaps and mmapped) and free (None each: not served)."""
    blocks = _gauge(worker, BLOCKS)
    heap = metric(worker, HEAP)
    in_use = heap.get('{state="in_use"}')
    mmapped = heap.get('{state="mmapped"}')
    free = heap.get('{state="free"}')
    used = None if in_use is None or mmapped is None else int(in_use + mmapped)
    return blocks, used, None if free is None else int(free)


def _rest_note(s: Sample) -> str:
    blocks = "-" if s.python_blocks is None else f"{s.python_blocks:,}"
    used = "-" if s.malloc_in_use is None else f"{s.malloc_in_use / 2**20:,.0f}"
    free = "-" if s.malloc_free is None else f"{s.malloc_free / 2**20:,.0f}"
    return f"at rest: {blocks} Python blocks, malloc {used} MiB in use + {free} MiB free"


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

    async def sample(self, now: float, at_rest: bool = False) -> Sample:
        produced, committed, _ = await self.offsets()
        pid = self._pid()
        cached = await asyncio.to_thread(_gauge, self.worker, "ringlog_cached_calls")
        opened = await asyncio.to_thread(_gauge, self.worker, "ringlog_open_calls")
        heap: tuple[int | None, int | None, int | None] = (None, None, None)
        if at_rest:
            heap = await asyncio.to_thread(_heap, self.worker)
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
            at_rest=at_rest,
            python_blocks=heap[0],
            malloc_in_use=heap[1],
            malloc_free=heap[2],
        )
        self.samples.append(sample)
        return sample

    async def rest(self) -> Sample:
        """A rest point: wait REST_S once every produced offset is committed (reading VmRSS
        every second), then the sample, with the live heap. Raises _Stopped if the worker
        exits or commits nothing more for STALL_S first."""
        idle_since: float | None = None
        progress = _Progress(-1)
        while idle_since is None or time.monotonic() - idle_since < REST_S:
            self.read_rss()
            if idle_since is None:
                _, committed, done = await self.offsets()
                now = time.monotonic()
                progress.note(committed, now)
                if done:
                    idle_since = now
                elif progress.stalled(now):
                    raise _Stopped(f"nothing more committed for {STALL_S:.0f}s at a rest point")
            if not self.worker.alive():
                raise _Stopped("the worker exited during a rest point")
            await asyncio.sleep(POLL_S)
        return await self.sample(time.monotonic(), at_rest=True)


@dataclass
class _Progress:
    """When the committed count last grew: a run that commits nothing more for STALL_S is
    given up."""

    committed: int
    at: float = field(default_factory=time.monotonic)

    def note(self, committed: int, now: float) -> None:
        if committed > self.committed:
            self.committed, self.at = committed, now

    def stalled(self, now: float) -> bool:
        return now - self.at > STALL_S


class _Stopped(Exception):
    """The run cannot go on (the worker exited, or stopped committing)."""


class _Producer:
    """The producer child process (its own process: generating events is CPU-bound Python,
    and here it would hold up the lines and share this process's GIL): its rest points, a
    queue of the messages sent at each, and its result."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.rests: asyncio.Queue[int] = asyncio.Queue()
        self.result = asyncio.create_task(self._read(), name="soak-producer")

    @classmethod
    async def start(cls, spec: ProducerSpec) -> _Producer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "benchmarks.soak",
            "--producer-child",
            spec.to_json(),
            cwd=REPO_ROOT,
            env=child_env(),
            stdin=asyncio.subprocess.PIPE,  # a line: go on after a rest point
            stdout=asyncio.subprocess.PIPE,  # its stderr (errors only) goes to ours
        )
        return cls(proc)

    async def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        result: dict[str, Any] | None = None
        async for raw in self.proc.stdout:
            line = raw.decode().strip()
            if not line.startswith("{"):
                continue
            data = json.loads(line)
            if set(data) == {"rest"}:
                self.rests.put_nowait(int(data["rest"]))
            else:
                result = data
        await self.proc.wait()
        if self.proc.returncode != 0 or result is None:
            raise RuntimeError(f"the producer process failed (exit {self.proc.returncode})")
        return result

    async def resume(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()

    async def kill(self) -> None:
        if not self.result.done():
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            with contextlib.suppress(Exception):
                await self.result


async def _consume_while_producing(
    opts: LongOptions, setup: Setup, worker: WorkerProcess, result: LongResult
) -> None:
    """Produce in the background and print a line every opts.rss_every seconds until every
    produced offset is committed (or nothing more is committed for STALL_S)."""
    await asyncio.sleep(IDLE_S)
    monitor = _Monitor(setup, worker, time.monotonic())
    say(_header())
    say(_line(await monitor.sample(monitor.started), "idle worker, before producing"))
    spec = ProducerSpec(
        opts.brokers, setup.topic, opts.events, opts.seed, opts.rate, opts.rest_every
    )
    producer = await _Producer.start(spec)
    producing = producer.result
    try:
        next_line = monitor.started + opts.rss_every
        progress = _Progress(0)
        while True:
            now = time.monotonic()
            monitor.read_rss()
            if not producer.rests.empty():
                # REST POINTS: the producer waits until the worker has idled and collected
                producer.rests.get_nowait()
                try:
                    rest = await monitor.rest()
                except _Stopped as stopped:
                    result.complete = False
                    result.note = str(stopped)
                    break
                say(_line(rest, _rest_note(rest)))
                await producer.resume()
                progress = _Progress(rest.committed)  # the rest is not a stall
                next_line = time.monotonic() + opts.rss_every  # a floor of the run, not the rest
                continue
            if producing.done():
                result.producer = producing.result()  # re-raises why producing failed
                _, committed, done = await monitor.offsets()
                if done:
                    break
                progress.note(committed, now)
            if now >= next_line:
                sample = await monitor.sample(now)
                say(_line(sample))
                next_line += opts.rss_every
                progress.note(sample.committed, now)
            if not worker.alive():
                result.complete = False
                result.note = "the worker exited during the run"
                break
            if progress.stalled(now):
                result.complete = False
                result.note = f"nothing more committed for {STALL_S:.0f}s"
                break
            await asyncio.sleep(max(0.0, min(POLL_S, next_line - time.monotonic())))
        if result.complete:
            say(_line(await monitor.sample(time.monotonic()), "every offset committed"))
            if opts.rest_every > 0:
                try:
                    rest = await monitor.rest()
                    say(_line(rest, _rest_note(rest)))
                except _Stopped as stopped:
                    result.complete = False
                    result.note = str(stopped)
    finally:
        await producer.kill()
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
        rest_every=opts.rest_every,
    )
    pace = "as fast as it can" if opts.rate is None else f"at {opts.rate:,.0f}/s"
    say(
        f"soak long run: {opts.events:,} events produced {pace} to {setup.topic} "
        f"({PARTITIONS} partitions), `ringlog worker` with {env}, a line every "
        f"{opts.rss_every:g}s; "
        + (
            f"a rest point every {opts.rest_every:,} messages and at the end (idle "
            f"{REST_S:g}s after the last commit); "
            if opts.rest_every > 0
            else "no rest points; "
        )
        + f"logs and store in {work}"
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
    result.flat = flatness(running(result.samples))
    if opts.rest_every > 0:
        result.rest = rest_flatness(result.samples)
    result.check()
    return result


def _count(worker: WorkerProcess, table: str) -> int:
    return int(worker.query(f"SELECT count() AS n FROM {table} FINAL")[0]["n"])


def _fmt(value: float | None, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.1f}{unit}"


def _halves(what: str, f: Flatness | None, hwm: bool) -> list[str]:
    if f is None:
        return [f"{what}: fewer than 3 points, no verdict (a longer run, or more points)"]
    return [
        f"{what}: idle {f.start_rss_mib:,.0f} MiB -> {f.split_rss_mib:,.0f} MiB at "
        f"{f.split_committed:,} messages -> {f.end_rss_mib:,.0f} MiB at the end",
        f"  first half  ({f.first_events:>11,} messages): {f.first_growth_mib:+,.1f} MiB = "
        f"{_fmt(f.first_mib_per_million)} MiB per million (start-up, the call cache fills)",
        f"  second half ({f.second_events:>11,} messages): {f.second_growth_mib:+,.1f} MiB = "
        f"{_fmt(f.second_mib_per_million)} MiB per million; least-squares slope over its "
        f"{f.second_samples} points {_fmt(f.second_slope_mib_per_million)} MiB per million"
        + (f"; VmHWM {f.second_hwm_growth_mib:+,.1f} MiB" if hwm else ""),
    ]


def _rest_table(samples: Sequence[Sample]) -> list[str]:
    """The rest points, one row each: VmRSS and the live heap."""
    lines = [
        f"rest points (idle {REST_S:g}s after the last commit):",
        f"  {'committed':>11} {'VmRSS MiB':>10} {'Python blocks':>14} {'malloc in use MiB':>18} "
        f"{'malloc free MiB':>16} {'cached calls':>13}",
    ]
    for s in rest_points(samples)[1:]:
        blocks = "-" if s.python_blocks is None else f"{s.python_blocks:,}"
        used = "-" if s.malloc_in_use is None else f"{s.malloc_in_use / 2**20:,.1f}"
        free = "-" if s.malloc_free is None else f"{s.malloc_free / 2**20:,.1f}"
        cached = "-" if s.cached_calls is None else f"{s.cached_calls:,}"
        lines.append(
            f"  {s.committed:>11,} {_mib(s.rss_kib):>10,.0f} {blocks:>14} {used:>18} "
            f"{free:>16} {cached:>13}"
        )
    return lines


def long_summary(r: LongResult) -> str:
    exp = r.expected
    seconds = r.samples[-1].seconds if r.samples else 0.0
    producer = r.producer
    lines = [
        "",
        "=" * 96,
        f"soak long run: {r.committed:,} of {exp.messages:,} messages committed in "
        f"{seconds:,.0f}s ({r.committed / seconds if seconds else 0:,.0f}/s overall"
        + (", rest points included); " if r.rest_every > 0 else "); ")
        + f"produced at {producer.get('rate', 0):,.0f}/s in {producer.get('seconds', 0):,.0f}s",
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
    if r.rest_every > 0:
        lines += _rest_table(r.samples)
        lines += _halves("VmRSS at rest", r.rest, hwm=False)
    lines += _halves("VmRSS floor while running", r.flat, hwm=True)
    what, judged_flat = r.judged
    judged = judged_flat.judged_mib_per_million if judged_flat is not None else None
    if judged_flat is not None:
        flat = judged is not None and judged <= r.max_growth
        lines.append(
            f"verdict ({what}): {'flat' if flat else 'NOT flat'} ({_fmt(judged)} MiB per "
            f"million events in the second half, limit {r.max_growth:g})"
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
        "--rest-every",
        type=int,
        default=None,
        metavar="MESSAGES",
        help="a rest point every MESSAGES produced (and one at the end): the producer waits "
        "until the worker has committed everything and idled "
        f"{REST_S:g}s, then its VmRSS and live heap are read, and the verdict judges VmRSS "
        f"at those points (default: an eighth of --events, none below {MIN_REST_EVERY:,}; "
        "0: none, the verdict judges the floor of every line)",
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
    rest_every = args.rest_every
    if rest_every is None:
        rest_every = args.events // REST_POINTS
        rest_every = rest_every if rest_every >= MIN_REST_EVERY else 0
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
        rest_every=rest_every,
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
                ("--rest-every", args.rest_every),
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
    if args.rest_every is not None and args.rest_every < 0:
        parser.error("--rest-every must be >= 0 (0: no rest points)")
    if args.rate is not None and args.rate <= 0:
        parser.error("--rate must be > 0")
    return _long_mode(args, list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    raise SystemExit(main())
