"""What the generator hands out: `Message`, the event types, and the JSON encoders."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

EVENT_TYPES: tuple[str, ...] = (
    "incoming_call.received",
    "incoming_call.dial_started",
    "incoming_call.dial_ringing",
    "incoming_call.dial_answered",
    "incoming_call.dial_ended",
    "incoming_call.ended",
    "outbound_call.placed",
    "outbound_call.answered",
    "outbound_call.ended",
    "call.cost_reported",
    "cdr.recorded",
)


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka message.

    `key` is the call_id as UTF-8 (None only for lines read from a file whose call_id could
    not be parsed, see `devtools.producer.read_jsonl`). `call_id` is the call the message was
    generated for (for the key-mismatch case the key is another call's id). `valid` says
    whether the contract accepts it; `case` names the invalid case ("" when valid).
    """

    key: bytes | None
    value: bytes
    call_id: str
    valid: bool
    case: str = ""


# Producers differ in how they write JSON; the worker must accept all of these.
Dumps = Callable[[dict[str, Any]], bytes]


def dumps_compact(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def dumps_spaced(obj: dict[str, Any]) -> bytes:
    """Python's default separators, non-ASCII as raw UTF-8."""
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def dumps_ascii(obj: dict[str, Any]) -> bytes:
    """Non-ASCII as `\\uXXXX` escapes."""
    return json.dumps(obj).encode("ascii")
