"""The native decoder (`ringlog_native.EventValidator.decode`) reads a message's bytes and
gives exactly the `ValidEvent` the pure-Python decoder gives, or answers None.

Differential: for messages encoded in any JSON form (escapes, spacing, the generator's and
altered ones, bytes inserted, removed or replaced), whenever the native decoder answers, the
decoder without any native code accepts the message with the same event (class, values and
their types, fields-set) and the same digest. And it answers for the messages producers
send, or it would be no faster.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import worker.core.decode as decoder
from devtools.traffic import generate_events
from tests.unit.core.test_native_fast_path import (
    FIELD_VALUES,
    NATIVE,
    SAMPLES,
    assert_same_event,
)
from worker.core.decode import ValidEvent, decode
from worker.core.native_fast_path import build_validator

MESSAGES = list(generate_events(600, seed=29, invalid_share=0.0, oversized=0))


@pytest.fixture(autouse=True)
def _pure_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """`decode` below runs without any native code: the reference."""
    monkeypatch.setattr(decoder, "NATIVE", None)


def check(value: bytes, key: bytes | None) -> ValidEvent | None:
    """The native answer for a message, checked against the pure decoder's when there is one."""
    native = NATIVE.decode(value, key)
    if native is not None:
        expected = decode(key, value)
        assert isinstance(expected, ValidEvent), f"native accepted what is refused: {expected}"
        assert type(native) is ValidEvent
        assert_same_event(native.event, expected.event)
        assert native.digest == expected.digest
    return native


def encodings(data: dict[str, Any]) -> list[bytes]:
    """`data` as producers might write it: compact, spaced, escaped, indented."""
    return [
        orjson.dumps(data),
        json.dumps(data).encode(),
        json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode(),
        json.dumps(data, indent="\t").encode(),
        b" \r\n" + orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n",
    ]


def test_the_generated_messages_are_decoded_natively() -> None:
    answered = 0
    for message in MESSAGES:
        if check(message.value, message.key) is not None:
            answered += 1
    assert answered > len(MESSAGES) * 0.9


class ValidEventWithMore(ValidEvent):
    """A class of events with a slot more than ValidEvent's six."""

    __slots__ = ("more",)


def _slots(ev: ValidEvent) -> dict[str, object]:
    return {name: getattr(ev, name) for name in ValidEvent.__slots__}


def test_events_are_made_alike_in_place_or_through_object_new() -> None:
    """The validator writes ValidEvent's six slots in place (its layout read from the class);
    an event class of any other layout is made through object.__new__ and setattr instead,
    with the same slots. The direct fill must give exactly what the generic one gives."""
    validator, _ = build_validator(ValidEvent)
    generic, _ = build_validator(ValidEventWithMore)
    assert validator is not None and generic is not None
    for message in MESSAGES[:200]:
        direct = validator.decode(message.value, message.key)
        other = generic.decode(message.value, message.key)
        assert direct is not None and other is not None
        assert type(direct) is ValidEvent and type(other) is ValidEventWithMore
        assert _slots(direct) == _slots(other)
        assert direct._event is None and direct.packed is None  # no packer on these two
        assert gc.is_tracked(direct)
        assert not hasattr(other, "more")
        assert direct.event == other.event  # the model, built on first use, alike
        assert direct == decode(message.key, message.value)


def test_every_encoding_of_an_event_gives_the_same_event() -> None:
    for message in MESSAGES[:100]:
        data = orjson.loads(message.value)
        if None in data.values():
            continue  # nulls are left to pydantic
        for value in encodings(data):
            assert check(value, message.key) is not None, value


def test_what_orjson_reads_differently_or_refuses_is_left_to_it() -> None:
    message = next(m for m in MESSAGES if b'"sequence"' in m.value)
    value, key = message.value, message.key
    assert key is not None
    assert check(value, key) is not None
    refused = [
        value[:-1] + b',"sequence":1}',  # a duplicate member (orjson keeps the last)
        value.replace(b'"sequence":', b'"sequence":1e0,"x":', 1),  # an exponent
        value[:-1] + b',"x":18446744073709551616}',  # past i64 (orjson: a float)
        value[:-1] + b',"x":"\\ud800"}',  # a lone surrogate (orjson refuses it)
        value[:-1] + b',"x":"\\udc00\\ud800"}',
        b"\xef\xbb\xbf" + value,  # a byte order mark
        value + b" x",
        value[:-1] + b',"x":[' * 70 + b"]" * 70 + b"}",  # deeper than the native limit
        value[:-1] + b',"x":NaN}',
        value[:-1] + b',"x":"\xff"}',  # not UTF-8
        value[:-1] + b',"x":"a\nb"}',  # a raw control character
        value[:-1] + b',"x":01}',
        value[:-1] + b',"x":-}',
        value[:-1] + b',"x":1.}',
        value[:-1] + b",}",
        value[:-1] + b',"x":tru}',
        value[:-1] + b',"x":"\\x"}',
        value[:-1] + b',"x":"\\u12g4"}',
    ]
    for bad in refused:
        assert check(bad, key) is None, bad
    assert check(value, None) is None
    assert check(value, key + b"x") is None


def test_escapes_and_nested_values_are_read_as_orjson_reads_them() -> None:
    message = next(m for m in MESSAGES if b"outbound_call.placed" in m.value)
    data = orjson.loads(message.value)
    data["call_data"] = {"note": 'a "quoted" \\ \u00e9 \U0001f600 /', "n": [1, 2.5, {"x": None}]}
    data["source"] = "tw\u00e9\U0001f600lio/\t"
    for value in encodings(data):
        native = check(value, message.key)
        assert native is not None, value
        assert native.event.model_dump()["call_data"] == data["call_data"]
    escaped = orjson.dumps(data).replace(b'"source":"', b'"source":"\\ud83d\\ude00\\/\\u00E9', 1)
    assert check(escaped, message.key) is not None
    named = orjson.dumps(data).replace(b'"type":', b'"typ\\u0065":', 1)
    assert check(named, message.key) is not None


@settings(max_examples=2000, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data(), FIELD_VALUES)
def test_a_native_answer_is_the_decoder_answer(
    sample: dict[str, Any], data: st.DataObject, value: object
) -> None:
    encoded = altered(sample, data, value)
    if encoded is None:
        return
    key = str(sample["call_id"]).encode()
    check(encoded, data.draw(st.sampled_from([key, key.upper(), None]), label="key"))


def altered(sample: dict[str, Any], data: st.DataObject, value: object) -> bytes | None:
    """`sample` with one field (or an extra one) set to `value` or removed, in one of its
    JSON encodings; None if it cannot be encoded (a float's NaN can, as json.dumps writes it)."""
    event = dict(sample)
    field = data.draw(st.sampled_from([*sorted(event), "__extra__"]), label="field")
    if data.draw(st.booleans(), label="remove"):
        event.pop(field, None)
    else:
        event[field] = value
    try:
        return data.draw(st.sampled_from(encodings(event)), label="encoding")
    except (TypeError, ValueError, orjson.JSONEncodeError):
        return None


INTERESTING = [b'"', b"\\", b"u", b"d8", b"\\u", b"{", b"}", b"[", b",", b":", b"0", b"-", b"."]
INTERESTING += [b"e", b" ", b"\x00", b"\x1f", b"\xc3\xa9", b"\xff", b"null", b"1", b"\n"]


@settings(max_examples=3000, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(MESSAGES),
    st.lists(
        st.tuples(
            st.floats(0, 1),
            st.sampled_from(["insert", "delete", "replace"]),
            st.one_of(st.sampled_from(INTERESTING), st.binary(min_size=1, max_size=3)),
        ),
        min_size=1,
        max_size=4,
    ),
)
def test_altered_bytes_are_decoded_as_the_decoder_decodes_them(
    message: Any, edits: list[tuple[float, str, bytes]]
) -> None:
    value = bytearray(message.value)
    for where, action, piece in edits:
        at = int(where * len(value))
        if action == "insert":
            value[at:at] = piece
        elif action == "delete":
            del value[at : at + len(piece)]
        else:
            value[at : at + len(piece)] = piece
    check(bytes(value), message.key)
