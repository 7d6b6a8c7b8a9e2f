"""Stop the Kafka broker mid-stream (no purge), start it again: the worker reconnects on its
own, loses nothing and doubles nothing.

Runs on a PRIVATE broker (deploy/kafka.sh with its own home and ports), never the shared one.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.fault_harness import (
    ZERO_RESULT,
    LocalBroker,
    Setup,
    WorkerProcess,
    health,
    log_tail,
    messages_of,
    produce_all,
    verify,
    wait_drained,
)
from devtools.producer import ensure_topic
from devtools.traffic import generate_calls

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(tmp_path_factory.mktemp("own-kafka"))
    broker.up()
    try:
        yield broker
    finally:
        broker.down(purge=True)


async def _broker_restart_run(broker: LocalBroker, tmp_path: Path) -> dict[str, int]:
    setup = Setup(
        broker.bootstrap,
        f"chdb://{tmp_path / 'store'}",
        extra_env={
            "RINGLOG_BATCH_MAX_EVENTS": "200",
            # lag with no commit for this long turns /health 503 (the broker outage)
            "RINGLOG_HEALTH_STALL_SECONDS": "3",
        },
    )
    generated = list(
        generate_calls(400, seed=11, invalid_share=0.02, duplicate_share=0.15, oversized=0)
    )
    half = len(generated) // 2
    await ensure_topic(setup.brokers, setup.topic, partitions=4)
    await ensure_topic(setup.brokers, setup.dlq_topic, partitions=1)
    worker = WorkerProcess(setup, tmp_path)
    worker.start()
    try:
        await asyncio.to_thread(worker.wait_ready)
        # First half as a stream; the broker goes down right after the producer pauses,
        # while the worker is still consuming / writing / committing that stream.
        await produce_all(setup, generated[:half], rate=2000)
        t_down = time.monotonic()
        await asyncio.to_thread(broker.down)
        print(f"broker stopped in {time.monotonic() - t_down:.1f}s", file=sys.stderr)
        statuses: list[tuple[int, list[str]]] = []
        for _ in range(16):  # ~8 s with the broker away
            await asyncio.sleep(0.5)
            assert worker.alive(), "worker died while Kafka was down\n" + log_tail(tmp_path)
            status, body = health(worker)
            statuses.append((status, list(body.get("reasons", []))))
        print(f"/health while Kafka was down: {statuses[-1]}", file=sys.stderr)
        assert worker.alive()
        await asyncio.to_thread(broker.up)
        await produce_all(setup, generated[half:], rate=2000)
        await wait_drained(setup, limit_s=180)
        assert worker.alive(), "worker died after Kafka came back\n" + log_tail(tmp_path)
        assert worker.starts == 1
        result = verify(worker, messages_of(generated), setup)
        print(f"kafka restart run: {len(generated)} messages -> {result}", file=sys.stderr)
        assert worker.stop() == 0
        return result
    finally:
        worker.kill()


def test_worker_reconnects_after_broker_restart(own_broker: LocalBroker, tmp_path: Path) -> None:
    result = asyncio.run(_broker_restart_run(own_broker, tmp_path))
    assert result == ZERO_RESULT
