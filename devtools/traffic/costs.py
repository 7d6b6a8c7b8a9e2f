"""Provider costs: the cost values and the late `call.cost_reported` events."""

from __future__ import annotations

import math
import random
from typing import Any

from devtools.traffic.call import Call


def cost_value(rng: random.Random, seconds: float, per_minute: float) -> float | str | int:
    """A provider cost in US cents: a number, sometimes a string, 0 for no talk time."""
    if seconds <= 0:
        return 0 if rng.random() < 0.5 else "0.0000"
    value = round(per_minute * math.ceil(seconds / 60) * rng.uniform(0.8, 1.2), 4)
    return f"{value:.4f}" if rng.random() < 0.3 else value


def report_cost(
    call: Call,
    rng: random.Random,
    leg_id: str,
    end_ms: int,
    seconds: float,
    per_minute: float,
) -> None:
    """A cost report for `leg_id`, minutes after the call ended (sometimes corrected later)."""
    at = end_ms + rng.randint(30_000, 15 * 60_000)
    extra: dict[str, Any] = {}
    if seconds > 0 and rng.random() < 0.5:
        extra["billable_seconds"] = math.ceil(seconds)
    call.add_late(
        at,
        "call.cost_reported",
        leg_id=leg_id,
        cost_usd_cents=cost_value(rng, seconds, per_minute),
        **extra,
    )
    if rng.random() < 0.08:  # a later correction: the latest report wins
        call.add_late(
            at + rng.randint(60_000, 30 * 60_000),
            "call.cost_reported",
            leg_id=leg_id,
            cost_usd_cents=cost_value(rng, seconds, per_minute),
            **extra,
        )
