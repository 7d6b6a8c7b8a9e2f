"""The native packer (`ringlog_native.EventPacker`) gives back exactly what it was given, or
refuses the call (which then takes the Python format).

Differential: calls of events decoded by both decoder paths (the generator's events with
fields replaced or removed, nulls, floats for money, every event type) and odd events built
by hand come back from `unpack(pack(x))` identical to x, field by field: the same class,
values of the same types and reprs in the same order, a fields-set of its own that is equal,
the same digest. And a natively packed call is never larger than the marshal one.
"""

from __future__ import annotations

import json
import marshal
import os
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, get_args

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devtools.traffic import generate_events
from schemas.events import Envelope, IncomingCallEnded
from tests.support.builders import PROJECT, amended, deleted
from worker.core import event_pack
from worker.core.decode import ValidEvent, validate_object, validate_with_pydantic
from worker.core.native_fast_path import NATIVE_MISSING, VALIDATOR

if event_pack._NATIVE is None:  # pragma: no cover - depends on the installation
    if os.environ.get("CI"):
        pytest.fail(f"ringlog_native is not installed: {NATIVE_MISSING}", pytrace=False)
    pytest.skip(f"ringlog_native is not installed: {NATIVE_MISSING}", allow_module_level=True)
NATIVE = event_pack._NATIVE
TAG = bytes([event_pack.NATIVE_TAG])
KEY = (PROJECT, "c")
KEY_FIELDS = {"project_id": PROJECT, "call_id": "c"}

GENERATED: list[dict[str, Any]] = [
    orjson.loads(m.value) for m in generate_events(800, seed=29, invalid_share=0.0, oversized=0)
]
SAMPLES: list[dict[str, Any]] = [
    *GENERATED,
    amended("c", "d1", 60, status="Completed", call_cost_usd_cents="12.50", is_answered=True),
    amended("c", "d1", 61, user_id="5DBF5E05-2D47-5F81-948A-449B75D3D063"),
    deleted("c", "d2", 62),
]
VALUES: list[object] = [
    None,
    "",
    "x",
    "é" * 3,
    "\U0001f4de",
    "5dbf5e05-2d47-5f81-948a-449b75d3d063",
    "5DBF5E05-2D47-5F81-948A-449B75D3D063",
    "{5dbf5e05-2d47-5f81-948a-449b75d3d063}",
    "+14155550100",
    "2024-05-01T01:00:07.395-07:00",
    "2024-05-01 01:00:07.1234567+05:30",
    "1970-01-01T00:00:00Z",
    "2105-12-31T23:59:59.999Z",
    "0.10",
    "12.5000",
    "000123.40",
    0,
    1,
    7,
    2**31,
    2**62,
    0.1,
    12.5,
    1e-7,
    123456789.125,
    True,
    False,
    {},
    {"a": [1, 2.5, None, True, "é"], "b": {"c": -(2**70)}},
    "Completed",
    "no_answer",
]


def decoded(data: dict[str, Any], path: str) -> Envelope | None:
    validate = validate_object if path == "native" else validate_with_pydantic
    event = validate(dict(data))
    return event if isinstance(event, Envelope) else None


def fields_of(model: Envelope) -> list[tuple[str, type, str]]:
    return [(name, type(value), repr(value)) for name, value in model.__dict__.items()]


def assert_identical(back: dict[str, ValidEvent], given: dict[str, ValidEvent]) -> None:
    assert list(back) == list(given)
    for event_id, ev in given.items():
        got = back[event_id]
        assert type(got) is ValidEvent
        assert type(got.digest) is int and got.digest == ev.digest
        model, original = got.event, ev.event
        assert type(model) is type(original)
        assert fields_of(model) == fields_of(original)
        assert model == original
        assert type(model.model_fields_set) is set
        assert model.model_fields_set == original.model_fields_set
        assert model.model_fields_set is not original.model_fields_set
        assert model.__pydantic_extra__ is None and model.__pydantic_private__ is None
        assert model.project_id is KEY[0] and model.call_id is KEY[1]
        for name, value in model.__dict__.items():
            if isinstance(value, datetime) and original.__dict__[name].tzinfo is UTC:
                assert value.tzinfo is UTC, name


def round_trip(events: dict[str, ValidEvent]) -> bytes:
    packed = event_pack.pack(events)
    assert_identical(event_pack.unpack(packed, KEY), events)
    return packed


def altered_message(draw: st.DrawFn, event_id: str) -> dict[str, Any]:
    """A sample message of the call `KEY` with up to three fields replaced or removed."""
    data = dict(draw(st.sampled_from(SAMPLES)))
    data |= {"project_id": PROJECT, "call_id": "c", "event_id": event_id}
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(set(data) - {"project_id", "call_id", "type"})))
        if draw(st.booleans()):
            data[name] = draw(
                st.one_of(st.sampled_from(VALUES), st.floats(0, 1e9), st.text(max_size=8))
            )
        else:
            del data[name]
    return data


@st.composite
def calls(draw: st.DrawFn) -> dict[str, ValidEvent]:
    """1-6 events of one call, each decoded by either path after some of its fields were
    replaced or removed (events the decoders refuse are left out)."""
    out: dict[str, ValidEvent] = {}
    for i in range(draw(st.integers(1, 6))):
        data = altered_message(draw, f"e{i}")
        event = decoded(data, draw(st.sampled_from(["native", "pydantic"])))
        if event is not None:
            out[event.event_id] = ValidEvent(event, draw(st.integers(0, 2**64 - 1)))
    return out


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(calls())
def test_a_packed_call_comes_back_identical(events: dict[str, ValidEvent]) -> None:
    packed = round_trip(events)
    assert packed[:1] == TAG  # every decoded event is packed natively


def test_the_generated_calls_are_packed_natively_and_not_larger() -> None:
    by_call: dict[str, dict[str, ValidEvent]] = defaultdict(dict)
    for i, data in enumerate(GENERATED):
        data = {**data, "project_id": PROJECT, "call_id": "c"}
        event = decoded(data, "native" if i % 2 else "pydantic")
        assert event is not None
        by_call[orjson.dumps(GENERATED[i]["call_id"]).decode()][event.event_id] = ValidEvent(
            event, i * 2**50
        )
    assert len(by_call) > 20
    native = python = 0
    for events in by_call.values():
        packed = round_trip(events)
        assert packed[:1] == TAG
        as_marshal = event_pack._pack_marshal(events)
        assert len(packed) <= len(as_marshal)
        native, python = native + len(packed), python + len(as_marshal)
    assert native < python * 0.8, (native, python)


def _from_bytes(data: dict[str, Any]) -> ValidEvent | None:
    """The native decoder's event of a message (it writes the event's packed bytes too)."""
    assert VALIDATOR is not None
    # json, not orjson: a value may be an int past 64 bits
    ev: ValidEvent | None = VALIDATOR.decode(json.dumps(data).encode(), KEY[1].encode())
    return ev


def _without_bytes(events: dict[str, ValidEvent]) -> dict[str, ValidEvent]:
    return {event_id: ValidEvent(ev.event, ev.digest) for event_id, ev in events.items()}


def _has_object(events: dict[str, ValidEvent]) -> bool:
    return any(isinstance(v, dict) for ev in events.values() for v in ev.event.__dict__.values())


@st.composite
def decoded_calls(draw: st.DrawFn) -> dict[str, ValidEvent]:
    """1-6 events of one call, as `calls` but decoded from their bytes by the native decoder,
    which also writes their packed bytes (some are then left without them)."""
    out: dict[str, ValidEvent] = {}
    for i in range(draw(st.integers(1, 6))):
        data = altered_message(draw, f"e{i}")
        ev = _from_bytes(data)
        if ev is not None:
            assert ev.packed is not None  # every natively decoded model is natively packed
            out[ev.event.event_id] = ev if draw(st.booleans()) else ValidEvent(ev.event, ev.digest)
    return out


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(decoded_calls())
def test_the_decoders_packed_bytes_are_the_packers(events: dict[str, ValidEvent]) -> None:
    """A call packed from the bytes the decoder wrote is the call packed from the models:
    byte for byte (but for marshal's reference flags in call_data, which follow refcounts),
    and it comes back identical, each event with its own bytes, which pack the same again."""
    packed = round_trip(events)
    from_models = NATIVE.pack(_without_bytes(events))
    assert packed[:1] == TAG and from_models is not None
    if not _has_object(events):
        assert packed == from_models
    assert_identical(event_pack.unpack(from_models, KEY), events)
    back = event_pack.unpack(packed, KEY)
    assert all(ev.packed is not None for ev in back.values())
    assert event_pack.pack(back) == packed


def test_generated_traffic_decoded_from_bytes_packs_as_from_its_models() -> None:
    assert VALIDATOR is not None
    by_call: dict[str, dict[str, ValidEvent]] = defaultdict(dict)
    messages = list(generate_events(800, seed=31, invalid_share=0.0, oversized=0))
    for message in messages:
        ev = VALIDATOR.decode(message.value, message.key)
        if ev is not None:  # None: a form the native decoder leaves to pydantic
            assert ev.packed is not None
            by_call[ev.event.call_id][ev.event.event_id] = ev
    assert sum(map(len, by_call.values())) > 0.9 * len(messages)
    compared = 0
    for events in by_call.values():
        first = next(iter(events.values())).event
        key = (first.project_id, first.call_id)
        packed = NATIVE.pack(events)
        assert packed is not None
        if not _has_object(events):
            assert packed == NATIVE.pack(_without_bytes(events))
            compared += 1
        back = event_pack.unpack(packed, key)
        assert [(fields_of(b.event), b.digest) for b in back.values()] == [
            (fields_of(e.event), e.digest) for e in events.values()
        ]
    assert compared > 20


def test_bytes_of_another_digest_or_model_are_not_used() -> None:
    ev = _from_bytes({**_ended().event.model_dump(mode="json"), "event_id": "a"})
    assert ev is not None and ev.packed is not None
    other_digest = ValidEvent(ev.event, ev.digest ^ 1, ev.packed)
    # The same values in the contract's class (the decoder builds the fast model's).
    contract = IncomingCallEnded.model_construct(**ev.event.__dict__)
    assert type(contract) is not type(ev.event)
    other_model = ValidEvent(contract, ev.digest, ev.packed)
    for stale in (other_digest, other_model):
        from_model = NATIVE.pack({"a": ValidEvent(stale.event, stale.digest)})
        assert NATIVE.pack({"a": stale}) == from_model
    for odd in (b"", b"\x01", ev.packed[:5], bytearray(ev.packed)):
        weird = ValidEvent(ev.event, ev.digest, odd)  # type: ignore[arg-type]
        assert NATIVE.pack({"a": weird}) == NATIVE.pack({"a": ValidEvent(ev.event, ev.digest)})


def test_marshal_never_starts_with_the_tag() -> None:
    # The Python format is always a marshalled tuple: '(' or ')', with or without FLAG_REF.
    for n in (0, 1, 300):
        assert marshal.dumps(tuple(range(n)))[0] in (0x28, 0x29, 0xA8, 0xA9)
    assert event_pack.NATIVE_TAG not in (0x28, 0x29, 0xA8, 0xA9)


def _ended() -> ValidEvent:
    data = next(s for s in GENERATED if s["type"] == "incoming_call.ended")
    data = {**data, **KEY_FIELDS, "source": "pbx", "event_id": "a"}
    event = decoded(data, "native")
    assert isinstance(event, IncomingCallEnded)
    return ValidEvent(event, 5)


class _Str(str):
    pass


class _Later(IncomingCallEnded):
    pass


ODD: dict[str, Any] = {
    "offset": {"occurred_at": datetime(2024, 5, 1, 8, tzinfo=timezone(timedelta(hours=2)))},
    "naive": {"occurred_at": datetime(2024, 5, 1, 8)},
    "fold": {"occurred_at": datetime(2024, 5, 1, 8, fold=1, tzinfo=UTC)},
    "str-time": {"occurred_at": "2024-05-01"},
    "big-int": {"sequence": 2**64},
    "bool-int": {"sequence": True},
    "float-int": {"sequence": 1.5},
    "str-subclass": {"source": _Str("pbx")},
    "surrogate": {"status_message": "\ud800"},
    "not-a-literal": {"outcome": "other"},
    "negative-digest": -1,
    "big-digest": 2**64,
    "bool-digest": True,
    "unknown-class": _Later,
}
# What the Python format cannot pack either (marshal refuses a str subclass; a str is no
# time) or gives back otherwise (isoformat drops fold).
NOT_PYTHON = {"str-subclass", "str-time", "fold"}


@pytest.mark.parametrize("case", sorted(ODD))
def test_what_the_native_packer_cannot_give_back_takes_the_python_format(case: str) -> None:
    ev, odd = _ended(), ODD[case]
    if isinstance(odd, dict):
        ev = ValidEvent(type(ev.event).model_construct(**{**ev.event.__dict__, **odd}), 1)
    elif isinstance(odd, type) and issubclass(odd, Envelope):
        ev = ValidEvent(odd.model_construct(**ev.event.__dict__), 1)
    else:
        ev = ValidEvent(ev.event, odd)
    first = ValidEvent(_ended().event.model_copy(update={"event_id": "first"}), 2)
    events = {"first": first, ev.event.event_id: ev}
    assert NATIVE.pack(events) is None
    if case not in NOT_PYTHON:
        packed = event_pack.pack(events)
        assert packed[:1] != TAG
        back = event_pack.unpack(packed, KEY)
        assert [(fields_of(e.event), e.digest) for e in back.values()] == [
            (fields_of(e.event), e.digest) for e in events.values()
        ]


def test_odd_fields_sets_and_dicts_take_the_python_format() -> None:
    ev = _ended()
    extra_name = ev.event.model_copy()
    object.__setattr__(extra_name, "__pydantic_fields_set__", {"outcome", "not_a_field"})
    frozen = ev.event.model_copy()
    object.__setattr__(frozen, "__pydantic_fields_set__", frozenset({"outcome"}))
    extra = ev.event.model_copy()
    object.__setattr__(extra, "__pydantic_extra__", {"x": 1})
    reordered = ev.event.model_copy()
    object.__setattr__(reordered, "__dict__", dict(reversed(ev.event.__dict__.items())))
    for model in (extra_name, frozen, extra, reordered):
        assert NATIVE.pack({"x": ValidEvent(model, 1)}) is None


def test_shared_objects_stay_shared() -> None:
    a, b = _ended(), _ended()
    b = ValidEvent(b.event.model_copy(update={"event_id": "other"}), 6)
    back = list(event_pack.unpack(round_trip({"a": a, "other": b}), KEY).values())
    assert back[0].event.source is back[1].event.source is event_pack._SOURCES["pbx"]
    outcomes = get_args(IncomingCallEnded.model_fields["outcome"].annotation)
    assert isinstance(back[0].event, IncomingCallEnded)
    assert any(back[0].event.outcome is value for value in outcomes)
    assert back[0].event.type is back[1].event.type


def test_call_data_and_money_keep_their_values() -> None:
    data = next(s for s in GENERATED if s["type"] == "outbound_call.placed")
    data = {**data, "project_id": PROJECT, "call_id": "c"}
    data["call_data"] = {"n": 1.5, "deep": [{"x": None}, -(2**80), "é"], "t": True}
    event = decoded(data, "pydantic")
    assert event is not None
    cost = decoded(
        {**next(s for s in GENERATED if s["type"] == "call.cost_reported"), **KEY_FIELDS},
        "native",
    )
    # Decimal(str(d)) keeps the sign, digits and exponent: the same repr.
    assert cost is not None
    events = {event.event_id: ValidEvent(event, 1)}
    for i, amount in enumerate(["-0.000E+3", "1.50E+5", "0.1000", "12345678901.25"]):
        update = {"event_id": f"cost{i}", "cost_usd_cents": Decimal(amount)}
        events[f"cost{i}"] = ValidEvent(cost.model_copy(update=update), 2)
    packed = round_trip(events)
    assert packed[:1] == TAG


def test_corrupt_bytes_raise_instead_of_crashing() -> None:
    events = {ev.event.event_id: ev for ev in (_ended(),)}
    packed = NATIVE.pack(events)
    assert packed is not None
    for end in range(1, len(packed)):
        with pytest.raises(ValueError):
            NATIVE.unpack(packed[:end], KEY)
    with pytest.raises(ValueError):
        NATIVE.unpack(packed + b"\0", KEY)
