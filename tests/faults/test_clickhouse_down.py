"""ClickHouse unavailable mid-stream: the worker stays up, commits nothing that is not
durable, reports 503 on /health, and catches up with exact rows when the store returns.

(a) a real HTTP store (`python -m devtools store serve`, devtools/chdb_http/) that is stopped and
    started again on the same path and port;
(b) the embedded store with the injected fault (devtools.fault_injection, installed by
`python -m devtools worker --store-down-while FILE`).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.chdb_http import ServerProcess, spawn_server
from devtools.fault_harness import (
    ZERO_RESULT,
    Setup,
    WorkerProcess,
    committed_and_end,
    health,
    log_tail,
    messages_of,
    produce_all,
    verify,
    wait_drained,
    wait_until,
)
from devtools.producer import ensure_topic
from devtools.traffic import generate_calls

pytestmark = pytest.mark.kafka

STORE_DOWN_SECONDS = 5.0


async def _outage_run(
    setup: Setup,
    log_dir: Path,
    take_down: Callable[[], None],
    bring_back: Callable[[], None],
    seed: int,
) -> dict[str, int]:
    generated = list(
        generate_calls(450, seed=seed, invalid_share=0.02, duplicate_share=0.15, oversized=0)
    )
    third = len(generated) // 3
    await ensure_topic(setup.brokers, setup.topic, partitions=4)
    await ensure_topic(setup.brokers, setup.dlq_topic, partitions=1)
    worker = WorkerProcess(setup, log_dir)
    worker.start()
    try:
        await asyncio.to_thread(worker.wait_ready)
        # The store goes away while the first third streams in (the worker mid-stream).
        producing = asyncio.create_task(produce_all(setup, generated[:third], rate=1500))
        await asyncio.sleep(0.8)
        await asyncio.to_thread(take_down)
        await producing
        # Let a commit whose writes finished just before the outage land, then take the
        # group's position: nothing may be committed past it while the store is away.
        await asyncio.sleep(1.0)
        before, _ = await committed_and_end(setup)
        await produce_all(setup, generated[third : 2 * third], rate=None)
        waited = await wait_until(
            lambda: health(worker)[0] == 503, 60, "/health to turn 503 while ClickHouse is down"
        )
        _, body = health(worker)
        print(f"/health 503 after {waited:.1f}s: {body.get('reasons')}", file=sys.stderr)
        assert any("ClickHouse" in r for r in body.get("reasons", [])), body
        t0 = time.monotonic()
        while time.monotonic() - t0 < STORE_DOWN_SECONDS:
            assert worker.alive(), "worker died while ClickHouse was down\n" + log_tail(log_dir)
            committed, ends = await committed_and_end(setup)
            assert committed == before, f"committed {committed} moved past {before} while down"
            await asyncio.sleep(0.5)
        assert any(ends[p] > before.get(p, 0) for p in ends), "no backlog built up while down"
        await asyncio.to_thread(bring_back)
        await produce_all(setup, generated[2 * third :], rate=2000)
        await wait_drained(setup, limit_s=180)
        await wait_until(lambda: health(worker)[0] == 200, 60, "/health to turn 200 again")
        assert worker.alive() and worker.starts == 1, log_tail(log_dir)
        result = verify(worker, messages_of(generated), setup)
        print(f"clickhouse outage run: {len(generated)} messages -> {result}", file=sys.stderr)
        assert worker.stop() == 0
        return result
    finally:
        worker.kill()


def test_http_store_stopped_and_restarted(kafka_bootstrap: str, tmp_path: Path) -> None:
    path = tmp_path / "store"
    servers: list[ServerProcess] = [spawn_server(path)]
    port = servers[0].port

    def take_down() -> None:
        servers[-1].stop()

    def bring_back() -> None:
        servers.append(spawn_server(path, port=port))

    setup = Setup(
        kafka_bootstrap,
        servers[0].url,
        extra_env={"RINGLOG_BATCH_MAX_EVENTS": "300", "RINGLOG_HEALTH_MAX_FAILURES": "2"},
    )
    try:
        result = asyncio.run(_outage_run(setup, tmp_path, take_down, bring_back, seed=21))
    finally:
        for server in servers:
            server.stop()
    assert result == ZERO_RESULT


def test_embedded_store_injected_fault(kafka_bootstrap: str, tmp_path: Path) -> None:
    fault = tmp_path / "store-down"
    setup = Setup(
        kafka_bootstrap,
        f"chdb://{tmp_path / 'store'}",
        extra_env={"RINGLOG_BATCH_MAX_EVENTS": "300", "RINGLOG_HEALTH_MAX_FAILURES": "2"},
        store_down_file=fault,
    )
    result = asyncio.run(_outage_run(setup, tmp_path, fault.touch, lambda: fault.unlink(), seed=22))
    assert result == ZERO_RESULT
