"""The event loop's per-event work, best of several passes: for telling two builds of the hot
path apart on a noisy host (where `benchmarks.ingest` cannot see a few percent).

`benchmarks.stages` times each stage once, as the worker runs them, with ClickHouse; this one
repeats the loop's own pure stages on generated traffic (no Kafka, no ClickHouse) and keeps
the best and the median pass, in CPU of the calling thread per event:

- baseline: `orjson.loads` of every message (the ceiling's own per-event work, as in (a));
- decode: `BatchPlanner.decode` of every batch;
- decode+plan: decode then `BatchPlanner.plan` of every batch into a fresh planner, each
  batch freed two batches later (as the worker's RELEASE does);
- unpack: every cached call's packed events made into events again (a batch does this for
  each call it touches that rests packed).

Compare two builds of `ringlog_native` by alternating them, e.g. with a copy of an older
build's package directory first on the path:

    python -m benchmarks.hot_path [--events 100000] [--passes 9] [--json]
    PYTHONPATH=/tmp/old-build python -m benchmarks.hot_path
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

import orjson

from benchmarks.stages import add_traffic_options
from devtools.planner_load import as_records
from devtools.traffic import generate_events
from worker.core.batch_plan import BatchPlanner, Decoded, Plan
from worker.core.event_pack import unpack
from worker.core.native_fast_path import NATIVE_MODULE
from worker.core.rates import load_rate_plan
from worker.core.record import Record
from worker.service.process_tuning import tune_process

CACHE_CALLS = 500_000
TIMEOUT = timedelta(hours=4)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hot_path",
        description="CPU per event of the event loop's pure stages, best of several passes.",
    )
    add_traffic_options(parser, events=100_000)
    parser.add_argument("--passes", type=int, default=9, help="passes per stage (9)")
    opts = parser.parse_args(argv)
    if opts.events < 1 or opts.batch < 1 or opts.passes < 1:
        parser.error("--events, --batch and --passes must be >= 1")

    records = as_records(generate_events(opts.events, seed=opts.seed, invalid_share=0.02))
    batches = [records[at : at + opts.batch] for at in range(0, len(records), opts.batch)]
    tune_process()  # as the worker does at start
    n = len(records)
    stages: dict[str, list[float]] = {
        "baseline": _passes(opts.passes, n, lambda: _loads(records)),
        "decode": _passes(opts.passes, n, _decoding(batches)),
        "decode+plan": _passes(opts.passes, n, lambda: _decode_and_plan(batches)),
    }
    calls = _packed_calls(batches)
    unpacked = sum(len(unpack(packed, key)) for key, packed in calls)
    stages["unpack"] = _passes(opts.passes, unpacked, lambda: _unpack(calls))

    native = NATIVE_MODULE.__file__ if NATIVE_MODULE is not None else "not built"
    print(f"{n:,} events in batches of {opts.batch:,}, {opts.passes} passes; native: {native}")
    print(f"CPU of this thread per event (unpack: per unpacked event, {unpacked:,} of them):")
    base = min(stages["baseline"])
    for stage, figures in stages.items():
        best, median = min(figures), statistics.median(figures)
        print(f"  {stage:12s} best {best:6.2f} us  median {median:6.2f} us  {best / base:5.2f}")
    if opts.json:
        out = {
            "events": n,
            "passes": opts.passes,
            "native": native,
            "unpacked_events": unpacked,
            "best_us": {k: min(v) for k, v in stages.items()},
            "median_us": {k: statistics.median(v) for k, v in stages.items()},
        }
        sys.stdout.write(json.dumps(out) + "\n")
    return 0


def _passes(passes: int, per: int, run: Callable[[], object]) -> list[float]:
    """Thread CPU per item of each pass of `run`, in microseconds."""
    figures = []
    for _ in range(passes):
        started = time.thread_time()
        run()
        figures.append((time.thread_time() - started) / per * 1e6)
    return figures


def _loads(records: Sequence[Record]) -> None:
    for record in records:
        with contextlib.suppress(orjson.JSONDecodeError):
            orjson.loads(record.value or b"")


def _decoding(batches: Sequence[Sequence[Record]]) -> Callable[[], None]:
    planner = BatchPlanner(load_rate_plan(None), TIMEOUT, CACHE_CALLS)

    def run() -> None:
        for batch in batches:
            planner.decode(batch)

    return run


def _decode_and_plan(batches: Sequence[Sequence[Record]]) -> None:
    planner = BatchPlanner(load_rate_plan(None), TIMEOUT, CACHE_CALLS)
    held: list[tuple[Decoded, Plan]] = []
    for batch in batches:
        decoded = planner.decode(batch)
        held.append((decoded, planner.plan(decoded, [], datetime.now(UTC))))
        if len(held) > 2:
            held.pop(0)  # freed two batches later, as the worker's RELEASE


def _packed_calls(batches: Sequence[Sequence[Record]]) -> list[tuple[tuple[str, str], bytes]]:
    """Every call of the traffic, packed as it rests between batches."""
    planner = BatchPlanner(load_rate_plan(None), TIMEOUT, CACHE_CALLS)
    for batch in batches:
        planner.plan(planner.decode(batch), [], datetime.now(UTC))
    planner.rest()
    return [(key, state.packed) for key, state in planner.cache.items()]


def _unpack(calls: Sequence[tuple[tuple[str, str], bytes]]) -> None:
    for key, packed in calls:
        unpack(packed, key)


if __name__ == "__main__":
    raise SystemExit(main())
