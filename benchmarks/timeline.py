"""Where each batch's time goes, thread by thread: the ingest benchmark's worker (as `ringlog
worker` starts it, in its own process as `benchmarks.ingest` runs it, or with `--in-process` in
this one) with every stage timed on the thread that runs it. The tool that found the writer's
GIL waits and page faults and the free between two batches (README "Performance",
2026-12-04).

Per stage, on its own thread: wall time, CPU time (`time.thread_time`) and minor page faults
(`getrusage(RUSAGE_THREAD)`). A stage whose wall time is well above its CPU waited: for the
GIL, for another thread's query, or for pages. The loop's async stages (fetch, prepare, drain,
commit) count the thread's CPU over the whole span, so theirs includes what the loop ran
meanwhile (a commit's covers the plan it waited behind). The stages: the loop's fetch, decode,
reload (in a thread), plan (made while the reload runs), complete (the plan finished with
what the reload found), drain (the wait for the batch in flight) and commit; the writer's
whole run of inserts and each insert; ClickHouse's own query inside each (`chq`); the start of
the writer (`wstart`); on the loop, the whole of `PlanWriter.finish` (`finish`: from the
writer's start to durable) and the dead letters' send with its acks (`dlq`). Prints the steady
batches' means (the first two batches warm the caches and the allocators up), and with `--out
PATH` every timed span, one per line.

    python -m benchmarks.timeline --events 200000 [--out /tmp/timeline.txt] [--in-process]

The instrumentation wraps methods of the worker's classes for the length of the run (timing
only: the same calls, arguments and results). In the worker's own process it is installed by
`benchmarks.ingest`'s worker child when SPANS_ENV names a file for the spans.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import resource
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any

from benchmarks import ingest
from worker.adapters.clickhouse import store as clickhouse_store
from worker.adapters.kafka import dead_letters
from worker.core import batch_plan
from worker.pipeline import batch_preparer, consume_loop, plan_writer

SPANS_ENV = "RINGLOG_BENCH_TIMELINE_SPANS"
"""Set for the worker child of `benchmarks.ingest`: the file it writes its spans to."""


@dataclass(frozen=True)
class Span:
    stage: str
    thread: str
    start: float
    end: float
    cpu: float
    faults: int
    note: str

    @property
    def wall(self) -> float:
        return self.end - self.start


class Recorder:
    """Timed spans, from any thread."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self._lock = threading.Lock()

    @contextmanager
    def span(self, stage: str, note: str = "") -> Iterator[None]:
        faults0 = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        cpu0, start = time.thread_time(), time.perf_counter()
        try:
            yield
        finally:
            end, cpu = time.perf_counter(), time.thread_time() - cpu0
            faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults0
            span = Span(stage, threading.current_thread().name, start, end, cpu, faults, note)
            with self._lock:
                self.spans.append(span)


def _wrap_sync(
    stack: ExitStack, rec: Recorder, owner: Any, name: str, stage: str, note: Callable[..., str]
) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    def timed(*args: Any, **kwargs: Any) -> Any:
        with rec.span(stage, note(*args)):
            return original(*args, **kwargs)

    setattr(owner, name, timed)
    stack.callback(setattr, owner, name, original)


def _wrap_async(stack: ExitStack, rec: Recorder, owner: Any, name: str, stage: str) -> None:
    original = getattr(owner, name)

    @functools.wraps(original)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        with rec.span(stage):
            return await original(*args, **kwargs)

    setattr(owner, name, timed)
    stack.callback(setattr, owner, name, original)


def _none(*_args: Any) -> str:
    return ""


def _table_rows(_self: Any, table: str, rows: Any, *_rest: Any) -> str:
    return f"{table}:{len(rows)}"


def instrument(stack: ExitStack, rec: Recorder) -> None:
    """Time the pipeline's stages (undone when `stack` closes)."""
    loop_cls = consume_loop.ConsumeLoop
    _wrap_async(stack, rec, loop_cls, "_fetch", "fetch")
    _wrap_async(stack, rec, loop_cls, "_drain", "drain")
    _wrap_async(stack, rec, loop_cls, "_commit", "commit")
    _wrap_async(stack, rec, batch_preparer.BatchPreparer, "prepare", "prepare")
    planner = batch_plan.BatchPlanner
    _wrap_sync(stack, rec, planner, "decode", "decode", _none)
    # `plan` is `plan_ahead` then `complete`; the preparer calls those two around the reload.
    _wrap_sync(stack, rec, planner, "plan_ahead", "plan", _none)
    _wrap_sync(stack, rec, planner, "complete", "complete", _none)
    _wrap_sync(stack, rec, plan_writer.PlanWriter, "start", "wstart", _none)
    _wrap_async(stack, rec, plan_writer.PlanWriter, "finish", "finish")
    _wrap_async(stack, rec, dead_letters.DeadLetterProducer, "send", "dlq")
    _wrap_sync(stack, rec, plan_writer._Inserts, "run", "inserts", _none)
    store = clickhouse_store.ClickHouseStore
    _wrap_sync(stack, rec, store, "insert", "insert", _table_rows)
    _wrap_sync(
        stack, rec, store, "load_call_events", "reload", lambda _s, keys: f"{len(keys)} calls"
    )
    try:  # ClickHouse's own query, inside clickhouse-connect's chDB backend
        from clickhouse_connect.driver._backend import chdb_backend
    except ImportError:  # another clickhouse-connect: no per-query spans
        return
    _wrap_sync(
        stack,
        rec,
        chdb_backend.ChdbBackend,
        "_run",
        "chq",
        lambda _s, sql, *_r: " ".join(str(sql).split()[:3])[:40],
    )


def steady_means(
    spans: list[Span], skip_batches: int = 2
) -> dict[str, tuple[int, float, float, float]]:
    """stage -> (count, mean wall s, mean CPU s, mean faults) of the spans after the first
    `skip_batches` fetches of the run, up to its last commit (not the benchmark's checks)."""
    fetches = sorted(s.start for s in spans if s.stage == "fetch")
    since = fetches[skip_batches] if len(fetches) > skip_batches else 0.0
    until = max((s.end for s in spans if s.stage == "commit"), default=float("inf"))
    sums: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0, 0.0])
    for s in spans:
        if since <= s.start <= until:
            acc = sums[s.stage]
            acc[0] += 1
            acc[1] += s.wall
            acc[2] += s.cpu
            acc[3] += s.faults
    return {k: (int(v[0]), v[1] / v[0], v[2] / v[0], v[3] / v[0]) for k, v in sums.items()}


def report(spans: list[Span]) -> str:
    means = steady_means(spans)
    lines = [
        "steady batches (after the first two), per span: count, wall, CPU on its thread, faults",
        f"{'stage':10s} {'count':>6s} {'wall ms':>9s} {'cpu ms':>9s} {'faults':>8s}",
    ]
    order = [
        "fetch",
        "prepare",
        "decode",
        "reload",
        "plan",
        "complete",
        "drain",
        "finish",
        "dlq",
        "commit",
    ]
    order += ["wstart"]
    order += ["inserts", "insert", "chq"]
    for stage in order + sorted(set(means) - set(order)):
        if stage in means:
            count, wall, cpu, faults = means[stage]
            lines.append(
                f"{stage:10s} {count:6d} {1000 * wall:9.1f} {1000 * cpu:9.1f} {faults:8.0f}"
            )
    return "\n".join(lines)


def save_spans(spans: list[Span], path: str) -> None:
    """The spans as JSON lines (the worker child hands them over so)."""
    with open(path, "w", encoding="utf-8") as out:
        for s in spans:
            out.write(json.dumps([s.stage, s.thread, s.start, s.end, s.cpu, s.faults, s.note]))
            out.write("\n")


def load_spans(path: str) -> list[Span]:
    with open(path, encoding="utf-8") as lines:
        return [Span(*json.loads(line)) for line in lines if line.strip()]


def write_spans(spans: list[Span], path: str) -> None:
    fetches = [s.start for s in spans if s.stage == "fetch"]
    base = min(fetches) if fetches else 0.0
    with open(path, "w", encoding="utf-8") as out:
        out.write("start_s end_s wall_s thread stage cpu_s faults note\n")
        for s in sorted(spans, key=lambda s: s.start):
            out.write(
                f"{s.start - base:8.3f} {s.end - base:8.3f} {s.wall:7.3f} {s.thread[:12]:12s} "
                f"{s.stage:8s} {s.cpu:6.3f} {s.faults:6d} {s.note}\n"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.timeline",
        description="Each batch's stages, thread by thread: the ingest benchmark's worker (in "
        "its own process, or --in-process), every stage timed (wall, CPU, page faults).",
    )
    parser.add_argument("--events", type=int, default=200_000, help="events (200000)")
    parser.add_argument("--brokers", default=None, help="Kafka bootstrap servers")
    parser.add_argument("--out", default=None, help="write every span to PATH")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run the worker in this process (default: its own, as benchmarks.ingest does)",
    )
    opts = parser.parse_args(argv)
    if opts.events < 1:
        parser.error(f"--events must be at least 1, not {opts.events}")
    args = ["--events", str(opts.events), "--skip-faust", "--skip-quix"]
    args += ["--processes", "", "--no-progress"]
    if opts.brokers:
        args += ["--brokers", opts.brokers]
    if opts.in_process:
        rec = Recorder()
        with ExitStack() as stack:
            instrument(stack, rec)
            result = ingest.main([*args, "--in-process"])
        spans = rec.spans
    else:
        fd, path = tempfile.mkstemp(prefix="ringlog-timeline-", suffix=".jsonl")
        os.close(fd)
        os.environ[SPANS_ENV] = path
        try:
            result = ingest.main(args)
            spans = load_spans(path)
        finally:
            del os.environ[SPANS_ENV]
            os.unlink(path)
    print()
    print(report(spans))
    if opts.out:
        write_spans(spans, opts.out)
        print(f"every span: {opts.out}")
    return 0 if result is not None and result.accounted_for else 1


@contextmanager
def spans_to_file_if_asked() -> Iterator[None]:
    """In `benchmarks.ingest`'s worker child: time the stages and save the spans to the file
    SPANS_ENV names, if it names one."""
    path = os.environ.get(SPANS_ENV)
    if not path:
        yield
        return
    rec = Recorder()
    with ExitStack() as stack:
        instrument(stack, rec)
        try:
            yield
        finally:
            save_spans(rec.spans, path)


if __name__ == "__main__":
    sys.exit(main())
