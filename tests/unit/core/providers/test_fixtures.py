"""Every provider fixture through its normalizer and the pure core: exactly the rows worked
out by hand, whatever the order and however often the provider delivers."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import provider_fixtures as pf
from worker.core.decode import validate_object

CASES = [(provider, name) for provider in pf.PROVIDERS for name in pf.names(provider)]


def test_every_scenario_the_issue_asks_for_has_a_fixture() -> None:
    assert set(pf.names("twilio")) == {
        "answered_second_user",
        "nobody_answers_busy_failed",
        "caller_hangs_up",
        "outbound_notification",
        "late_price",
    }
    assert set(pf.names("portsip")) == {
        "answered_second_user",
        "nobody_answers_busy_failed",
        "caller_hangs_up",
        "outbound_cdr",
        "late_cost",
    }


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_fixture_gives_the_hand_computed_rows(provider: str, name: str) -> None:
    fixture = pf.load(provider, name)
    normalized = pf.normalize_all(provider, fixture["deliveries"])
    assert normalized.unmapped == ()
    assert pf.rows_of(normalized.events) == pf.expected_rows(fixture)


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_every_event_is_valid_for_the_worker_and_names_its_provider(
    provider: str, name: str
) -> None:
    events = pf.normalize_all(provider, pf.load(provider, name)["deliveries"]).events
    assert events
    for event in events:
        verdict = validate_object(dict(event))
        assert not hasattr(verdict, "code"), (event, verdict)
        assert event["source"] == provider
        assert event["project_id"] == pf.CONTEXTS[provider].project_id


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_a_repeated_delivery_repeats_its_event_ids(provider: str, name: str) -> None:
    for delivery in pf.load(provider, name)["deliveries"]:
        first = pf.normalize(provider, delivery).events
        assert pf.normalize(provider, delivery).events == first


def test_event_ids_are_unique_within_a_call() -> None:
    for provider, name in CASES:
        events = pf.normalize_all(provider, pf.load(provider, name)["deliveries"]).events
        ids = [e["event_id"] for e in events]
        assert len(ids) == len(set(ids)), (provider, name)


@st.composite
def deliveries_in_any_order(draw: st.DrawFn) -> tuple[str, str, list[dict[str, Any]]]:
    provider, name = draw(st.sampled_from(CASES))
    deliveries = pf.load(provider, name)["deliveries"]
    repeated = draw(st.lists(st.sampled_from(deliveries), max_size=len(deliveries)))
    shuffled = draw(st.permutations(deliveries + repeated))
    return provider, name, shuffled


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries_in_any_order())
def test_shuffled_and_duplicated_deliveries_give_the_same_rows(
    case: tuple[str, str, list[dict[str, Any]]],
) -> None:
    provider, name, deliveries = case
    normalized = pf.normalize_all(provider, deliveries)
    assert pf.rows_of(normalized.events) == pf.expected_rows(pf.load(provider, name))
