"""Raw Kafka message -> validated event, or a rejection that says exactly what is wrong.

Pure: no Kafka, no clock. The rejection is what goes to the dead-letter topic and the
`rejected_event` table (DESIGN.md section 2); `code` is stable for dashboards and alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.events import EVENT_MODELS, NO_AMENDED_FIELD, Envelope
from worker.core.column_ranges import INT_RANGES, MONEY_MAX, TIME_MAX, TIME_MIN
from worker.core.event_fast_path import FAST_MODELS
from worker.core.native_fast_path import VALIDATOR as NATIVE
from worker.core.native_fast_path import payload_digest as payload_digest
from worker.core.record import Record
from worker.core.valid_event import ValidEvent as ValidEvent

# Error codes (stable: metrics label them, alert rules and analysts filter on them).
NOT_UTF8 = "not_utf8"
INVALID_JSON = "invalid_json"
NOT_OBJECT = "not_object"
MISSING_FIELD = "missing_field"
INVALID_FIELD = "invalid_field"
UNKNOWN_TYPE = "unknown_type"
UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
KEY_MISMATCH = "key_mismatch"
ERROR_CODES = (
    NOT_UTF8,
    INVALID_JSON,
    NOT_OBJECT,
    MISSING_FIELD,
    INVALID_FIELD,
    UNKNOWN_TYPE,
    UNSUPPORTED_SCHEMA_VERSION,
    KEY_MISMATCH,
)


@dataclass(frozen=True, slots=True)
class Rejection:
    code: str
    message: str
    field: str | None = None


_JSON_TYPE_NAMES = {list: "list", str: "str", int: "int", float: "float", bool: "bool"}


def decode(key: bytes | None, value: bytes) -> ValidEvent | Rejection:
    """Validate one message value (and its key) against the producer contract."""
    if NATIVE is not None:
        # The native fast path from the bytes (native_fast_path): the event this function
        # would give, or None.
        valid = NATIVE.decode(value, key)
        if valid is not None:
            return valid
        return _decode_without_native(key, value, likely_invalid=True)
    return _decode_without_native(key, value)


def decode_record(record: Record) -> tuple[ValidEvent | Rejection, bytes | None]:
    """`decode` of a consumed record, with the event's `call_event` row in RowBinary when the
    native decoder wrote it (`worker.core.call_event_rows`; None: encode it from the event)."""
    value = record.value if record.value is not None else b""
    if NATIVE is not None:
        found = NATIVE.decode_record(
            value, record.key, record.topic, record.partition, record.offset
        )
        if found is not None:
            return found
        return decode_refused(record.key, value), None
    return _decode_without_native(record.key, value), None


def decode_refused(key: bytes | None, value: bytes) -> ValidEvent | Rejection:
    """`decode` of a message the native decoder has refused: nearly always invalid, so the
    contract's checks go first (the same result, cheaper)."""
    return _decode_without_native(key, value, likely_invalid=True)


def _decode_without_native(
    key: bytes | None, value: bytes, likely_invalid: bool = False
) -> ValidEvent | Rejection:
    """`decode` in Python. `likely_invalid`: the native decoder has refused the message (it
    accepts nearly every valid one), so the contract's checks run before pydantic's fast
    model is tried: the same result, about a fifth cheaper for an invalid message (a failed
    pydantic validation builds a ValidationError)."""
    try:
        data = orjson.loads(value)  # refuses invalid UTF-8 too (then told apart below)
    except orjson.JSONDecodeError as exc:
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as not_utf8:
            return Rejection(NOT_UTF8, f"payload is not UTF-8: {not_utf8.reason}")
        return Rejection(INVALID_JSON, f"payload is not JSON: {exc}")
    if not isinstance(data, dict):
        kind = _JSON_TYPE_NAMES.get(type(data), "null")
        return Rejection(NOT_OBJECT, f"payload must be a JSON object, got {kind}")
    rejection_or_event = validate_object(data, likely_invalid)
    if isinstance(rejection_or_event, Rejection):
        return rejection_or_event
    event = rejection_or_event
    if key is None or key != event.call_id.encode("utf-8"):
        shown = "no key" if key is None else f"key {key[:140].decode('utf-8', 'replace')!r}"
        return Rejection(
            KEY_MISMATCH,
            f"message {shown} is not its call_id {event.call_id!r}: the producer must key "
            "each event by call_id so a call's events share a partition",
            "call_id",
        )
    return ValidEvent(event, payload_digest(value))


def validate_object(data: dict[str, Any], likely_invalid: bool = False) -> Envelope | Rejection:
    """Validate a decoded JSON object; JSON nulls count as absent fields. `likely_invalid`
    only changes the order of the checks, never the result."""
    if NATIVE is not None:
        # The native fast path (native_fast_path): the same model as pydantic's, or None.
        event = NATIVE.validate(data)
        if event is not None:
            return event
    return validate_with_pydantic(data, likely_invalid)


def validate_with_pydantic(
    data: dict[str, Any], likely_invalid: bool = False
) -> Envelope | Rejection:
    """`validate_object` without the native fast path.

    The fast model refuses everything the contract refuses (and more), so trying the contract
    first when the object is likely invalid gives the same result: its rejection, or else what
    the fast model gives (its event, or the contract's where it refuses).
    """
    event_type = data.get("type")
    fast = FAST_MODELS.get(event_type) if event_type.__class__ is str else None
    if likely_invalid:
        checked = _validate_by_contract(data)
        if isinstance(checked, Rejection) or fast is None:
            return checked
        try:
            fast_checked: Envelope = fast.__pydantic_validator__.validate_python(data)
            return fast_checked
        except ValidationError:
            return checked
    if fast is not None:
        try:
            # The fast path (event_fast_path): a valid event in one call into pydantic-core.
            # It also refuses what a column cannot hold, and any null (a null where the
            # contract reads "absent" is retried below, without it).
            fast_event: Envelope = fast.__pydantic_validator__.validate_python(data)
            return fast_event
        except ValidationError:
            pass
    return _validate_by_contract(data)


def _validate_by_contract(data: dict[str, Any]) -> Envelope | Rejection:
    """The contract path: every check in order, the first failure reported precisely."""
    if None in data.values():
        data = {k: v for k, v in data.items() if v is not None}
    version = data.get("schema_version", 1)
    if version != 1 or isinstance(version, bool):
        if isinstance(version, int) and not isinstance(version, bool):
            return Rejection(
                UNSUPPORTED_SCHEMA_VERSION,
                f"schema_version {version} is not supported (only 1)",
                "schema_version",
            )
        return Rejection(INVALID_FIELD, "schema_version must be an integer", "schema_version")
    event_type = data.get("type")
    if event_type is None:
        return Rejection(MISSING_FIELD, "type is required", "type")
    if not isinstance(event_type, str):
        return Rejection(INVALID_FIELD, "type must be a string", "type")
    model = EVENT_MODELS.get(event_type)
    if model is None:
        shown = event_type[:100]
        return Rejection(UNKNOWN_TYPE, f"unknown event type {shown!r}", "type")
    try:
        event = model.model_validate(data)
    except ValidationError as exc:
        return _rejection_from(exc)
    return _out_of_range(event) or event


def _checked_fields(model: type[Envelope]) -> tuple[tuple[str, str], ...]:
    """The fields of `model` that `_out_of_range` must look at, with their kind."""
    out: list[tuple[str, str]] = []
    for name, info in model.model_fields.items():
        annotation = str(info.annotation)
        if "datetime" in annotation:
            out.append((name, "time"))
        elif "Decimal" in annotation:
            out.append((name, "money"))
        elif name in INT_RANGES:
            out.append((name, "int"))
    return tuple(out)


_CHECKED: dict[type[Envelope], tuple[tuple[str, str], ...]] = {
    model: _checked_fields(model) for model in EVENT_MODELS.values()
}


def _out_of_range(event: Envelope) -> Rejection | None:
    for name, kind in _CHECKED.get(type(event), ()):
        value = getattr(event, name)
        if value is None:
            continue
        if kind == "time":
            if not TIME_MIN <= value < TIME_MAX:
                return Rejection(
                    INVALID_FIELD, f"{name} must be between 1970-01-01 and 2105-12-31", name
                )
        elif kind == "money":
            if value >= MONEY_MAX:
                return Rejection(INVALID_FIELD, f"{name} must be < {MONEY_MAX:f}", name)
        else:
            lo, hi = INT_RANGES[name]
            if not lo <= value <= hi:
                return Rejection(INVALID_FIELD, f"{name} must be between {lo} and {hi}", name)
    return None


def _rejection_from(exc: ValidationError) -> Rejection:
    # The first error is reported: one precise reason beats a list that hides it.
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(part) for part in err["loc"]) or None
    name = field or "payload"
    kind = err["type"]
    ctx: dict[str, Any] = err.get("ctx") or {}
    if kind == "missing":
        return Rejection(MISSING_FIELD, f"{name} is required", field)
    if kind == NO_AMENDED_FIELD:
        # No single field is at fault: the amendment lacks every one of its optional fields.
        return Rejection(MISSING_FIELD, err["msg"], None)
    if kind in ("string_too_short", "string_too_long"):
        lo = 1 if field != "source" else 0
        hi = ctx.get("max_length", 128) if kind == "string_too_long" else 128
        if field == "source":
            hi = 64
        got = len(err["input"]) if isinstance(err["input"], str) else "?"
        return Rejection(INVALID_FIELD, f"{name} length must be {lo}..{hi}, got {got}", field)
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        return Rejection(INVALID_FIELD, f"{name} must be >= {bound}", field)
    if kind == "literal_error":
        expected = str(ctx.get("expected", "")).replace("'", "").replace(" or ", ", ")
        return Rejection(INVALID_FIELD, f"{name} must be one of {expected}", field)
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return Rejection(INVALID_FIELD, f"{name} must be an integer", field)
    if kind == "string_type":
        return Rejection(INVALID_FIELD, f"{name} must be a string", field)
    if kind == "bool_type":
        return Rejection(INVALID_FIELD, f"{name} must be a JSON boolean", field)
    if kind in ("dict_type", "model_type"):
        return Rejection(INVALID_FIELD, f"{name} must be a JSON object", field)
    return Rejection(INVALID_FIELD, f"{name} {err['msg']}", field)


def decode_stored(payload: str, call_id: str | None = None) -> ValidEvent | Rejection:
    """Re-validate an event read back from `call_event.payload` (its key was checked when the
    event was first consumed). Given the stored row's `call_id`, the native decoder reads it
    as it read the message (the same event, and its packed bytes: a reload then packs the
    call by copying them); else, or where it refuses, the Python decoder."""
    raw = payload.encode("utf-8")
    if NATIVE is not None and call_id is not None:
        valid = NATIVE.decode(raw, call_id.encode("utf-8"))
        if valid is not None:
            return valid
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejection(INVALID_JSON, f"stored payload is not JSON: {exc}")
    if not isinstance(data, dict):
        return Rejection(NOT_OBJECT, "stored payload is not a JSON object")
    event = validate_object(data)
    if isinstance(event, Rejection):
        return event
    return ValidEvent(event, payload_digest(raw))
