"""Prometheus metrics (DESIGN.md section 5). One registry per worker, so tests can run
several workers in one process without their counters colliding."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


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
        self.batch_events = Histogram(
            "ringlog_batch_events",
            "Events per processed batch",
            buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 20000),
            registry=r,
        )
