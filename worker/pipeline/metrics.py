"""Prometheus metrics (DESIGN.md section 5). One registry per worker, so tests can run
several workers in one process without their counters colliding."""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import islice

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric

# Kafka record timestamp -> durable: the batch bound (0.5 s by default) plus the write, up to
# the minutes of a catch-up after an outage.
COMMIT_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10, 30, 60, 120, 300)


class AgeHistogram:
    """A Prometheus histogram of ages (now minus a timestamp), filled a whole batch at a time.

    prometheus_client's Histogram has only a per-value `observe` (a Python loop over the
    buckets and a lock per call); at 15-20k records/s that is real CPU on the hot path. Here a
    batch costs a sort of its timestamps and one bisect per bucket, all in C: the per-record
    Python work is just collecting the timestamps. It is a custom collector (the public
    `HistogramMetricFamily` API), exposed exactly like a Histogram without labels.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(float(b) for b in buckets)
        if list(self.bounds) != sorted(self.bounds) or self.bounds[0] < 0:
            raise ValueError("buckets must be sorted and not negative")
        # Cumulative counts per bound (ages <= bound), then the +Inf bucket (= the count).
        self._cumulative = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        # /metrics may be served from another thread: a scrape sees whole batches only.
        self._lock = threading.Lock()
        registry.register(self)

    def observe_ages(self, now_s: float, timestamps_ms: Iterable[int]) -> None:
        """Observe `now_s - t / 1000` for every `t` (milliseconds since the epoch).

        A negative timestamp (-1: the record has none) is skipped; a timestamp after `now_s`
        (the producer's clock runs ahead) counts as age 0, since a negative observation would
        break `rate()` of the sum.
        """
        stamps = sorted(timestamps_ms)  # ascending timestamps = descending ages
        first = bisect_left(stamps, 0)
        end = len(stamps)
        if first == end:
            return
        now_ms = now_s * 1000.0
        past_end = bisect_right(stamps, now_ms, first)
        # Relative to the oldest timestamp, so the sum stays exact in a float (epoch
        # milliseconds times thousands of records would not).
        base = stamps[first]
        past = past_end - first
        total_ms = past * (now_ms - base) - (sum(islice(stamps, first, past_end)) - past * base)
        # age <= bound  <=>  t >= now - bound
        counts = [end - bisect_left(stamps, now_ms - b * 1000.0, first) for b in self.bounds]
        with self._lock:
            cumulative = self._cumulative
            for i, n in enumerate(counts):
                cumulative[i] += n
            cumulative[-1] += end - first
            self._sum += total_ms / 1000.0

    def collect(self) -> Iterable[Metric]:
        with self._lock:
            cumulative = list(self._cumulative)
            total = self._sum
        les = [repr(b) for b in self.bounds] + ["+Inf"]  # "0.05", "1.0": as Histogram writes
        yield HistogramMetricFamily(
            self.name,
            self.documentation,
            buckets=list(zip(les, cumulative, strict=True)),
            sum_value=total,
        )

    def describe(self) -> Iterable[Metric]:
        """What the registry checks names against, without taking the lock."""
        yield HistogramMetricFamily(self.name, self.documentation)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.consumer_lag = Gauge(
            "ringlog_consumer_lag_messages",
            "Log-end offset minus the group's committed offset (not yet durable counts as lag)",
            ["topic", "partition"],
            registry=r,
        )
        self.event_lag = Gauge(
            "ringlog_event_lag_seconds",
            "Now minus the event time of the newest event written to ClickHouse",
            registry=r,
        )
        self.events = Counter(
            "ringlog_events_total",
            "Events consumed, by type and result (written, duplicate, rejected)",
            ["type", "result"],
            registry=r,
        )
        self.rows_written = Counter(
            "ringlog_rows_written_total", "Rows inserted into ClickHouse", ["table"], registry=r
        )
        self.dead_letters = Counter(
            "ringlog_dead_letters_total",
            "Invalid events dead-lettered, by error code",
            ["code"],
            registry=r,
        )
        self.insert_seconds = Histogram(
            "ringlog_clickhouse_insert_seconds",
            "Duration of one ClickHouse insert",
            ["table"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.insert_failures = Counter(
            "ringlog_clickhouse_insert_failures_total",
            "ClickHouse inserts or reads that failed and were retried",
            registry=r,
        )
        self.open_calls = Gauge(
            "ringlog_open_calls", "Calls in the worker's cache without an end event", registry=r
        )
        self.cached_calls = Gauge(
            "ringlog_cached_calls", "Calls held in the worker's state cache", registry=r
        )
        self.last_commit = Gauge(
            "ringlog_last_commit_timestamp_seconds",
            "Unix time of the last successful offset commit",
            registry=r,
        )
        self.commit_latency = AgeHistogram(
            "ringlog_event_commit_latency_seconds",
            "Kafka record timestamp to the offset commit that covers it "
            "(the record is durable in ClickHouse)",
            COMMIT_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_events = Histogram(
            "ringlog_batch_events",
            "Events per processed batch",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000),
            registry=r,
        )
