"""The decoder's fast path answers exactly as the contract models do.

`worker.core.event_fast_path` swaps the contract's Python checks of UUIDs and E.164 numbers
for pydantic-core patterns, and falls back to the contract model for anything it refuses.
Property: for any event object (valid ones from the traffic generator, with any field
replaced by a tricky or arbitrary value), `validate_object` gives the same event (same
contract class, same values) or the same rejection as validating with the contract model
alone.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError, model_validator

from devtools.traffic import generate_events
from schemas.events import EVENT_MODELS, Envelope
from worker.core.decode import Rejection, validate_object, validate_with_pydantic
from worker.core.event_fast_path import CONTRACT_MODEL, FAST_MODELS

SAMPLES: list[dict[str, Any]] = [
    orjson.loads(m.value) for m in generate_events(400, seed=11, invalid_share=0.0, oversized=0)
]

UUID = "5dbf5e05-2d47-5f81-948a-449b75d3d063"
TRICKY: list[object] = [
    UUID,
    UUID.upper(),
    "{" + UUID + "}",
    "urn:uuid:" + UUID,
    UUID.replace("-", ""),
    UUID + "\n",
    " " + UUID,
    UUID[:-1] + "g",
    "+14155550100",
    "+14155550100\n",
    "+1415555010012345",
    "+0123",
    "+١٢٣٤٥٦",
    "14155550100",
    "2024-05-01T01:00:07.395-07:00",
    "2024-05-01T01:00:07.395Z\n",
    # column ranges (worker.core.column_ranges): just inside and just outside
    "1970-01-01T00:00:00.000Z",
    "1969-12-31T23:59:59.999Z",
    "1970-01-01T00:30:00.000+01:00",
    "2105-12-31T23:59:59.999Z",
    "2106-01-01T00:00:00.000Z",
    "2105-12-31T23:30:00.000-01:00",
    "0001-01-01T00:00:00Z",
    "999999999999.9999",
    "1000000000000",
    1000000000000,
    0,
    -1,
    2**31 - 1,
    2**31,
    2**32 - 1,
    2**32,
    2**63 - 1,
    2**63,
    -(2**31),
    -(2**31) - 1,
    "",
    None,
    1,
    True,
    ["x"],
    {"a": 1},
]


class NeverValid(Envelope):
    """A fast model that refuses everything: the decoder falls back to the contract path."""

    @model_validator(mode="before")
    @classmethod
    def _refuse(cls, data: object) -> object:
        raise ValueError("refused")


def contract_only(data: dict[str, Any]) -> Envelope | Rejection:
    """What validate_object answered before the fast paths: the contract model and the
    column-range check alone (the native fast path has a test of its own)."""
    saved = dict(FAST_MODELS)  # the very dict the decoder reads
    FAST_MODELS.clear()
    FAST_MODELS.update(dict.fromkeys(EVENT_MODELS, NeverValid))
    try:
        return validate_with_pydantic(data)
    finally:
        FAST_MODELS.clear()
        FAST_MODELS.update(saved)


def comparable(result: Envelope | Rejection) -> object:
    if isinstance(result, Rejection):
        return result
    model = type(result)
    return (CONTRACT_MODEL.get(model, model), result.model_dump())


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SAMPLES),
    st.data(),
    st.one_of(st.sampled_from(TRICKY), st.text(max_size=40), st.integers()),
)
def test_fast_path_answers_as_the_contract(
    sample: dict[str, Any], data: st.DataObject, value: object
) -> None:
    event = dict(sample)
    field = data.draw(st.sampled_from(sorted(event)), label="field")
    if field != "type":
        event[field] = value
    assert comparable(validate_object(dict(event))) == comparable(contract_only(dict(event)))


def test_every_generated_event_takes_the_fast_path() -> None:
    """The generator's canonical events never need the contract model (else no speed-up)."""
    for sample in SAMPLES:
        fast = FAST_MODELS[sample["type"]]
        try:
            fast.model_validate(sample)
        except ValidationError as exc:  # pragma: no cover - the failure message
            raise AssertionError(f"{sample['type']} left the fast path: {exc}") from exc


def test_fast_models_are_contract_subclasses_with_the_same_fields() -> None:
    for event_type, fast in FAST_MODELS.items():
        contract = EVENT_MODELS[event_type]
        assert issubclass(fast, contract)
        assert list(fast.model_fields) == list(contract.model_fields)


def _sample_of(event_type: str) -> dict[str, Any]:
    return dict(next(s for s in SAMPLES if s["type"] == event_type))


@pytest.mark.parametrize(
    ("event_type", "field", "value"),
    [
        ("call.cost_reported", "cost_usd_cents", "999999999999.9999"),
        ("call.cost_reported", "cost_usd_cents", "1000000000000"),
        ("call.cost_reported", "cost_usd_cents", 1000000000000),
        ("call.cost_reported", "billable_seconds", 2**31),
        ("cdr.recorded", "cost", "1000000000000.0"),
        ("cdr.recorded", "status_code", -(2**31) - 1),
        ("cdr.recorded", "duration", 2**31 - 1),
        ("cdr.recorded", "started_at", "2106-01-01T00:00:00.000Z"),
        ("cdr.recorded", "ended_at", "1969-12-31T23:59:59.999Z"),
        ("incoming_call.dial_started", "escalation_rule_order", 2**32),
        ("incoming_call.dial_started", "repeat_count", 2**32 - 1),
        ("incoming_call.dial_started", "sequence", 2**63),
        ("incoming_call.received", "occurred_at", "2105-12-31T23:30:00.000-01:00"),
        # what the contract path checks before any model
        ("incoming_call.received", "schema_version", True),
        ("incoming_call.received", "schema_version", 1.0),
        ("incoming_call.received", "schema_version", "1"),
        ("incoming_call.received", "schema_version", 2),
        ("incoming_call.received", "schema_version", 1),
        ("incoming_call.received", "schema_version", None),
        ("incoming_call.received", "type", None),
        ("incoming_call.received", "type", 5),
        ("incoming_call.received", "type", ["incoming_call.received"]),
        ("incoming_call.received", "type", "incoming_call.nope"),
        ("incoming_call.received", "type", "incoming_call.dial_ended"),
        ("incoming_call.received", "source", None),
        ("incoming_call.received", "caller_phone_number", None),
    ],
)
def test_column_range_edges_answer_as_the_contract(
    event_type: str, field: str, value: object
) -> None:
    event = _sample_of(event_type)
    event[field] = value
    assert comparable(validate_object(dict(event))) == comparable(contract_only(dict(event)))
