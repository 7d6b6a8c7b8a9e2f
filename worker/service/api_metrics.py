"""Request metrics of the query APIs (served on /metrics beside the worker's)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram


class ApiMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "ringlog_api_requests_total",
            "Query API requests by interface, route template and status code",
            ["api", "route", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "ringlog_api_request_seconds",
            "Query API request duration",
            ["api"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
