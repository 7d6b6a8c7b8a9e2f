"""The batch-filled age histogram against the per-value semantics of a Prometheus histogram."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from worker.pipeline.metrics import COMMIT_LATENCY_BUCKETS, AgeHistogram, Metrics

NAME = "ringlog_event_commit_latency_seconds"
NOW_MS = 1_900_000_000_000  # 2030, in ms: ages are whole milliseconds, so buckets are exact


def sample(registry: CollectorRegistry, suffix: str, le: str | None = None) -> float | None:
    labels = {} if le is None else {"le": le}
    return registry.get_sample_value(NAME + suffix, labels)


def reference(ages_ms: list[int]) -> tuple[list[int], float]:
    """Cumulative counts per bucket (then +Inf) and the sum, one value at a time: what a
    Histogram fed `observe(max(0, age))` per record holds, in whole milliseconds."""
    kept = [max(0, a) for a in ages_ms]
    bounds_ms = [round(b * 1000) for b in COMMIT_LATENCY_BUCKETS]
    return [sum(a <= b for a in kept) for b in bounds_ms] + [len(kept)], sum(kept) / 1000


@given(
    st.lists(st.lists(st.integers(min_value=-60_000, max_value=600_000), max_size=40), max_size=5)
)
@example([[50, 51, 100, 101, 1000, 1001], [300_000, 300_001, 0, -5]])  # on and past the bounds
def test_batches_add_up_to_one_observation_per_value(batches: list[list[int]]) -> None:
    metrics = Metrics()
    for ages in batches:
        metrics.commit_latency.observe_ages(NOW_MS / 1000, [NOW_MS - a for a in ages])
    counts, total = reference([a for ages in batches for a in ages])
    les = [repr(float(b)) for b in COMMIT_LATENCY_BUCKETS] + ["+Inf"]
    got = [sample(metrics.registry, "_bucket", le) for le in les]
    assert got == counts
    assert sample(metrics.registry, "_count") == counts[-1]
    assert sample(metrics.registry, "_sum") == pytest.approx(total, abs=1e-6)


def test_records_without_timestamp_are_skipped() -> None:
    metrics = Metrics()
    metrics.commit_latency.observe_ages(NOW_MS / 1000, [-1, NOW_MS - 200, -1])
    assert sample(metrics.registry, "_count") == 1
    assert sample(metrics.registry, "_bucket", "0.1") == 0
    assert sample(metrics.registry, "_bucket", "0.25") == 1
    assert sample(metrics.registry, "_sum") == pytest.approx(0.2)
    metrics.commit_latency.observe_ages(NOW_MS / 1000, [-1])
    metrics.commit_latency.observe_ages(NOW_MS / 1000, [])
    assert sample(metrics.registry, "_count") == 1


def test_exposed_as_a_histogram() -> None:
    registry = CollectorRegistry()
    AgeHistogram("x_seconds", "help", (0.5, 1), registry=registry)
    text = generate_latest(registry).decode()
    assert "# TYPE x_seconds histogram" in text
    assert 'x_seconds_bucket{le="0.5"} 0.0' in text
    assert 'x_seconds_bucket{le="+Inf"} 0.0' in text
    assert "x_seconds_count 0.0" in text
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        AgeHistogram("x_seconds", "help", (0.5, 1), registry=registry)
