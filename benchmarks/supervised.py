"""`ringlog worker --processes N` as the benchmark runs it: the real command in a subprocess
(the supervisor and its N worker processes). The rate is the steady state: the messages
committed from the moment every worker is in the group (state "Stable" with N members: the
start-up rebalances are over) until the group's commits cover the topic (every row durable),
both read from Kafka itself; the time from the first assignment is reported beside it.
Peak RSS is the largest sum over the supervisor and its workers, sampled every 0.2 s. Used by
benchmarks/ingest.py (`--processes 1,2`).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
from aiokafka.admin import AIOKafkaAdminClient

from devtools.fault_harness import free_port

ROOT = Path(__file__).resolve().parents[1]
READY_TIMEOUT_S = 120.0
DRAIN_TIMEOUT_S = 900.0


@dataclass
class SupervisedFigures:
    processes: int
    messages: int = 0  # covered by the group's commits
    # Every worker in the group (start-up rebalances over) -> commits cover every offset,
    # and the messages committed in that window: the steady-state rate.
    seconds: float = 0.0
    steady_messages: int = 0
    seconds_from_first_assignment: float = 0.0  # includes the start-up rebalances
    complete: bool = True
    rss_peak_kib: int = 0  # largest sum of VmRSS over the supervisor and its workers
    rows: dict[str, int] = field(default_factory=dict)
    note: str = ""

    @property
    def rate(self) -> float:
        return self.steady_messages / self.seconds if self.seconds > 0 else 0.0


def _tree_rss_kib(pid: int) -> int:
    """VmRSS of `pid` and its direct children (the worker processes), in KiB."""
    pids = [pid]
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        pids += [int(c) for c in children]
    except OSError:
        pass
    total = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def _get(port: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())


async def _stable_members(admin: AIOKafkaAdminClient, group: str) -> int:
    """Members of the group once it is Stable (has its assignment); 0 while it is not."""
    for response in await admin.describe_consumer_groups([group]):
        for described in response.to_object()["groups"]:
            if described["state"] == "Stable":
                return len(described["members"])
    return 0


async def committed_offsets(admin: AIOKafkaAdminClient, group: str, topic: str) -> dict[int, int]:
    """The group's committed offset of each partition of `topic`, read from Kafka."""
    offsets = await admin.list_consumer_group_offsets(group)
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


async def run_supervised(
    *,
    brokers: str,
    topic: str,
    ends: dict[int, int],
    processes: int,
    clickhouse_url: str,
    database: str,
    batch_max_events: int,
) -> SupervisedFigures:
    figures = SupervisedFigures(processes)
    group = f"ringlog-bench-p{processes}-{uuid.uuid4().hex[:10]}"
    port = free_port()
    env = {
        **os.environ,
        "RINGLOG_KAFKA_BROKERS": brokers,
        "RINGLOG_TOPIC": topic,
        "RINGLOG_DLQ_TOPIC": f"{topic}.dlq.p{processes}",
        "RINGLOG_GROUP_ID": group,
        "RINGLOG_CLICKHOUSE_URL": clickhouse_url,
        "RINGLOG_DATABASE": database,
        "RINGLOG_HTTP_PORT": str(port),
        "RINGLOG_BATCH_MAX_EVENTS": str(batch_max_events),
        "RINGLOG_PROCESSES": str(processes),
        "RINGLOG_LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    command = [sys.executable, "-m", "worker.cli", "worker"]
    proc = subprocess.Popen(command, env=env, cwd=ROOT)  # noqa: ASYNC220 (once, at start)
    admin = AIOKafkaAdminClient(bootstrap_servers=brokers)
    await admin.start()
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not await _stable_members(admin, group):
            if proc.poll() is not None:
                raise RuntimeError(f"ringlog worker exited with {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError("ringlog worker did not join its group in time")
            await asyncio.sleep(0.02)
        first = time.perf_counter()
        # Steady state: from the moment every worker is in the group (the rebalances of the
        # start are over), counting only what is committed after it.
        steady: float | None = None
        before = 0
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        while True:
            figures.rss_peak_kib = max(figures.rss_peak_kib, _tree_rss_kib(proc.pid))
            if steady is None and await _stable_members(admin, group) >= processes:
                steady = time.perf_counter()
                before = sum(
                    min(off, ends.get(p, 0))
                    for p, off in (await committed_offsets(admin, group, topic)).items()
                )
            committed = await committed_offsets(admin, group, topic)
            figures.messages = sum(min(committed.get(p, 0), end) for p, end in ends.items())
            done = all(committed.get(p, 0) >= end for p, end in ends.items() if end > 0)
            if done or proc.poll() is not None or time.monotonic() > deadline:
                end_time = time.perf_counter()
                break
            await asyncio.sleep(0.05)
        if proc.poll() is not None:
            raise RuntimeError(f"ringlog worker exited with {proc.returncode}")
        if not done:
            figures.complete = False
            figures.note = f"not all committed after {DRAIN_TIMEOUT_S:.0f}s"
        figures.seconds_from_first_assignment = end_time - first
        if steady is None:
            figures.note = "drained before every worker joined: timed from the first assignment"
            steady = first
        figures.seconds = end_time - steady
        figures.steady_messages = figures.messages - before
        figures.rows = await asyncio.to_thread(_row_counts, port, database)
    finally:
        await admin.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(90)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return figures


def _row_counts(port: int, database: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for table in ("call_event", "rejected_event"):
        sql = f"SELECT count() FROM {database}.{table} FINAL"
        status, body = _get(port, "/query", sql.encode())
        if status == 200:
            counts[table] = int(orjson.loads(body)["rows"][0][0])
    return counts
