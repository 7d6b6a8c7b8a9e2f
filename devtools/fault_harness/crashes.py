"""`crash_run`: produce traffic while killing the worker with SIGKILL at random moments, then
the exact-rows result (tests/faults/test_crashes.py, benchmarks/soak.py)."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

from devtools.fault_harness.expected import (
    compare,
    event_counts,
    expected_rows,
    messages_of,
    totals,
)
from devtools.fault_harness.kafka import wait_drained
from devtools.fault_harness.setup import Setup
from devtools.fault_harness.worker_process import WorkerProcess
from devtools.producer import ensure_topic, produce
from devtools.traffic import generate_calls
from worker.core.rates import load_rate_plan


async def crash_run(
    setup: Setup, calls: int, kills: int, seed: int, log_dir: Path, rate: float = 1500.0
) -> dict[str, int]:
    """Produce `calls` calls at `rate` events/s while killing the worker `kills` times."""
    generated = list(
        generate_calls(calls, seed=seed, invalid_share=0.02, duplicate_share=0.15, oversized=0)
    )
    messages = messages_of(generated)
    await ensure_topic(setup.brokers, setup.topic, partitions=4)
    await ensure_topic(setup.brokers, setup.dlq_topic, partitions=1)
    worker = WorkerProcess(setup, log_dir)
    rnd = random.Random(seed)
    worker.start()
    try:
        producing = asyncio.create_task(
            produce(generated, brokers=setup.brokers, topic=setup.topic, rate=rate, progress=False)
        )
        # Kill at random moments over the production window: while it consumes, mid-batch,
        # during an insert, or while it is still starting (joining the group).
        window = len(messages) / rate
        for _ in range(kills):
            await asyncio.sleep(rnd.uniform(0.3, max(0.6, 2 * window / max(1, kills))))
            worker.kill()
            worker.start()
        await producing
        if not worker.alive():
            worker.start()
        await asyncio.to_thread(worker.wait_ready)
        await wait_drained(setup)
        expected, distinct, rejected = expected_rows(messages, load_rate_plan(setup.rates_file))
        report = compare(worker, expected)
        events, doubled_events, rejects = event_counts(worker)
        assert worker.stop() == 0
    finally:
        worker.kill()  # never leave a worker behind when an assertion fails
    result = totals(report)
    result["call_event_lost"] = distinct - events
    result["call_event_doubled"] = doubled_events
    result["rejected_lost"] = rejected - rejects
    result["starts"] = worker.starts
    print(
        f"crash run: {calls} calls, {len(messages)} messages, {kills} kills -> {result}",
        file=sys.stderr,
    )
    return result
