"""/health and /ready: what an orchestrator asks of a running worker."""

from __future__ import annotations

import time
from dataclasses import dataclass

from worker.pipeline.consume_loop import ConsumeLoop
from worker.pipeline.retry import OutageRetry


@dataclass
class Health:
    healthy: bool
    reasons: list[str]


@dataclass
class HealthCheck:
    loop: ConsumeLoop
    retry: OutageRetry
    max_failures: int  # RINGLOG_HEALTH_MAX_FAILURES
    stall_seconds: float  # RINGLOG_HEALTH_STALL_SECONDS
    started: bool = False

    def health(self) -> Health:
        """Unhealthy (503) when the consume loop is not running, after `max_failures`
        consecutive failed ClickHouse calls, or when there is lag and nothing was committed
        for `stall_seconds` (since the loop started, before the first commit)."""
        reasons: list[str] = []
        if not self.loop.running:
            reasons.append("consume loop is not running")
        failures = self.retry.consecutive_failures
        if failures >= self.max_failures:
            reasons.append(f"{failures} consecutive ClickHouse failures")
        lag = sum(self.loop.lag.per_partition().values())
        since_commit = time.time() - (self.loop.last_commit or self.loop.started_at)
        if lag > 0 and since_commit > self.stall_seconds:
            reasons.append(f"lag is {lag} messages and nothing committed for {since_commit:.0f}s")
        return Health(not reasons, reasons)

    def ready(self) -> bool:
        """Kubernetes readiness: joined the consumer group and consuming."""
        return self.started and self.loop.running and self.loop.joined
