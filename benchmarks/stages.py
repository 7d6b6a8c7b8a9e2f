"""CPU per event of each stage of the worker's hot path, without Kafka: the profile that
chooses what to make faster (issue 12). Prints the calling thread's CPU per event of each
stage, the whole process's over each stage (chDB works in its own threads too, and merges in
the background), and the whole process's over the run.

Stages, as the pipeline runs them per batch: decode (`BatchPlanner.decode`), load (the reload
of uncached calls from call_event), plan (`BatchPlanner.plan`), then the inserts
(rejected_event, call_event, the rows tables). The baseline measured in the same run is
`orjson.loads` of every message, the ceiling's own per-event work.

    python -m benchmarks.stages --events 200000 [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson

from devtools.planner_load import as_records
from devtools.traffic import generate_events
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.core.batch_plan import BatchPlanner
from worker.core.rates import load_rate_plan
from worker.service.process_tuning import tune_process


def add_traffic_options(parser: argparse.ArgumentParser, *, events: int) -> None:
    """The generated traffic's options (this benchmark's and `benchmarks.hot_path`'s)."""
    parser.add_argument("--events", type=int, default=events, help=f"events ({events})")
    parser.add_argument("--batch", type=int, default=20_000, help="events per batch (20000)")
    parser.add_argument("--seed", type=int, default=1, help="traffic generator seed")
    parser.add_argument("--json", action="store_true", help="also print a JSON line")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.stages",
        description="CPU per event of each stage of the worker's hot path (no Kafka).",
    )
    add_traffic_options(parser, events=200_000)
    opts = parser.parse_args(argv)
    if opts.events < 1 or opts.batch < 1:
        parser.error("--events and --batch must be >= 1")

    records = as_records(generate_events(opts.events, seed=opts.seed, invalid_share=0.02))
    n = len(records)
    t0 = time.thread_time()
    for record in records:
        with contextlib.suppress(orjson.JSONDecodeError):
            orjson.loads(record.value or b"")
    baseline = time.thread_time() - t0

    store = ClickHouseStore(f"chdb://{tempfile.mkdtemp(prefix='ringlog-stages-')}", "bench")
    store.migrate()
    tune_process()  # as the worker does at start
    planner = BatchPlanner(load_rate_plan(None), timedelta(hours=4), 500_000)
    spent: dict[str, float] = {}
    # The whole process's CPU over each stage: chDB's own threads too, and its background
    # merges of earlier inserts when they run meanwhile.
    spent_process: dict[str, float] = {}

    @contextlib.contextmanager
    def timed(stage: str) -> Iterator[None]:
        started, started_process = time.thread_time(), time.process_time()
        yield
        spent[stage] = spent.get(stage, 0.0) + time.thread_time() - started
        spent_process[stage] = spent_process.get(stage, 0.0) + time.process_time() - started_process

    process0, wall0 = time.process_time(), time.perf_counter()
    for first in range(0, n, opts.batch):
        batch = records[first : first + opts.batch]
        with timed("decode"):
            decoded = planner.decode(batch)
        with timed("load"):
            stored = store.load_call_events(decoded.missing)
        reloaded = [(p, c, payload) for p, c, payload, *_ in stored]
        with timed("plan"):
            plan = planner.plan(decoded, reloaded, datetime.now(UTC))
        with timed("insert rejected_event"):
            store.insert("rejected_event", plan.rejected_rows)
        with timed("insert call_event"):
            store.insert("call_event", plan.event_rows)
        for table, rows in plan.tables.items():
            with timed("insert rows"):
                store.insert(str(table), rows)
    process = time.process_time() - process0
    wall = time.perf_counter() - wall0
    store.close()

    total = sum(spent.values())
    print(f"{n:,} events, batches of {opts.batch:,}; CPU per event of the calling thread")
    print("(and of the whole process over the same spans, chDB's threads included):")
    print(f"  {'orjson.loads (baseline)':24s} {baseline / n * 1e6:7.2f} us   1.00")
    for stage, seconds in spent.items():
        process_us = spent_process[stage] / n * 1e6
        print(
            f"  {stage:24s} {seconds / n * 1e6:7.2f} us  {seconds / baseline:5.2f}"
            f"   (process {process_us:6.2f} us)"
        )
    print(f"  {'total':24s} {total / n * 1e6:7.2f} us  {total / baseline:5.2f}")
    print(f"whole process CPU {process / n * 1e6:.2f} us/event (chDB threads included)")
    print(f"wall {wall / n * 1e6:.2f} us/event = {n / wall:,.0f} events/s on this thread")
    if opts.json:
        figures = {k: v / n * 1e6 for k, v in spent.items()}
        out = {
            "events": n,
            "baseline_us": baseline / n * 1e6,
            "stages_us": figures,
            "stages_process_us": {k: v / n * 1e6 for k, v in spent_process.items()},
            "process_us": process / n * 1e6,
        }
        sys.stdout.write(json.dumps(out) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
