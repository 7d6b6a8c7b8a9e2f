"""What the pipeline is told by the service (built from the RINGLOG_* settings)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta


@dataclass(frozen=True)
class PipelineConfig:
    topic: str = "telephony.call-events"
    # A batch is flushed when it holds this many events or is this old, whichever first.
    batch_max_events: int = 20_000
    batch_max_seconds: float = 0.5
    # Open-call cache bound; evicted calls are reloaded from call_event on their next event.
    cache_max_calls: int = 50_000
    # Calls silent this long in event time are closed (DESIGN.md section 3).
    call_timeout: timedelta = timedelta(hours=4)
