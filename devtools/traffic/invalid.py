"""Invalid messages: the registry of the contract's rejection cases and the maker that draws
from it (`Message.valid` is False and `Message.case` names the case)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import orjson

from devtools.traffic.call import Call
from devtools.traffic.messages import Message
from devtools.traffic.mutations import MUTATIONS, apply_changes
from devtools.traffic.synthetic import synthetic_event

# an oversized message is ~2 MB: above Kafka's default `max.message.bytes`
OVERSIZED_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class _Target:
    """What an invalid case breaks: one call at one moment, drawing from the stream's rng."""

    rng: random.Random
    call: Call
    ms: int
    recent_calls: Sequence[str]  # ids of the latest calls, for a key of another call

    def valid_value(self, typ: str) -> bytes:
        """A valid event of `typ` for the call, encoded."""
        return orjson.dumps(synthetic_event(self.rng, self.call, typ, self.ms))


# a case returns the value (the key is the call's id) or an explicit (key, value)
_Made = bytes | tuple[bytes, bytes]
_Case = Callable[[_Target], _Made]


def _mutation(typ: str, changes: dict[str, object]) -> _Case:
    def make(t: _Target) -> _Made:
        obj = synthetic_event(t.rng, t.call, typ, t.ms)
        apply_changes(obj, changes)
        return orjson.dumps(obj)

    return make


def _not_json_text(t: _Target) -> _Made:
    return t.rng.choice((b"call ended", b"<html><body>502 Bad Gateway</body></html>", b"{oops"))


def _truncated_json(t: _Target) -> _Made:
    value = t.valid_value("incoming_call.ended")
    return value[: t.rng.randint(10, len(value) - 2)]


def _json_nan(t: _Target) -> _Made:
    obj = synthetic_event(t.rng, t.call, "call.cost_reported", t.ms)
    obj["cost_usd_cents"] = "__NAN__"
    # orjson cannot write NaN: put the bare token in after encoding
    return orjson.dumps(obj).replace(b'"__NAN__"', b"NaN")


def _not_utf8(t: _Target) -> _Made:
    obj = synthetic_event(t.rng, t.call, "incoming_call.ended", t.ms)
    obj["status_message"] = "__LATIN1__"
    # a producer that wrote Latin-1 instead of UTF-8
    return orjson.dumps(obj).replace(b"__LATIN1__", "café – Störung".encode("cp1252"))


def _binary_garbage(t: _Target) -> _Made:
    # no newline byte: any generated stream can be written as JSONL
    return b"\xff\xfe\x00\x01" + t.rng.randbytes(16).replace(b"\n", b"\x80")


def _json_array(t: _Target) -> _Made:
    obj = synthetic_event(t.rng, t.call, "incoming_call.ended", t.ms)
    return orjson.dumps([obj])


def _json_scalar(t: _Target) -> _Made:
    return t.rng.choice((b'"incoming_call.ended"', b"42", b"null", b"true", b"3.5"))


def _key_mismatch(t: _Target) -> _Made:
    others = [c for c in t.recent_calls if c != t.call.call_id]
    other = t.rng.choice(others) if others else t.call.call_id + "-other"
    return other.encode("utf-8"), t.valid_value("incoming_call.dial_ringing")


# (name, case, weight): the field mutations, then the byte-level cases
_WEIGHTED_CASES: tuple[tuple[str, _Case, int], ...] = (
    *((name, _mutation(typ, changes), 1) for name, (typ, changes) in MUTATIONS.items()),
    ("not_json_text", _not_json_text, 2),
    ("truncated_json", _truncated_json, 2),
    ("json_nan", _json_nan, 1),
    ("not_utf8", _not_utf8, 2),
    ("binary_garbage", _binary_garbage, 1),
    ("json_array", _json_array, 1),
    ("json_scalar", _json_scalar, 2),
    ("key_mismatch", _key_mismatch, 3),
)
# a case of weight w appears w times: one uniform draw picks a case by weight
_CASES: tuple[tuple[str, _Case], ...] = tuple(
    (name, case) for name, case, weight in _WEIGHTED_CASES for _ in range(weight)
)

INVALID_CASES: tuple[str, ...] = tuple(sorted({name for name, _ in _CASES} | {"oversized_source"}))


class InvalidMessages:
    """Makes invalid messages: the oversized ones first, then cases drawn by weight."""

    def __init__(self, rng: random.Random, oversized: int) -> None:
        self.rng = rng
        self.oversized_left = oversized
        self.recent_calls: list[str] = []

    def note_call(self, call_id: str) -> None:
        """Remember a finished call: its id can be the wrong key of a later call's message."""
        self.recent_calls.append(call_id)
        if len(self.recent_calls) > 64:
            del self.recent_calls[:32]  # bounded memory, trimmed in batches

    def make(self, call: Call, ms: int) -> Message:
        """One invalid message for `call`, as if sent at `ms`."""
        key = call.call_id.encode("utf-8")
        if self.oversized_left > 0:
            self.oversized_left -= 1
            obj = synthetic_event(self.rng, call, "incoming_call.dial_answered", ms)
            obj["source"] = "x" * OVERSIZED_BYTES
            return Message(key, orjson.dumps(obj), call.call_id, False, "oversized_source")
        name, case = _CASES[self.rng.randrange(len(_CASES))]
        made = case(_Target(self.rng, call, ms, self.recent_calls))
        if isinstance(made, tuple):
            key, value = made
            return Message(key, value, call.call_id, False, name)
        return Message(key, made, call.call_id, False, name)
