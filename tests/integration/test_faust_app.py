"""The Faust-hosted worker (worker.service.faust_host) end to end, in a subprocess, on the
local broker:
produce calls plus an invalid message, wait for /query to show them, check /health and
/metrics, then SIGTERM and expect a clean exit (0) within 30 s."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from devtools.kafka_local import kafka_up
from devtools.producer import ensure_topic, produce
from devtools.traffic import Message, generate_calls
from worker.core.decode import Rejection, ValidEvent, decode

pytestmark = pytest.mark.kafka

ROOT = Path(__file__).resolve().parents[2]
RUN = (
    "from worker.service.settings import load_settings; "
    "from worker.service.faust_host import run_faust_worker; "
    "run_faust_worker(load_settings())"
)


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return kafka_up()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _http(port: int, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
            return status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _query(port: int, sql: str) -> Any:
    status, body = _http(port, "/query", sql.encode())
    assert status == 200, body
    return orjson.loads(body)["rows"]


@pytest.fixture
def worker_process(
    bootstrap: str, tmp_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int, str]]:
    unique = uuid.uuid4().hex[:10]
    topic = f"ringlog-test-faust-{unique}"
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RINGLOG_KAFKA_BROKERS": bootstrap,
        "RINGLOG_TOPIC": topic,
        "RINGLOG_DLQ_TOPIC": f"{topic}.dlq",
        "RINGLOG_GROUP_ID": f"ringlog-test-faust-{unique}",
        "RINGLOG_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "RINGLOG_HTTP_PORT": str(port),
        "RINGLOG_LOG_LEVEL": "INFO",
    }
    asyncio.run(ensure_topic(bootstrap, topic))
    asyncio.run(ensure_topic(bootstrap, f"{topic}.dlq"))
    log = (tmp_path / "worker.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN], env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        yield proc, port, topic
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        print((tmp_path / "worker.log").read_text("utf-8", "replace")[-5000:])


def _wait_for(what: str, check: Any, proc: subprocess.Popen[bytes], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"worker exited with {proc.returncode} while waiting for {what}"
        try:
            last = check()
        except (OSError, AssertionError) as exc:
            last = exc
        else:
            if last is True:
                return
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


def test_faust_hosted_worker_ingests_serves_and_stops_cleanly(
    bootstrap: str, worker_process: tuple[subprocess.Popen[bytes], int, str]
) -> None:
    proc, port, topic = worker_process
    messages = [*generate_calls(20, seed=3), Message(b"call-x", b"{not json", "call-x", False)]
    events: set[tuple[str, str, str]] = set()
    rejected = 0
    for msg in messages:
        decoded = decode(msg.key, msg.value)
        if isinstance(decoded, ValidEvent):
            e = decoded.event
            events.add((str(e.project_id), e.call_id, e.event_id))
        else:
            assert isinstance(decoded, Rejection)
            rejected += 1
    assert events and rejected >= 1

    stats = asyncio.run(produce(messages, brokers=bootstrap, topic=topic, progress=False))
    assert stats.sent == len(messages), stats.errors

    def ready() -> bool:
        status, body = _http(port, "/ready")
        return status == 200 and orjson.loads(body) == {"ready": True}

    _wait_for("/ready", ready, proc, timeout=60)

    def ingested() -> bool:
        counts = _query(
            port,
            "SELECT (SELECT count() FROM call_event FINAL), "
            "(SELECT count() FROM rejected_event FINAL)",
        )
        return bool(counts == [[len(events), rejected]]) or counts

    _wait_for("call_event/rejected_event counts", ingested, proc, timeout=60)

    distinct = _query(
        port, "SELECT count() FROM (SELECT DISTINCT project_id, call_id, event_id FROM call_event)"
    )
    assert distinct == [[len(events)]]

    status, body = _http(port, "/health")
    assert status == 200, body
    assert orjson.loads(body)["healthy"] is True
    status, body = _http(port, "/metrics")
    assert status == 200
    assert b"ringlog_events_total" in body
    assert b"ringlog_dead_letters_total" in body
    status, body = _http(port, "/query", b"DROP TABLE call_event")
    assert status == 400, body

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
