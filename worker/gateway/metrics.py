"""What the gateway counts, per provider (on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

# ringlog_gateway_requests_total{outcome}: what became of a webhook request.
DELIVERED = "delivered"  # every event (and dead letter) acknowledged by Kafka: 2xx
UNMAPPED = "unmapped"  # nothing mappable: dead-lettered whole, 2xx (a retry would not help)
BAD_SIGNATURE = "bad_signature"  # 403, logged, nothing produced
UNKNOWN_TENANT = "unknown_tenant"  # 404
BAD_BODY = "bad_body"  # 400: not a body the provider sends
KAFKA_UNAVAILABLE = "kafka_unavailable"  # 503: the provider retries
RATE_LIMITED = "rate_limited"  # 429


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.requests = Counter(
            "ringlog_gateway_requests_total",
            "Webhook requests by provider and outcome",
            ["provider", "outcome"],
            registry=self.registry,
        )
        self.events = Counter(
            "ringlog_gateway_events_total",
            "Canonical events produced to the input topic, by provider and type",
            ["provider", "type"],
            registry=self.registry,
        )
        self.dead_letters = Counter(
            "ringlog_gateway_dead_letters_total",
            "Payloads (or parts) the provider's normalizer could not map, by code",
            ["provider", "code"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "ringlog_gateway_request_seconds",
            "Webhook request duration, until Kafka acknowledged what it produced",
            ["provider"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
