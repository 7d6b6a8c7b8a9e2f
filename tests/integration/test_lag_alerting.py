"""Lag alerting end to end: a real `ringlog worker` subprocess on the local Kafka whose
ClickHouse sink is taken down (devtools.fault_injection) and brought back; and no secret
in the worker's JSON logs."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from devtools.producer import ensure_topic, produce
from devtools.traffic import Message, generate_calls
from tests.support.builders import RATES_FILE
from worker.core.decode import ValidEvent, decode
from worker.service.faust_host import start_in_background
from worker.service.logs import JsonFormatter
from worker.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http(method: str, url: str, body: bytes | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    except OSError as exc:
        return 0, str(exc)


def _lag_metric(port: int) -> float | None:
    status, text = _http("GET", f"http://127.0.0.1:{port}/metrics")
    if status != 200:
        return None
    values = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("ringlog_consumer_lag_messages{")
    ]
    return sum(values) if values else None


def _wait(
    what: str, check: Callable[[], bool], proc: subprocess.Popen[bytes], limit: float
) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited ({proc.returncode}) while waiting for {what}")
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _produce(brokers: str, topic: str, messages: list[Message]) -> None:
    stats = asyncio.run(produce(messages, brokers=brokers, topic=topic, progress=False))
    assert stats.failed == 0, stats.errors


@pytest.mark.kafka
def test_lag_health_and_cli_follow_a_stuck_sink_and_recover(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    name = f"lag-{uuid.uuid4().hex[:10]}"
    port = _free_port()
    fault = tmp_path / "store-down"
    env = {
        **os.environ,
        "RINGLOG_KAFKA_BROKERS": kafka_bootstrap,
        "RINGLOG_TOPIC": name,
        "RINGLOG_DLQ_TOPIC": f"{name}.dlq",
        "RINGLOG_GROUP_ID": name,
        "RINGLOG_DATABASE": name.replace("-", "_"),
        "RINGLOG_CLICKHOUSE_URL": f"chdb://{tmp_path / 'chdb'}",
        "RINGLOG_RATES_FILE": str(RATES_FILE),
        "RINGLOG_HTTP_PORT": str(port),
        "RINGLOG_BATCH_MAX_SECONDS": "0.2",
        "RINGLOG_HEALTH_MAX_FAILURES": "2",
        "RINGLOG_HEALTH_STALL_SECONDS": "3",
        "RINGLOG_LOG_FORMAT": "json",
    }
    asyncio.run(ensure_topic(kafka_bootstrap, name, partitions=3))
    asyncio.run(ensure_topic(kafka_bootstrap, f"{name}.dlq", partitions=1))
    first = list(generate_calls(15, seed=11, invalid_share=0.05, oversized=0))
    second = list(generate_calls(15, seed=12, invalid_share=0.05, oversized=0))
    base = f"http://127.0.0.1:{port}"

    def lag_cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "worker.cli", "lag", "--timeout", "30", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )

    log_path = tmp_path / "worker.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            # `ringlog worker` with the store fault installed (devtools.fault_injection)
            [sys.executable, "-m", "devtools", "worker", "--store-down-while", str(fault)],
            env=env,
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait("/ready", lambda: _http("GET", f"{base}/ready")[0] == 200, proc, 180)

            # Phase 1: a healthy worker drains the first traffic.
            _produce(kafka_bootstrap, name, first)
            _wait("lag 0 after the first traffic", lambda: _lag_metric(port) == 0, proc, 180)
            ok = lag_cli("--max-messages", "0")
            assert ok.returncode == 0, ok.stdout + ok.stderr
            assert ok.stdout.strip().splitlines()[-1].startswith("OK")

            # Phase 2: ClickHouse "down": the loop is stuck in its retry loop.
            fault.write_text("down")
            _produce(kafka_bootstrap, name, second)
            _wait("lag > 0 in /metrics", lambda: (_lag_metric(port) or 0) > 0, proc, 120)
            _wait("/health 503", lambda: _http("GET", f"{base}/health")[0] == 503, proc, 120)
            health = json.loads(_http("GET", f"{base}/health")[1])
            assert health["healthy"] is False and health["reasons"]
            critical = lag_cli("--max-messages", "0")
            assert critical.returncode == 2, critical.stdout + critical.stderr
            assert "CRITICAL" in critical.stdout
            as_json = lag_cli("--json", "--max-seconds", "3600")
            report = json.loads(as_json.stdout)
            assert report["total_lag"] > 0 and report["max_age_seconds"] is not None
            # the lag keeps being refreshed while the loop is blocked
            _wait(
                "the lag gauge to cover the whole second traffic",
                lambda: (_lag_metric(port) or 0) >= report["total_lag"],
                proc,
                60,
            )

            # Phase 3: ClickHouse back: everything recovers by itself.
            fault.unlink()
            _wait("lag 0 after recovery", lambda: _lag_metric(port) == 0, proc, 240)
            _wait("/health 200", lambda: _http("GET", f"{base}/health")[0] == 200, proc, 120)
            recovered = lag_cli("--max-messages", "0")
            assert recovered.returncode == 0, recovered.stdout + recovered.stderr

            status, body = _http(
                "POST",
                f"{base}/query",
                b"SELECT toString(project_id), call_id, event_id FROM call_event FINAL",
            )
            assert status == 200, body
            stored = {tuple(row) for row in json.loads(body)["rows"]}
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise
    expected = set()
    for msg in first + second:
        decoded = decode(msg.key, msg.value)
        if isinstance(decoded, ValidEvent):
            e = decoded.event
            expected.add((str(e.project_id), e.call_id, e.event_id))
    assert stored == expected
    assert code == 0, log_path.read_text()[-3000:]
    logs = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    failures = [entry for entry in logs if entry.get("error_code") == "store_unavailable"]
    assert failures, "the stuck sink was not logged"
    assert all("table" in entry and "attempt" in entry for entry in failures)


def test_no_secret_in_json_logs_of_a_worker_that_cannot_reach_clickhouse() -> None:
    password = "Sup3r-S3cret-pw"
    settings = Settings(
        clickhouse_url=f"http://ringlog:{password}@127.0.0.1:{_free_port()}/",
        kafka_brokers="127.0.0.1:9",
        http_port=0,
    )
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    error: BaseException | None = None
    try:
        asyncio.run(asyncio.wait_for(start_in_background(settings), 60))
    except Exception as exc:
        error = exc
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
    assert error is not None  # nothing to connect to
    output = buffer.getvalue()
    assert output, "nothing was logged"
    for line in output.splitlines():
        json.loads(line)  # every line is JSON
    assert password not in output
    assert password not in str(error) and password not in repr(error)
    assert "***" in str(error)
