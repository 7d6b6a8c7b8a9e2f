"""The native fast path (`ringlog_native`) builds exactly the event pydantic builds, or
answers None.

Differential: for any event object (the generator's, with any field replaced, removed or
added, and times, amounts and digests drawn from their parts), whenever the native
validator answers, its model is the one `validate_with_pydantic` gives: the same class, the
same fields in the same order with values of the same types and reprs, the same fields-set.
And it does answer for the forms producers send, or it would be no faster.
"""

from __future__ import annotations

import hashlib
import os
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from devtools.traffic import generate_events
from schemas.events import EVENT_MODELS, Envelope
from worker.core.decode import validate_with_pydantic
from worker.core.native_fast_path import (
    NATIVE_MISSING,
    NOT_NATIVE,
    VALIDATOR,
    UnknownKind,
    field_kind,
    model_spec,
    payload_digest,
)

if VALIDATOR is None:  # pragma: no cover - depends on the installation
    if os.environ.get("CI"):
        pytest.fail(f"ringlog_native is not installed: {NATIVE_MISSING}", pytrace=False)
    pytest.skip(f"ringlog_native is not installed: {NATIVE_MISSING}", allow_module_level=True)
NATIVE = VALIDATOR

SAMPLES: list[dict[str, Any]] = [
    orjson.loads(m.value) for m in generate_events(600, seed=23, invalid_share=0.0, oversized=0)
]
BY_TYPE: dict[str, dict[str, Any]] = {s["type"]: s for s in SAMPLES}

UUID = "5dbf5e05-2d47-5f81-948a-449b75d3d063"
TRICKY: list[object] = [
    UUID,
    UUID.upper(),
    "{" + UUID + "}",
    UUID + "\n",
    "+14155550100",
    "+14155550100\n",
    "+1415555010012345",
    "+0123",
    "+١٢٣٤٥٦",
    "2024-05-01T01:00:07.395-07:00",
    "2024-05-01T01:00:07.395Z\n",
    "2024-05-01t01:00:07Z",
    "2024-05-01 01:00:07.1234567+05:30",
    "2024-02-30T01:00:07.395Z",
    "1969-12-31T23:59:59.999Z",
    "2106-01-01T00:00:00.000Z",
    "2105-12-31T23:30:00.000-01:00",
    "2024-05-01T24:00:00.000Z",
    "2024-05-01T01:00:07.395+24:00",
    "2024-05-01T01:00:07.395+00:60",
    "2024-05-01T01:00:07.Z",
    "999999999999.9999",
    "1000000000000",
    "0001000000000.5",
    " 12",
    "1e3",
    "1_000",
    "١٢",
    1000000000000,
    999999999999,
    0,
    -1,
    0.1,
    -0.0,
    1e-7,
    1e300,
    float("inf"),
    float("nan"),
    2**31 - 1,
    2**31,
    2**32,
    2**63 - 1,
    2**63,
    -(2**31) - 1,
    "",
    "x" * 128,
    "x" * 129,
    "é" * 64,
    "é" * 65,
    "\ud800",
    None,
    1,
    True,
    False,
    ["x"],
    {"a": 1},
    {1: "a"},
]


def fields_of(model: BaseModel) -> list[tuple[str, type, str]]:
    return [(name, type(value), repr(value)) for name, value in model.__dict__.items()]


def assert_same_event(native: Envelope, expected: object) -> None:
    assert isinstance(expected, Envelope), f"native accepted what pydantic refuses: {expected}"
    assert type(native) is type(expected)
    assert fields_of(native) == fields_of(expected)
    assert native == expected
    assert native.model_fields_set == expected.model_fields_set
    assert type(native.model_fields_set) is type(expected.model_fields_set)  # a set of its own
    assert native.__pydantic_extra__ == expected.__pydantic_extra__
    assert native.__pydantic_private__ == expected.__pydantic_private__
    for name, value in native.__dict__.items():
        if isinstance(value, datetime):
            assert value.tzinfo is UTC, name


def check(data: dict[str, Any]) -> Envelope | None:
    """The native answer for `data`, checked against pydantic's whenever there is one."""
    native = NATIVE.validate(dict(data))
    if native is not None:
        assert_same_event(native, validate_with_pydantic(dict(data)))
    return native


def test_every_event_type_has_a_native_spec() -> None:
    assert NOT_NATIVE == {}


def test_the_generated_events_take_the_native_path() -> None:
    """Every generated event without nulls (nulls are left to pydantic) is answered."""
    answered = [s for s in SAMPLES if None not in s.values()]
    assert len(answered) > len(SAMPLES) * 0.9
    assert set(BY_TYPE) == set(EVENT_MODELS) - {
        "incoming_call.item_amended",
        "incoming_call.item_deleted",
    }
    for sample in answered:
        assert check(sample) is not None, sample


FIELD_VALUES = st.one_of(
    st.sampled_from(TRICKY),
    st.text(max_size=40),
    st.integers(),
    st.floats(),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)
"""What a field of a generated event is replaced with."""


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data(), FIELD_VALUES)
def test_a_native_answer_is_pydantic_answer(
    sample: dict[str, Any], data: st.DataObject, value: object
) -> None:
    event = dict(sample)
    field = data.draw(st.sampled_from([*sorted(event), "__extra__"]), label="field")
    action = data.draw(st.sampled_from(["replace", "remove"]), label="action")
    if action == "remove":
        event.pop(field, None)
    else:
        event[field] = value
    check(event)


@st.composite
def rfc3339_ish(draw: st.DrawFn) -> str:
    """Times from their parts, most of them valid, some off by one in any part."""
    year = draw(st.integers(0, 10000))
    month, day = draw(st.integers(0, 13)), draw(st.integers(0, 32))
    hour, minute, second = (
        draw(st.integers(0, 24)),
        draw(st.integers(0, 60)),
        draw(st.integers(0, 60)),
    )
    separator = draw(st.sampled_from("Tt _"))
    fraction = draw(st.one_of(st.just(""), st.from_regex(r"\.[0-9]{0,9}", fullmatch=True)))
    offset = draw(
        st.one_of(
            st.sampled_from(["Z", "z", "", "+00:00", "-00:00", "+0530", "UTC"]),
            st.builds(
                lambda sign, h, m: f"{sign}{h:02d}:{m:02d}",
                st.sampled_from("+-"),
                st.integers(0, 25),
                st.integers(0, 61),
            ),
        )
    )
    date = f"{year:04d}-{month:02d}-{day:02d}"
    return f"{date}{separator}{hour:02d}:{minute:02d}:{second:02d}{fraction}{offset}"


@settings(max_examples=3000)
@given(rfc3339_ish())
def test_times_read_as_pydantic_reads_them(text: str) -> None:
    event = dict(BY_TYPE["cdr.recorded"])
    event["occurred_at"] = text
    event["answered_at"] = text
    answered = check(event)
    if isinstance(validate_with_pydantic(dict(event)), Envelope):
        # Any time pydantic accepts in these forms, the native path reads too.
        assert answered is not None, text


@settings(max_examples=2000)
@given(
    st.one_of(
        st.integers(-5, 2 * 10**12),
        st.floats(allow_nan=True, allow_infinity=True),
        st.from_regex(r"[0-9]{1,14}(\.[0-9]{1,6})?", fullmatch=True),
        st.decimals(allow_nan=False, allow_infinity=False).map(str),
    )
)
def test_amounts_read_as_pydantic_reads_them(amount: object) -> None:
    for event_type, field in (("call.cost_reported", "cost_usd_cents"), ("cdr.recorded", "cost")):
        event = dict(BY_TYPE[event_type])
        event[field] = amount
        answered = check(event)
        plain = not isinstance(amount, str) or re.fullmatch(r"[0-9]+(\.[0-9]+)?", amount)
        if plain and isinstance(validate_with_pydantic(dict(event)), Envelope):
            assert answered is not None, amount


def test_amendments_need_one_of_their_fields() -> None:
    base = dict(BY_TYPE["incoming_call.dial_ended"])
    amendment = {
        k: base[k] for k in ("event_id", "occurred_at", "project_id", "call_id", "dial_id")
    }
    amendment["type"] = "incoming_call.item_amended"
    assert check(amendment) is None  # pydantic names what is missing
    for field, value in (
        ("status", "Completed"),
        ("is_answered", False),
        ("call_cost_usd_cents", "12.5"),
        ("user_id", UUID),
        ("user_phone_number", "+14155550100"),
        ("escalation_rule_id", UUID),
        ("status_message", ""),
    ):
        assert check({**amendment, field: value}) is not None, field
    deleted = {**amendment, "type": "incoming_call.item_deleted"}
    assert check(deleted) is not None


@given(st.binary(max_size=2048))
def test_digest_is_blake2b_of_eight_bytes(payload: bytes) -> None:
    expected = int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")
    assert payload_digest(payload) == expected


def test_a_kind_it_does_not_know_leaves_the_type_to_pydantic() -> None:
    class WithAFloat(Envelope):
        type: Literal["x"]
        ratio: float

    with pytest.raises(UnknownKind, match="ratio"):
        model_spec(WithAFloat)
    with pytest.raises(UnknownKind):
        field_kind("amount", Decimal)
