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
            "--skip-quix",  # (d) has a test of its own below
            "--in-process",
            "--no-progress",
            "--brokers",
            brokers,
        ],
        clickhouse_url=chdb_store_url,
        database=database,
    )
    assert result is not None and result.bare is not None
    exp = result.expected
    assert exp.messages >= 2000
    assert exp.invalid > 0 and exp.duplicates > 0  # the run exercises both paths
    assert result.bare.messages == exp.messages
    assert result.worker.messages == exp.messages
    assert result.worker.rows["call_event"] == exp.distinct_valid
    assert result.worker.rows["rejected_event"] == exp.invalid
    assert result.worker.dead_letters == exp.invalid
    assert result.faust is None and result.quix is None
    # `ringlog worker --processes 2` (the default extra run): the command, into its own store.
    [supervised] = result.supervised
    assert (supervised.processes, supervised.messages) == (2, exp.messages)
    assert supervised.rows == {"call_event": exp.distinct_valid, "rejected_event": exp.invalid}
    assert result.accounted_for, result.checks
    assert result.bare.rate > 0 and result.worker.rate > 0
    # CPU over the timed span: the loop's thread is a part of the worker's process.
    assert 0 < result.worker.loop_cpu_seconds <= result.worker.cpu_seconds
    assert result.bare.cpu_seconds > 0
    assert result.worker.latency is None  # measured in the --rate mode only
    assert "latency" not in result.to_json()["worker"]


def test_benchmark_quix_peer_accounts_for_every_event(chdb_store_url: str) -> None:
    """(d), the quixstreams app with ringlog's core, in its own process and chDB directory:
    every offset committed, every message in its rows and DLQ, the worker's row counts."""
    pytest.importorskip("quixstreams")
    brokers = kafka_up()
    result = main(
        [
            "--events",
            "2000",
            "--skip-faust",
            "--processes",
            "",
            "--in-process",
            "--no-progress",
            "--brokers",
            brokers,
        ],
        clickhouse_url=chdb_store_url,
        database=f"bench_quix_{uuid.uuid4().hex[:8]}",
    )
    assert result is not None
    exp, quix = result.expected, result.quix
    assert quix is not None and quix.complete, quix
    assert exp.invalid > 0 and exp.duplicates > 0  # both paths exercised
    assert quix.messages == exp.messages
    assert quix.rows["call_event"] == exp.distinct_valid
    assert quix.rows["rejected_event"] == exp.invalid
    assert quix.dead_letters == exp.invalid
    # The same core on the same events: as many rows as the worker wrote, table by table.
    assert quix.rows == result.worker.rows
    assert result.accounted_for, result.checks
    assert {name for name in result.checks if name.startswith("(d)")} == {
        "(d) committed every offset",
        "(d) call_event rows = distinct valid events",
        "(d) rejected_event rows = invalid messages",
        "(d) DLQ messages = invalid messages",
    }
    data = result.to_json()
    assert data["quix"]["messages"] == exp.messages and data["ratio_quix_to_bare"] is not None


def test_benchmark_rate_mode_measures_every_record(chdb_store_url: str) -> None:
    """--rate: the events are produced while the worker consumes; every committed record gets
    a latency, and the worker's own histogram counts each once."""
    brokers = kafka_up()
    result = main(
        [
            "--events",
            "1500",
            "--rate",
            "1500",
            "--in-process",
            "--no-progress",
            "--brokers",
            brokers,
        ],
        clickhouse_url=chdb_store_url,
        database=f"bench_rate_{uuid.uuid4().hex[:8]}",
    )
    assert result is not None
    exp = result.expected
    assert result.bare is None and result.faust is None
    assert result.worker.messages == exp.messages
    latency = result.worker.latency
    assert latency is not None
    assert latency.records == exp.messages
    assert latency.histogram_count == exp.messages
    assert 0 < latency.p50 <= latency.p99 <= latency.max
    assert latency.batch_max_seconds > 0 and latency.target_rate == 1500
    assert result.accounted_for, result.checks
    data = result.to_json()["worker"]["latency"]
    assert data["records"] == exp.messages and isinstance(data["within_goal"], bool)


def test_memory_benchmark_caches_every_open_call_then_reloads_past_the_cache(
    chdb_store_url: str,
) -> None:
    """benchmarks/memory.py on 200 open calls: every offset committed, every call cached and
    open when the cache holds them all; with a cache of 50 and batches of 20 events on one
    partition (a call's next event comes 200 events later), calls are evicted and reloaded
    from call_event, and the rows are still exact."""
    from benchmarks.memory import main as memory_main

    result = memory_main(
        [
            "--calls",
            "200",
            "--evict-calls",
            "200",  # the memory run is the "fits" run: two worker runs in all
            "--evict-cache",
            "50",
            "--batch-max-events",
            "20",
            "--partitions",
            "1",
            "--breakdown-calls",
            "20",
            "--in-process",
            "--no-progress",
            "--brokers",
            kafka_up(),
        ],
        clickhouse_url=chdb_store_url,
        database=f"bench_memory_{uuid.uuid4().hex[:8]}",
    )
    assert result is not None
    (fits,) = result.runs
    assert result.fits_run is fits
    evicting = result.evict_run
    assert evicting is not None
    for run in (fits, evicting):
        assert run.events == run.committed == 600
        assert run.rows["call_event"] == 600
        assert run.rows["incoming_call_log"] == run.rows["incoming_call_log_item"] == 200
        assert run.rows["rejected_event"] == run.dead_letters == 0
    assert fits.cached_calls == fits.open_calls == 200 and fits.evictions == 0
    assert fits.reloaded_calls == 0
    assert evicting.evictions > 0 and evicting.reloaded_calls > 0
    assert evicting.reloaded_events >= evicting.reloaded_calls
    assert result.ok, [r.checks() for r in result.all_runs]
    breakdown = result.breakdown
    assert breakdown is not None
    assert [e.type for e in breakdown.events] == [
        "incoming_call.received",
        "incoming_call.dial_started",
        "incoming_call.dial_ringing",
    ]
    assert breakdown.traced_per_call > 0


def test_gateway_benchmark_runs_both_contenders() -> None:
    """benchmarks/gateway.py on a tiny load: every webhook answered 2xx after its event was
    acknowledged (the gateway raises otherwise), both contenders measured."""
    from benchmarks.gateway import main as gateway_main

    result = gateway_main(["--requests", "60", "--concurrency", "3", "--brokers", kafka_up()])
    assert [f["requests"] for f in result["figures"]] == [60, 60]
    assert all(f["per_second"] > 0 for f in result["figures"])
    assert result["gateway_over_bare"] > 0


def test_backfill_benchmark_accounts_for_every_line(chdb_store_url: str) -> None:
    """benchmarks/backfill.py on 2000 events: `ringlog replay` produced every valid line and
    refused the rest, the worker committed every offset, call_event holds every distinct valid
    event, and `ringlog rebuild` rebuilt every call from them. Counts only, never timings."""
    from benchmarks.backfill import main as backfill_main
    from devtools.traffic import generate_events

    result = backfill_main(
        ["--events", "2000", "--in-process", "--no-progress", "--brokers", kafka_up()],
        clickhouse_url=chdb_store_url,
        database=f"bench_backfill_{uuid.uuid4().hex[:8]}",
    )
    exp = result.expected
    # What the file must hold, from the generator's own labels (a key-mismatch message is a
    # valid event once the replay keys it by its call_id).
    generated = list(generate_events(2000, seed=1, invalid_share=0.02, oversized=0))
    assert exp.lines == len(generated) and exp.blank == 0
    assert exp.valid == sum(1 for m in generated if m.valid or m.case == "key_mismatch")
    assert exp.refused > 0 and exp.duplicates > 0  # both paths exercised
    replay, worker, rebuild = result.replay, result.worker, result.rebuild
    assert (replay.lines, replay.produced, replay.refused) == (exp.lines, exp.valid, exp.refused)
    assert replay.topic_messages == exp.valid and replay.dlq_messages == exp.refused
    assert result.bare.messages == exp.valid
    assert worker.complete and worker.messages == exp.valid  # every offset committed
    assert worker.rows["call_event"] == exp.distinct_valid
    assert worker.rows["rejected_event"] == 0  # refused lines never reached the topic
    assert worker.dead_letters == exp.refused
    assert (rebuild.calls, rebuild.events) == (exp.calls, exp.distinct_valid)
    assert result.accounted_for, result.checks
    data = result.to_json()
    assert data["replay"]["produced"] == exp.valid and data["rebuild"]["calls"] == exp.calls
    assert set(data["ratios"]) == {
        "replay_to_read_decode",
        "worker_to_bare_consumer",
        "worker_to_read_decode",
        "rebuild_to_read_decode",
    }
