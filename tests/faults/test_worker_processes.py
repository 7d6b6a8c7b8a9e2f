"""`ringlog worker --processes N`: one supervisor, N worker processes in one consumer group,
the embedded store served by the supervisor (worker/service/supervisor.py).

Real Kafka and chDB: traffic through 2 worker processes gives exactly the rows of the pure
core; both processes own partitions and report through the one HTTP endpoint; a worker that
dies takes the set down with a non-zero exit (no orphan left consuming); SIGTERM stops all.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.fault_harness import (
    ZERO_RESULT,
    Setup,
    WorkerProcess,
    health,
    log_tail,
    messages_of,
    metric,
    produce_all,
    verify,
    wait_drained,
    wait_until,
)
from devtools.producer import ensure_topic
from devtools.traffic import generate_calls

pytestmark = pytest.mark.kafka

PARTITIONS = 4


@pytest.fixture
def setup(kafka_bootstrap: str, tmp_path: Path) -> Setup:
    return Setup(
        kafka_bootstrap,
        f"chdb://{tmp_path / 'store'}",
        extra_env={
            "RINGLOG_PROCESSES": "2",
            "RINGLOG_BATCH_MAX_EVENTS": "300",
            "RINGLOG_LOG_LEVEL": "INFO",  # the supervisor logs its workers pids
        },
    )


@pytest.fixture
def supervisor(setup: Setup, tmp_path: Path) -> Iterator[WorkerProcess]:
    asyncio.run(ensure_topic(setup.brokers, setup.topic, partitions=PARTITIONS))
    asyncio.run(ensure_topic(setup.brokers, setup.dlq_topic, partitions=1))
    proc = WorkerProcess(setup, tmp_path)
    proc.start()
    try:
        proc.wait_ready(limit_s=120)
        yield proc
    finally:
        proc.stop()


def _worker_pids(log_dir: Path) -> dict[int, int]:
    """{worker number: pid} from the supervisor's log ("started worker process N (pid P)")."""
    text = "".join(p.read_text(errors="replace") for p in log_dir.glob("worker-*.log"))
    return {int(n): int(pid) for n, pid in re.findall(r"worker process (\d+) \(pid (\d+)\)", text)}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "State:\tZ" in status.read_text())


def test_two_processes_write_exactly_the_rows(
    setup: Setup, supervisor: WorkerProcess, tmp_path: Path
) -> None:
    generated = list(generate_calls(300, seed=71, invalid_share=0.02, duplicate_share=0.15))
    asyncio.run(produce_all(setup, generated, rate=None))
    asyncio.run(wait_drained(setup, limit_s=180))

    assert verify(supervisor, messages_of(generated), setup) == ZERO_RESULT

    # Both processes own partitions and wrote events; each series carries its process.
    written = metric(supervisor, "ringlog_rows_written_total")
    per_process = {
        n: sum(v for k, v in written.items() if f'process="{n}"' in k and "call_event" in k)
        for n in (1, 2)
    }
    assert all(count > 0 for count in per_process.values()), written
    lag = metric(supervisor, "ringlog_consumer_lag_messages")
    owned = {re.search(r'partition="(\d+)"', k).group(1) for k in lag}  # type: ignore[union-attr]
    assert owned == {str(p) for p in range(PARTITIONS)}, lag
    status, body = health(supervisor)
    assert (status, body["healthy"], body["reasons"]) == (200, True, []), body


def test_a_dead_worker_stops_the_set_and_sigterm_stops_all(
    setup: Setup, supervisor: WorkerProcess, tmp_path: Path
) -> None:
    pids = _worker_pids(tmp_path)
    assert sorted(pids) == [1, 2], log_tail(tmp_path)
    os.kill(pids[1], 9)
    asyncio.run(wait_until(lambda: not supervisor.alive(), 90, "the supervisor to exit"))
    assert supervisor.proc is not None and supervisor.proc.returncode not in (0, None)
    assert not _alive(pids[2]), "the other worker process was left running"


def test_sigterm_stops_every_process(supervisor: WorkerProcess, tmp_path: Path) -> None:
    pids = _worker_pids(tmp_path)
    assert supervisor.stop() == 0, log_tail(tmp_path)
    assert not any(_alive(pid) for pid in pids.values())
