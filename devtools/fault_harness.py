"""Fault harness: the real worker in separate processes, real Kafka, real ClickHouse engine.

`WorkerProcess` runs `ringlog worker` as a child process (and kills it with SIGKILL when told).
`expected_rows` computes with the pure core the rows that a set of produced messages defines;
`compare` reads the rows back with FINAL through a worker's /query and prints every mismatch
row by row. Used by tests/faults/ (small, in CI) and benchmarks/soak.py (long runs).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devtools.producer import ensure_topic, produce
from devtools.traffic import generate_calls
from schemas.tables import ROW_TABLES, TABLES_BY_NAME
from worker.core.correlation import build_call_rows
from worker.core.decode import ValidEvent, decode
from worker.core.rates import RatePlan, load_rate_plan

ROOT = Path(__file__).resolve().parents[1]
# Columns that depend on the wall clock or on how many times a row was rewritten.
NOT_COMPARED = ("ingested_at", "version")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Setup:
    """One isolated run: its own topics, group, database and store."""

    brokers: str
    store_url: str
    name: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:10]}")
    rates_file: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # With a path: workers run with the store unavailable while that file exists
    # (`python -m devtools worker --store-down-while`, the same lifecycle as `ringlog worker`).
    store_down_file: Path | None = None

    def worker_command(self) -> list[str]:
        if self.store_down_file is None:
            return [sys.executable, "-m", "worker.cli", "worker"]
        return [
            sys.executable, "-m", "devtools", "worker",
            "--store-down-while", str(self.store_down_file),
        ]  # fmt: skip

    @property
    def topic(self) -> str:
        return self.name

    @property
    def dlq_topic(self) -> str:
        return f"{self.name}.dlq"

    @property
    def database(self) -> str:
        return self.name.replace("-", "_")

    def env(self, http_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "RINGLOG_KAFKA_BROKERS": self.brokers,
                "RINGLOG_TOPIC": self.topic,
                "RINGLOG_DLQ_TOPIC": self.dlq_topic,
                "RINGLOG_GROUP_ID": self.name,
                "RINGLOG_CLICKHOUSE_URL": self.store_url,
                "RINGLOG_DATABASE": self.database,
                "RINGLOG_HTTP_PORT": str(http_port),
                "RINGLOG_LOG_FORMAT": "json",
                "RINGLOG_LOG_LEVEL": "WARNING",
                # Timeout closes depend on which calls happen to be cached at a scan; the
                # fault tests compare everything else, so keep them out of the way.
                "RINGLOG_CALL_TIMEOUT": "100000h",
                "PYTHONPATH": str(ROOT),
            }
        )
        if self.rates_file is not None:
            env["RINGLOG_RATES_FILE"] = str(self.rates_file)
        env.update(self.extra_env)
        return env


class WorkerProcess:
    """`ringlog worker` as a child process."""

    def __init__(self, setup: Setup, log_dir: Path) -> None:
        self.setup = setup
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"worker-{self.port}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            self.setup.worker_command(),
            env=self.setup.env(self.port),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no final commit, a batch possibly half written."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(10)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def http(self, path: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status: int = response.status
                return status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def query(self, sql: str) -> list[dict[str, Any]]:
        status, body = self.http("/query", sql.encode())
        if status != 200:
            raise AssertionError(f"/query failed ({status}): {body[:500]!r}")
        data = orjson.loads(body)
        return [dict(zip(data["columns"], row, strict=True)) for row in data["rows"]]

    def wait_ready(self, limit_s: float = 60) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited with {self.proc and self.proc.returncode}")
            try:
                status, _ = self.http("/ready", timeout=2)
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError("worker not ready in time")


async def committed_and_end(setup: Setup) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offsets and the topic's end offsets, straight from Kafka."""
    admin = AIOKafkaAdminClient(bootstrap_servers=setup.brokers)
    consumer = AIOKafkaConsumer(bootstrap_servers=setup.brokers)
    await admin.start()
    await consumer.start()
    try:
        offsets = await admin.list_consumer_group_offsets(setup.name)
        committed = {
            tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == setup.topic
        }
        described = await admin.describe_topics([setup.topic])
        parts = {p["partition"] for d in described for p in d.get("partitions", [])}
        ends = await consumer.end_offsets([TopicPartition(setup.topic, p) for p in parts])
        return committed, {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()
        await admin.close()


async def wait_drained(setup: Setup, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        committed, ends = await committed_and_end(setup)
        if ends and all(committed.get(p, 0) >= end for p, end in ends.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not drained: committed={committed} ends={ends}")
        await asyncio.sleep(0.3)


def expected_rows(
    messages: Iterable[tuple[bytes | None, bytes]], rates: RatePlan
) -> tuple[dict[str, list[dict[str, Any]]], int, int]:
    """Rows the pure core computes from the distinct valid events; (rows, events, rejects)."""
    calls: dict[tuple[str, str], list[ValidEvent]] = defaultdict(list)
    rejected = 0
    for key, value in messages:
        decoded = decode(key, value)
        if isinstance(decoded, ValidEvent):
            calls[(decoded.event.project_id, decoded.event.call_id)].append(decoded)
        else:
            rejected += 1
    tables: dict[str, list[dict[str, Any]]] = defaultdict(list)
    distinct = 0
    for events in calls.values():
        distinct += len({e.event.event_id for e in events})
        for table, rows in build_call_rows(events, rates).tables().items():
            tables[table].extend(dict(row) for row in rows)
    return tables, distinct, rejected


def _norm(column: str, ch_type: str, value: Any) -> Any:
    if value is None:
        return None
    if "Decimal" in ch_type:
        return Decimal(str(value)).quantize(Decimal("0.0001"))
    if "DateTime64" in ch_type:
        if isinstance(value, str):  # /query returns ISO text
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    if column == "call_data" and isinstance(value, str):
        return orjson.loads(value)
    if ch_type == "Bool":
        return bool(value)
    return str(value) if "UUID" in ch_type else value


def _key(table: str, row: dict[str, Any]) -> str:
    return str(row["id"])


def compare(
    worker: WorkerProcess, expected: dict[str, list[dict[str, Any]]], out: Any = sys.stdout
) -> dict[str, dict[str, int]]:
    """Read every row table back with FINAL and diff it against the expected rows.

    Returns per table {"lost", "doubled", "wrong", "unexpected"} counts and prints each
    mismatch (row by row, column by column).
    """
    report: dict[str, dict[str, int]] = {}
    for table in ROW_TABLES:
        types = dict(TABLES_BY_NAME[table.name].columns)
        got_rows = worker.query(f"SELECT * FROM {table.name} FINAL")
        raw_count = worker.query(
            f"SELECT count() AS n, uniqExact(id) AS u FROM {table.name} FINAL"
        )[0]
        want = {_key(table.name, r): r for r in expected.get(table.name, [])}
        got = {_key(table.name, r): r for r in got_rows}
        counts = {
            "lost": len(set(want) - set(got)),
            "unexpected": len(set(got) - set(want)),
            "doubled": int(raw_count["n"]) - int(raw_count["u"]),
            "wrong": 0,
        }
        for key in sorted(set(want) - set(got)):
            print(f"LOST {table.name} {key}: {want[key]}", file=out)
        for key in sorted(set(got) - set(want)):
            print(f"UNEXPECTED {table.name} {key}: {got[key]}", file=out)
        for key in sorted(set(want) & set(got)):
            diffs = []
            for column, ch_type in types.items():
                if column in NOT_COMPARED:
                    continue
                a = _norm(column, ch_type, got[key].get(column))
                e = _norm(column, ch_type, want[key].get(column))
                if a != e:
                    diffs.append(f"{column}: got {a!r} want {e!r}")
            if diffs:
                counts["wrong"] += 1
                print(f"WRONG {table.name} {key}: " + "; ".join(diffs), file=out)
        report[table.name] = counts
    return report


def event_counts(worker: WorkerProcess) -> tuple[int, int, int]:
    """(distinct call_event rows, doubled call_event rows, rejected_event rows) with FINAL."""
    ev = worker.query(
        "SELECT count() AS n, uniqExact(project_id, call_id, event_id) AS u FROM call_event FINAL"
    )[0]
    rej = worker.query("SELECT count() AS n FROM rejected_event FINAL")[0]
    return int(ev["u"]), int(ev["n"]) - int(ev["u"]), int(rej["n"])


def totals(report: dict[str, dict[str, int]]) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for counts in report.values():
        for k, v in counts.items():
            out[k] += v
    return dict(out)


def messages_of(generated: Sequence[Any]) -> list[tuple[bytes | None, bytes]]:
    return [(m.key, m.value) for m in generated]


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


# ---- helpers for the outage and scale-out tests (tests/faults/test_kafka_restart.py,
# test_clickhouse_down.py, test_scale_out.py) ----------------------------------------------

ZERO_RESULT: dict[str, int] = {
    "lost": 0,
    "unexpected": 0,
    "doubled": 0,
    "wrong": 0,
    "call_event_lost": 0,
    "call_event_doubled": 0,
    "rejected_lost": 0,
}


@dataclass
class LocalBroker:
    """A private single-node broker (deploy/kafka.sh with its own home and ports), so a test
    can stop and start it without touching the shared broker on 9092."""

    home: Path
    port: int = field(default_factory=free_port)
    controller_port: int = 0

    def __post_init__(self) -> None:
        while not self.controller_port or self.controller_port == self.port:
            self.controller_port = free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.update(
            {
                "RINGLOG_KAFKA_PORT": str(self.port),
                "RINGLOG_KAFKA_CONTROLLER_PORT": str(self.controller_port),
                "RINGLOG_KAFKA_HOME": str(self.home),
                "RINGLOG_KAFKA_PURGE": "0",
            }
        )
        return subprocess.run(
            ["bash", str(ROOT / "deploy" / "kafka.sh"), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> str:
        proc = self._run("up")
        if proc.returncode != 0:
            raise AssertionError(f"kafka.sh up failed:\n{proc.stdout}\n{proc.stderr}")
        return self.bootstrap

    def down(self, purge: bool = False) -> None:
        proc = self._run("down", *(["--purge"] if purge else []), timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"kafka.sh down failed:\n{proc.stdout}\n{proc.stderr}")

    def running(self) -> bool:
        return self._run("status", timeout=30).returncode == 0


def health(worker: WorkerProcess) -> tuple[int, dict[str, Any]]:
    """(HTTP status, JSON body) of the worker's /health; (0, {}) when it does not answer."""
    try:
        status, body = worker.http("/health", timeout=5)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, {}
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = {"raw": body[:300].decode(errors="replace")}
    return status, data if isinstance(data, dict) else {"raw": data}


def metric(worker: WorkerProcess, name: str) -> dict[str, float]:
    """Samples of one metric from the worker's /metrics: {label text: value}; empty while
    the worker does not serve them (not listening yet, or 503 while starting/stopping)."""
    try:
        status, body = worker.http("/metrics", timeout=5)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return {}
    if status == 503:
        return {}
    if status != 200:
        raise AssertionError(f"/metrics answered {status}")
    out: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            head, _, value = line.rpartition(" ")
            rest = head[len(name) :]
            if rest and rest[0] not in "{":
                continue  # another metric with this prefix
            out[rest] = float(value)
    return out


async def wait_until(predicate: Any, limit_s: float, what: str, interval_s: float = 0.2) -> float:
    """Poll `predicate()` (sync or async) until truthy; returns the seconds it took."""
    t0 = time.monotonic()
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return time.monotonic() - t0
        if time.monotonic() - t0 > limit_s:
            raise AssertionError(f"timed out after {limit_s:.0f}s waiting for {what}")
        await asyncio.sleep(interval_s)


async def produce_all(setup: Setup, generated: Sequence[Any], rate: float | None) -> None:
    """Produce and require every message acknowledged."""
    if not generated:
        return
    stats = await produce(
        generated, brokers=setup.brokers, topic=setup.topic, rate=rate, progress=False
    )
    assert stats.failed == 0, stats.errors


def verify(
    worker: WorkerProcess, messages: Sequence[tuple[bytes | None, bytes]], setup: Setup
) -> dict[str, int]:
    """Exact rows: `compare` totals plus call_event and rejected_event counts (ZERO_RESULT
    when everything is right)."""
    expected, distinct, rejected = expected_rows(messages, load_rate_plan(setup.rates_file))
    result = totals(compare(worker, expected, out=sys.stderr))
    events, doubled_events, rejects = event_counts(worker)
    result["call_event_lost"] = distinct - events
    result["call_event_doubled"] = doubled_events
    result["rejected_lost"] = rejected - rejects
    return result


def log_tail(log_dir: Path, lines: int = 30) -> str:
    """The last lines of every worker log in `log_dir` (for assertion messages)."""
    parts = []
    for path in sorted(log_dir.glob("worker-*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"---- {path.name}\n" + "\n".join(text))
    return "\n".join(parts)
