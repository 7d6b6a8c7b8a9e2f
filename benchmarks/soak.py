"""Soak: many calls, many kill -9s of the worker, then lost / doubled / wrong rows (all must be 0).

    python -m benchmarks.soak --calls 10000 --kills 50

Runs the fault harness of tests/faults (the worker as a child process on the local Apache
Kafka and an embedded ClickHouse store): produces the calls at --rate events/s while killing
the worker with SIGKILL at random moments and restarting it, waits until every offset is
committed, then diffs every row read back with FINAL against the rows the pure core computes
from the same events. Exit status 1 if anything was lost, doubled or wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from devtools.fault_harness import Setup, crash_run
from devtools.kafka_local import kafka_up


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--calls", type=int, default=10_000, help="calls to simulate")
    parser.add_argument("--kills", type=int, default=50, help="SIGKILLs of the worker")
    parser.add_argument("--seed", type=int, default=1, help="traffic and kill-time seed")
    parser.add_argument("--rate", type=float, default=1500.0, help="events/s produced")
    parser.add_argument(
        "--batch-max-events",
        type=int,
        default=1000,
        help="worker batch size (smaller: more kills land mid-batch)",
    )
    parser.add_argument(
        "--brokers", default=None, help="Kafka bootstrap (default: start/reuse the local broker)"
    )
    args = parser.parse_args(argv)
    brokers = args.brokers or kafka_up()
    work = Path(tempfile.mkdtemp(prefix="ringlog-soak-"))
    setup = Setup(
        brokers,
        f"chdb://{work / 'store'}",
        extra_env={"RINGLOG_BATCH_MAX_EVENTS": str(args.batch_max_events)},
    )
    print(
        f"soak: {args.calls} calls, {args.kills} kills, rate {args.rate:.0f}/s, "
        f"topic {setup.topic}, logs in {work}",
        flush=True,
    )
    started = time.monotonic()
    result = asyncio.run(
        crash_run(
            setup, calls=args.calls, kills=args.kills, seed=args.seed, log_dir=work, rate=args.rate
        )
    )
    result["seconds"] = round(time.monotonic() - started)
    print(json.dumps(result, indent=2))
    bad = {k: v for k, v in result.items() if k not in ("starts", "messages", "seconds") and v}
    print(
        "RESULT:",
        "FAIL " + json.dumps(bad) if bad else "ok: nothing lost, nothing doubled, nothing wrong",
    )
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
