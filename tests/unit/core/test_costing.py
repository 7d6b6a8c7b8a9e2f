"""Rate plans and billing arithmetic, including the contract's worked checks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from worker.core.costing import billed_seconds, cost_of, rate
from worker.core.rates import RateEntry, RatePlanError, load_rate_plan, parse_rate_plan


def entry(
    connect: str,
    per_min: str,
    initial: int,
    subsequent: int,
    prefix: str = "",
    direction: str = "outbound",
) -> RateEntry:
    return RateEntry.model_validate(
        {
            "direction": direction,
            "prefix": prefix,
            "connect_fee_cents": connect,
            "rate_cents_per_minute": per_min,
            "initial_increment_seconds": initial,
            "subsequent_increment_seconds": subsequent,
        }
    )


def test_worked_checks_of_the_contract() -> None:
    assert cost_of(61, entry("0", "1.3", 60, 60)) == Decimal("2.6000")
    assert billed_seconds(61, entry("0", "1.3", 60, 60)) == 120
    assert cost_of(45, entry("0.5", "0.85", 1, 1)) == Decimal("1.1375")


@pytest.mark.parametrize(
    ("talk", "billed"), [(0, 0), (1, 30), (30, 30), (31, 36), (36, 36), (37, 42), (90, 90)]
)
def test_billed_seconds_increments(talk: int, billed: int) -> None:
    assert billed_seconds(talk, entry("0", "1", 30, 6)) == billed


def test_zero_talk_costs_nothing_even_with_a_connect_fee() -> None:
    assert cost_of(0, entry("5", "1", 60, 60)) == Decimal("0.0000")


def test_half_up_rounding_to_four_decimals() -> None:
    # 0.00005 exactly at the boundary rounds up: 0.003 c/min * 1 s / 60 = 0.00005
    assert cost_of(1, entry("0", "0.003", 1, 1)) == Decimal("0.0001")


def test_longest_prefix_wins_and_default_applies() -> None:
    plan = parse_rate_plan("""
- {direction: outbound, prefix: "", connect_fee_cents: 0, rate_cents_per_minute: 1,
   initial_increment_seconds: 60, subsequent_increment_seconds: 60}
- {direction: outbound, prefix: "44", connect_fee_cents: 0, rate_cents_per_minute: 2,
   initial_increment_seconds: 60, subsequent_increment_seconds: 60}
- {direction: outbound, prefix: "447", connect_fee_cents: 0, rate_cents_per_minute: 3,
   initial_increment_seconds: 60, subsequent_increment_seconds: 60}
""")
    assert rate(plan, "outbound", "+447700900123", 60) == Decimal("3.0000")
    assert rate(plan, "outbound", "+442071838750", 60) == Decimal("2.0000")
    assert rate(plan, "outbound", "+15550100", 60) == Decimal("1.0000")
    assert rate(plan, "inbound", "+15550100", 60) is None  # no inbound entry at all
    assert rate(plan, "outbound", "+15550100", None) is None


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{}", "must be a YAML list"),
        (
            "- {direction: sideways, prefix: '', connect_fee_cents: 0, rate_cents_per_minute: 1, "
            "initial_increment_seconds: 1, subsequent_increment_seconds: 1}",
            "direction",
        ),
        (
            "- {direction: inbound, prefix: '', connect_fee_cents: 0, rate_cents_per_minute: 1, "
            "initial_increment_seconds: 1}",
            "subsequent_increment_seconds",
        ),
        (
            "- {direction: inbound, prefix: '', connect_fee_cents: 0, rate_cents_per_minute: 1, "
            "initial_increment_seconds: 1, subsequent_increment_seconds: 1, extra: 1}",
            "extra",
        ),
        (
            "- {direction: inbound, prefix: '+44', connect_fee_cents: 0, rate_cents_per_minute: 1, "
            "initial_increment_seconds: 1, subsequent_increment_seconds: 1}",
            "prefix",
        ),
        ("[a, b", "not valid YAML"),
    ],
)
def test_bad_rate_plans_fail_with_a_message_naming_the_problem(text: str, needle: str) -> None:
    with pytest.raises(RatePlanError, match=needle):
        parse_rate_plan(text, "plan.yaml")


def test_shipped_default_plan_loads() -> None:
    plan = load_rate_plan(None)
    assert plan.lookup("inbound", "+15550100") is not None
    assert plan.lookup("outbound", "+15550100") is not None
