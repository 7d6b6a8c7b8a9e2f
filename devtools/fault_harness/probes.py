"""What the outage and scale-out tests poll: a worker's /health and /metrics, and
`wait_until` a condition holds."""

from __future__ import annotations

import asyncio
import time
import urllib.error
from typing import Any

import orjson

from devtools.fault_harness.worker_process import WorkerProcess


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
