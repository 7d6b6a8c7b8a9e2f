"""Billing arithmetic (DESIGN.md section 3, "Costs"). Pure and exact: Decimal, no floats."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from worker.core.rates import Direction, RateEntry, RatePlan

CENTS = Decimal("0.0001")
ZERO = Decimal("0.0000")


def billed_seconds(talk_seconds: int, entry: RateEntry) -> int:
    """Seconds billed for `talk_seconds` under the entry's increments (0 for no talk)."""
    if talk_seconds <= 0:
        return 0
    initial = entry.initial_increment_seconds
    if talk_seconds <= initial:
        return initial
    step = entry.subsequent_increment_seconds
    return initial + -(-(talk_seconds - initial) // step) * step


def round_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENTS, rounding=ROUND_HALF_UP)


def cost_of(talk_seconds: int, entry: RateEntry) -> Decimal:
    if talk_seconds <= 0:
        return ZERO
    billed = billed_seconds(talk_seconds, entry)
    return round_cents(entry.connect_fee_cents + entry.rate_cents_per_minute * billed / 60)


def rate(
    plan: RatePlan, direction: Direction, number: str | None, talk_seconds: int | None
) -> Decimal | None:
    """Rated cost in US cents, or None when the talk time or a matching rate is unknown."""
    if talk_seconds is None:
        return None
    if talk_seconds <= 0:
        return ZERO
    entry = plan.lookup(direction, number)
    if entry is None:
        return None
    return cost_of(talk_seconds, entry)
