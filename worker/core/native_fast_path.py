"""The decoder's native fast path: `ringlog_native` (Rust, built from `native/`) checks a
decoded message against the fast models (`worker.core.event_fast_path`) and builds the same
model pydantic would, or answers None where it cannot be sure.

None is never a verdict. The decoder then runs the pydantic fast path and the contract path,
which accept or reject the event and name the reason (`worker.core.decode.validate_object`).
So the native code only has to accept a subset of what the fast models accept, with exactly
their values; `tests/unit/core/test_native_fast_path.py` holds it to that, event by event.

`VALIDATOR.decode(value, key)` is the first step of `worker.core.decode.decode`: the same
checks from the message's bytes (read in Rust, not by orjson), giving the `ValidEvent` that
function would give, or None; `tests/unit/core/test_native_decode.py` holds it to that.
`VALIDATOR.decode_record(value, key, topic, partition, offset)` (`decode_record`) also gives
the event's `call_event` row in RowBinary, as `worker.core.call_event_rows.encode_row` writes
it; `tests/unit/core/test_call_event_rows.py` holds it to that.

Each field's kind is read here from the contract's annotations. A field of a kind this module
does not know leaves its whole event type to pydantic (`NOT_NATIVE` names them), so a change
of the contract can make the fast path slower, never wrong.

Without the extension (a platform without a Rust toolchain, say) `VALIDATOR` is None and
the decoder uses pydantic alone: the same results, about 3 us more per event (README
"Performance": about a quarter less throughput, with the packer's fallback too).
"""

from __future__ import annotations

import hashlib
import types
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Annotated, Any, Literal, Protocol, Union, get_args, get_origin, get_type_hints

import orjson
from annotated_types import Ge, Le, MaxLen, MinLen
from pydantic.fields import FieldInfo
from pydantic.types import Strict

from schemas.events import (
    AMENDABLE_FIELDS,
    E164,
    EVENT_MODELS,
    Envelope,
    ItemAmended,
    Money,
    OptionalTimestamp,
    Timestamp,
    UUIDStr,
)
from worker.core.column_ranges import INT_RANGES, MONEY_MAX, TIME_MAX, TIME_MIN
from worker.core.event_fast_path import FAST_MODELS
from worker.core.valid_event import ValidEvent


def _import_native() -> tuple[ModuleType | None, str | None]:
    try:
        import ringlog_native
    except ImportError as exc:  # depends on the installation
        return None, str(exc)
    return ringlog_native, None


NATIVE_MODULE, NATIVE_MISSING = _import_native()
"""`ringlog_native`, or None and why it could not be imported."""


class EventValidator(Protocol):
    def validate(self, data: dict[str, Any], /) -> Envelope | None: ...
    def decode(self, value: bytes, key: bytes | None, /) -> ValidEvent | None: ...
    def decode_record(
        self, value: bytes, key: bytes | None, topic: str, partition: int, offset: int, /
    ) -> tuple[ValidEvent, bytes | None] | None: ...
    def decode_batch(
        self,
        records: Iterable[Any],
        fallback: Callable[[bytes | None, bytes], Any],
        projects: dict[str, str],
        pool_max: int,
        /,
    ) -> tuple[dict[tuple[str, str], list[Any]], list[Any]] | None: ...
    def pack_with(self, packer: Any, /) -> None: ...


_INT64 = (-(2**63), 2**63 - 1)
_UNBOUNDED = 2**62  # a text without a maximum length
_BOUNDS = (Ge, Le, MinLen, MaxLen)
_ALIASES: dict[object, str] = {
    UUIDStr: "uuid",
    E164: "e164",
    Timestamp: "time",
    OptionalTimestamp: "optional_time",
    Money: "money",
}
FieldSpec = tuple[str, str, bool, object, tuple[object, ...]]
"""(name, kind, required, default, args) of one field, as `ringlog_native` reads it."""


class UnknownKind(Exception):
    """A field annotation the native fast path does not handle."""


def _without_none(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _constraints(annotation: Any) -> tuple[type, list[object]]:
    """The base type of an Annotated chain and its metadata (Field's constraints unpacked)."""
    metadata: list[object] = []
    while get_origin(annotation) is Annotated:
        annotation, *extra = get_args(annotation)
        for item in extra:
            metadata.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return annotation, metadata


def field_kind(name: str, annotation: Any) -> tuple[str, tuple[object, ...]]:
    """The native kind of a contract field and its arguments; raises UnknownKind."""
    annotation = _without_none(annotation)
    for alias, kind in _ALIASES.items():
        if annotation == alias:
            return kind, ()
    if get_origin(annotation) is Literal:
        values = get_args(annotation)
        if name == "schema_version" and values == (1,):
            return "int", (1, 1)  # the fast model's StrictInt in 1..1 (never `true`)
        if all(isinstance(v, str) for v in values):
            return "literal", values
        raise UnknownKind(f"{name}: a Literal of non-str values")
    base, metadata = _constraints(annotation)
    if Strict(True) not in metadata:
        raise UnknownKind(f"{name}: {annotation} is not strict")
    unknown = [m for m in metadata if not isinstance(m, _BOUNDS) and m != Strict(True)]
    if unknown:
        raise UnknownKind(f"{name}: {unknown}")
    if base is str:
        low = max([0, *(m.min_length for m in metadata if isinstance(m, MinLen))])
        high = min([_UNBOUNDED, *(m.max_length for m in metadata if isinstance(m, MaxLen))])
        return "text", (low, high)
    if base is int:
        low, high = INT_RANGES.get(name, _INT64)
        low = max([low, *(int(m.ge) for m in metadata if isinstance(m, Ge))])  # type: ignore[call-overload]
        high = min([high, *(int(m.le) for m in metadata if isinstance(m, Le))])  # type: ignore[call-overload]
        return "int", (low, high)
    if base is bool:
        return "bool", ()
    if get_origin(base) is dict and get_args(base) == (str, Any):
        return "object", ()
    raise UnknownKind(f"{name}: {annotation}")


def model_spec(model: type[Envelope]) -> tuple[list[FieldSpec], list[int]]:
    """The fields of `model` for `ringlog_native` and the indexes of its one-of fields."""
    if model.model_config.get("extra") != "ignore":
        raise UnknownKind(f"{model.__name__}: extra fields are not ignored")
    validators = model.__pydantic_decorators__
    known_rule = issubclass(model, ItemAmended)
    if (validators.model_validators and not known_rule) or validators.field_validators:
        raise UnknownKind(f"{model.__name__}: validators of its own")
    if len(model.model_fields) > 64:
        raise UnknownKind(f"{model.__name__}: more than 64 fields")
    hints = get_type_hints(model, include_extras=True)
    fields: list[FieldSpec] = []
    for name, info in model.model_fields.items():
        kind, args = field_kind(name, hints[name])
        default = None if info.is_required() else info.default
        fields.append((name, kind, info.is_required(), default, args))
    names = list(model.model_fields)
    one_of = [names.index(name) for name in AMENDABLE_FIELDS] if known_rule else []
    return fields, one_of


KIND_CODES: dict[str, int] = dict(NATIVE_MODULE.KINDS) if NATIVE_MODULE is not None else {}
"""Each kind's number in `ringlog_native` (empty without the extension)."""


NativeField = tuple[str, int, bool, object, tuple[object, ...]]


def native_spec(model: type[Envelope]) -> tuple[list[NativeField], list[int]]:
    """`model_spec` with the kinds as `ringlog_native` numbers them: what its validator and
    its call packer are built from."""
    fields, one_of = model_spec(model)
    codes = [
        (name, KIND_CODES[kind], req, default, args) for name, kind, req, default, args in fields
    ]
    return codes, one_of


def _micros(value: datetime) -> int:
    return (value - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def build_validator(
    event_class: type[ValidEvent] = ValidEvent,
) -> tuple[EventValidator | None, dict[str, str]]:
    """The native validator whose events are `event_class`es (None without the extension),
    and the event types it leaves to pydantic, each with the reason."""
    if NATIVE_MODULE is None:
        return None, {}
    models: dict[str, tuple[type[Envelope], list[NativeField], list[int]]] = {}
    not_native: dict[str, str] = {}
    for event_type, model in EVENT_MODELS.items():
        try:
            fields, one_of = native_spec(model)
        except UnknownKind as exc:
            not_native[event_type] = str(exc)
            continue
        models[event_type] = (FAST_MODELS[event_type], fields, one_of)
    digits = len(str(int(MONEY_MAX))) - 1
    assert Decimal(10) ** digits == MONEY_MAX, "the money limit must be a power of ten"
    validator: EventValidator = NATIVE_MODULE.EventValidator(
        models,
        Decimal,
        UTC,
        orjson.loads,
        event_class,
        digits,
        _micros(TIME_MIN),
        _micros(TIME_MAX),
    )
    return validator, not_native


VALIDATOR, NOT_NATIVE = build_validator()
"""The native validator (None without the extension) and the event types it leaves to
pydantic, each with the reason."""


def _hashlib_digest(payload: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(payload, digest_size=8).digest(), "big")


payload_digest: Callable[[bytes], int] = (
    NATIVE_MODULE.payload_digest if NATIVE_MODULE is not None else _hashlib_digest
)
"""blake2b-64 of a payload as an int (the tie-break of two payloads with one event_id)."""
