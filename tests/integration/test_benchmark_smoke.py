"""Smoke test of benchmarks/ingest.py: a tiny run must account for every event.

Only counts are asserted, never timings (machines are shared and noisy). The worker runs in
this process against the session's chDB path (chDB allows one path per process), isolated by
its own database name.
"""

from __future__ import annotations

import uuid

import pytest

from benchmarks.ingest import main
from devtools.kafka_local import kafka_up

pytestmark = pytest.mark.kafka


def test_benchmark_accounts_for_every_event(chdb_store_url: str) -> None:
    brokers = kafka_up()
    database = f"bench_smoke_{uuid.uuid4().hex[:8]}"
    result = main(
        [
            "--events",
            "2000",
            "--skip-faust",
            "--in-process",
            "--no-progress",
            "--brokers",
            brokers,
        ],
        clickhouse_url=chdb_store_url,
        database=database,
    )
    assert result is not None
    exp = result.expected
    assert exp.messages >= 2000
    assert exp.invalid > 0 and exp.duplicates > 0  # the run exercises both paths
    assert result.bare.messages == exp.messages
    assert result.worker.messages == exp.messages
    assert result.worker.rows["call_event"] == exp.distinct_valid
    assert result.worker.rows["rejected_event"] == exp.invalid
    assert result.worker.dead_letters == exp.invalid
    assert result.faust is None
    assert result.accounted_for, result.checks
    assert result.bare.rate > 0 and result.worker.rate > 0
