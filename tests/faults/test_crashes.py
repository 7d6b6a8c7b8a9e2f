"""kill -9 the worker at random moments while traffic flows; restart; exact rows at the end."""

from __future__ import annotations

import asyncio
import random
import sys
from pathlib import Path

import pytest

from tests.faults.harness import (
    Setup,
    WorkerProcess,
    compare,
    event_counts,
    expected_rows,
    messages_of,
    totals,
    wait_drained,
)
from worker.producer import ensure_topic, produce
from worker.rates import load_rate_plan
from worker.traffic import generate_calls

pytestmark = pytest.mark.kafka


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


def test_kill_9_three_times_over_500_calls(kafka_bootstrap: str, tmp_path: Path) -> None:
    setup = Setup(
        kafka_bootstrap,
        f"chdb://{tmp_path / 'store'}",
        extra_env={"RINGLOG_BATCH_MAX_EVENTS": "300"},
    )
    result = asyncio.run(crash_run(setup, calls=500, kills=3, seed=5, log_dir=tmp_path))
    assert result["starts"] == 4
    assert {k: v for k, v in result.items() if k != "starts"} == {
        "lost": 0,
        "unexpected": 0,
        "doubled": 0,
        "wrong": 0,
        "call_event_lost": 0,
        "call_event_doubled": 0,
        "rejected_lost": 0,
    }
