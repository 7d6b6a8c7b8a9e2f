"""Scale-out and rebalances: several worker processes in one group over a 6-partition topic,
sharing one store (`python -m devtools store serve`, devtools/chdb_http/). While traffic
flows, one worker is killed with SIGKILL, a new one joins, another leaves gracefully: exact rows
at the end. Also measures (and prints) how long the group takes to commit again after each
event, and how the restart cost grows with the number of calls whose state is reloaded from
call_event.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from devtools.chdb_http import ServerProcess, spawn_server
from devtools.fault_harness import (
    ZERO_RESULT,
    Setup,
    WorkerProcess,
    committed_and_end,
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

PARTITIONS = 6


@pytest.fixture
def store_server(tmp_path: Path) -> Iterator[ServerProcess]:
    server = spawn_server(tmp_path / "store")
    try:
        yield server
    finally:
        server.stop()


async def _topics(setup: Setup) -> None:
    await ensure_topic(setup.brokers, setup.topic, partitions=PARTITIONS)
    await ensure_topic(setup.brokers, setup.dlq_topic, partitions=1)


async def _position(setup: Setup) -> dict[int, int]:
    committed, ends = await committed_and_end(setup)
    return {p: committed.get(p, 0) for p in ends}


async def _committed_past(setup: Setup, before: dict[int, int], limit_s: float) -> float:
    """Seconds until every partition's committed offset is past `before` (or at its end:
    nothing left there to commit)."""

    async def past() -> bool:
        committed, ends = await committed_and_end(setup)
        return all(
            committed.get(p, 0) > before.get(p, 0) or committed.get(p, 0) >= end
            for p, end in ends.items()
        )

    return await wait_until(past, limit_s, f"the group to commit past {before}", 0.1)


async def _first_commit(worker: WorkerProcess, started_wall: float, limit_s: float) -> float:
    """Seconds from `started_wall` to the worker's first commit (its /metrics gauge)."""
    seen: list[float] = []

    def committed() -> bool:
        try:
            samples = metric(worker, "ringlog_last_commit_timestamp_seconds")
        except OSError:
            return False
        value = max(samples.values(), default=0.0)
        if value > 0:
            seen.append(value)
        return bool(seen)

    await wait_until(committed, limit_s, f"worker :{worker.port} to commit", 0.1)
    return seen[0] - started_wall


def _calls_in_store(worker: WorkerProcess) -> int:
    row = worker.query("SELECT uniqExact(project_id, call_id) AS n FROM call_event")[0]
    return int(row["n"])


async def _scale_out_run(
    setup: Setup, log_dir: Path, workers: int, calls: int, rate: float
) -> tuple[dict[str, int], dict[str, float]]:
    generated = list(
        generate_calls(calls, seed=31 + workers, invalid_share=0.02, duplicate_share=0.15,
                       oversized=0)
    )  # fmt: skip
    await _topics(setup)
    group = [WorkerProcess(setup, log_dir) for _ in range(workers)]
    figures: dict[str, float] = {}
    spare: list[WorkerProcess] = []
    try:
        for w in group:
            w.start()
        for w in group:
            await asyncio.to_thread(w.wait_ready)
        producing = asyncio.create_task(produce_all(setup, generated, rate=rate))
        await asyncio.sleep(2.5)

        # 1. SIGKILL one member mid-stream (no LeaveGroup: the group notices at its session
        #    timeout) and start a replacement at once.
        victim, survivors = group[-1], group[:-1]
        state_calls = _calls_in_store(survivors[0])
        before = await _position(setup)
        t_kill, wall_kill = time.monotonic(), time.time()
        victim.kill()
        newcomer = WorkerProcess(setup, log_dir)
        spare.append(newcomer)
        newcomer.start()
        wall_start = time.time()
        figures["kill_to_group_committed_past_s"] = await _committed_past(setup, before, 120)
        figures["newcomer_start_to_first_commit_s"] = await _first_commit(newcomer, wall_start, 120)
        figures["kill_to_newcomer_first_commit_s"] = (
            figures["newcomer_start_to_first_commit_s"] + wall_start - wall_kill
        )
        figures["calls_in_store_at_kill"] = state_calls
        assert time.monotonic() - t_kill < 120
        assert all(w.alive() for w in survivors), log_tail(log_dir)

        # 2. A graceful leave (SIGTERM: finish the batch, commit, LeaveGroup) mid-stream.
        leaver = survivors[0]
        before = await _position(setup)
        t_leave = time.monotonic()
        assert leaver.stop() == 0, log_tail(log_dir)
        figures["sigterm_exit_s"] = time.monotonic() - t_leave
        figures["leave_to_group_committed_past_s"] = (
            await _committed_past(setup, before, 120) + figures["sigterm_exit_s"]
        )
        figures["producing_still_at_leave"] = float(not producing.done())

        await producing
        await wait_drained(setup, limit_s=180)
        remaining = [w for w in [*survivors[1:], newcomer] if w.alive()]
        assert len(remaining) == workers - 1, log_tail(log_dir)
        result = verify(remaining[-1], messages_of(generated), setup)
        for w in remaining:
            assert w.stop() == 0, log_tail(log_dir)
        print(
            f"scale-out run ({workers} workers, {PARTITIONS} partitions, {calls} calls, "
            f"{len(generated)} messages at {rate:.0f}/s) -> {result}\n"
            f"  recovery figures: {figures}",
            file=sys.stderr,
        )
        return result, figures
    finally:
        for w in [*group, *spare]:
            w.kill()


@pytest.mark.parametrize("workers", [2, 3])
def test_kill_join_leave_under_traffic(
    kafka_bootstrap: str, store_server: ServerProcess, tmp_path: Path, workers: int
) -> None:
    setup = Setup(kafka_bootstrap, store_server.url, extra_env={"RINGLOG_BATCH_MAX_EVENTS": "300"})
    result, figures = asyncio.run(
        _scale_out_run(setup, tmp_path, workers=workers, calls=450, rate=250)
    )
    assert result == ZERO_RESULT
    assert figures["newcomer_start_to_first_commit_s"] > 0


# ---- recovery time against state size ---------------------------------------------------


def _split_calls(generated: Sequence[Any]) -> tuple[list[Any], list[Any], int]:
    """(first half of every call's messages, the rest, calls split): every call with
    messages in both parts must be reloaded from call_event by a worker that starts between
    the two parts."""
    by_key: dict[bytes | None, list[Any]] = defaultdict(list)
    for m in generated:
        by_key[m.key].append(m)
    first: set[int] = set()
    split = 0
    for key, msgs in by_key.items():
        if key is None or len(msgs) < 2:
            first.update(id(m) for m in msgs)
            continue
        split += 1
        first.update(id(m) for m in msgs[: len(msgs) // 2])
    phase1 = [m for m in generated if id(m) in first]
    phase2 = [m for m in generated if id(m) not in first]
    return phase1, phase2, split


async def _recovery_run(
    brokers: str, store_url: str, log_dir: Path, calls: int, cold: bool
) -> dict[str, float]:
    """Phase 1 (half of each call) is made durable; then phase 2 (the rest) is consumed by
    the same warm worker, or (cold) by a new worker that must reload every call."""
    setup = Setup(brokers, store_url, extra_env={"RINGLOG_BATCH_MAX_EVENTS": "1000"})
    generated = list(
        generate_calls(calls, seed=40 + calls, invalid_share=0.0, duplicate_share=0.1,
                       oversized=0, open_share=0.0)
    )  # fmt: skip
    phase1, phase2, split = _split_calls(generated)
    await _topics(setup)
    first = WorkerProcess(setup, log_dir)
    workers = [first]
    try:
        first.start()
        await asyncio.to_thread(first.wait_ready)
        await produce_all(setup, phase1, rate=None)
        await wait_drained(setup)
        worker = first
        if cold:
            assert first.stop() == 0
        await produce_all(setup, phase2, rate=None)  # the backlog, before the timer
        t0, wall0 = time.monotonic(), time.time()
        if cold:
            worker = WorkerProcess(setup, log_dir)
            workers.append(worker)
            worker.start()
        first_commit = await _first_commit(worker, wall0, 120) if cold else 0.0
        await wait_drained(setup, limit_s=180)
        figures = {
            "calls_reloaded" if cold else "calls_cached": float(split),
            "phase2_messages": float(len(phase2)),
            "first_commit_s": first_commit,
            "drained_s": time.monotonic() - t0,
        }
        result = verify(worker, messages_of(generated), setup)
        assert result == ZERO_RESULT, result
        assert worker.stop() == 0
        return figures
    finally:
        for w in workers:
            w.kill()


def test_recovery_time_by_state_size(
    kafka_bootstrap: str, store_server: ServerProcess, tmp_path: Path
) -> None:
    lines = []
    for calls in (100, 400):
        for cold in (False, True):
            figures = asyncio.run(
                _recovery_run(kafka_bootstrap, store_server.url, tmp_path, calls, cold)
            )
            lines.append(f"  {'cold' if cold else 'warm'} {calls} calls: {figures}")
    print("recovery time by state size (phase 2 backlog):\n" + "\n".join(lines), file=sys.stderr)
