"""The decoder's fast path: each contract event model with its Python-checked UUID and E.164
fields checked by pydantic-core's own (Rust) validators instead, and the column ranges
(`worker.core.column_ranges`) checked as constraints instead of afterwards in Python.

Exact by construction. A fast model is a subclass of its contract model (so `isinstance`
and every attribute are the same) whose UUID fields accept only the canonical form (the one
the contract returns unchanged), whose E.164 fields use the contract's own pattern, and whose
times, amounts and integers must also fit their columns. It therefore accepts a subset of
what the contract accepts, with the same values. Whatever it refuses, the decoder validates
again with the contract model and its range check, whose error is the one reported
(`worker.core.decode.validate_object`); a property test holds the two to the same answers.

Measured (`python -m benchmarks.stages`): model validation of a generated mix fell from
about 10 to 5 us per event; the Python calls for UUIDs and numbers were half of it.
"""

from __future__ import annotations

import types
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin, get_type_hints

from pydantic import BeforeValidator, Field, StrictInt, create_model
from pydantic_core import PydanticCustomError

from schemas.events import (
    E164,
    EVENT_MODELS,
    Envelope,
    Money,
    OptionalTimestamp,
    Timestamp,
    UUIDStr,
    parse_timestamp,
)
from worker.core.column_ranges import INT_RANGES, MONEY_MAX, TIME_MAX, TIME_MIN

CANONICAL_UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"  # pydantic-core's `$` is the end of the text only


def _time_in_range(value: object) -> datetime:
    parsed = parse_timestamp(value)
    if not TIME_MIN <= parsed < TIME_MAX:
        raise PydanticCustomError("time_range", "outside the column's range")
    return parsed


def _optional_time_in_range(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    return _time_in_range(value)


FastUUID = Annotated[str, Field(strict=True, pattern=CANONICAL_UUID_PATTERN)]
FastE164 = Annotated[str, Field(strict=True, pattern=E164_PATTERN)]
FastTimestamp = Annotated[datetime, BeforeValidator(_time_in_range)]
FastOptionalTimestamp = Annotated[datetime | None, BeforeValidator(_optional_time_in_range)]
FastMoney = Annotated[Money, Field(lt=MONEY_MAX)]

_REPLACED: tuple[tuple[object, object], ...] = (
    (UUIDStr, FastUUID),
    (E164, FastE164),
    (Timestamp, FastTimestamp),
    (OptionalTimestamp, FastOptionalTimestamp),
    (Money, FastMoney),
)


def _fast_annotation(annotation: Any, int_range: tuple[int, int] | None) -> Any:
    """`annotation` with the contract's types replaced (also inside `X | None`), and an
    integer field's column range added; else `annotation` itself."""
    for contract, fast in _REPLACED:
        if annotation == contract:
            return fast
    if get_origin(annotation) in (Union, types.UnionType):
        args = tuple(_fast_annotation(arg, int_range) for arg in get_args(annotation))
        return Union[args]  # noqa: UP007 (built from a tuple)
    if int_range is not None and annotation is not type(None):
        lo, hi = int_range
        return Annotated[annotation, Field(ge=lo, le=hi)]
    return annotation


# schema_version: the contract's Literal[1] takes `true` too, which the decoder refuses first.
FastSchemaVersion = Annotated[StrictInt, Field(ge=1, le=1)]


def _fast_model(model: type[Envelope]) -> type[Envelope]:
    hints = get_type_hints(model, include_extras=True)
    overrides: dict[str, Any] = {"schema_version": (FastSchemaVersion, 1)}
    for name, info in model.model_fields.items():
        fast = _fast_annotation(hints[name], INT_RANGES.get(name))
        if fast is not hints[name]:
            overrides[name] = (fast, ... if info.is_required() else info.default)
    fast_model: type[Envelope] = create_model(
        f"Fast{model.__name__}", __base__=model, __module__=__name__, **overrides
    )
    return fast_model


FAST_MODELS: dict[str, type[Envelope]] = {
    event_type: _fast_model(model) for event_type, model in EVENT_MODELS.items()
}
"""The fast model of each event type (a subclass of `EVENT_MODELS[event_type]`)."""

CONTRACT_MODEL: dict[type[Envelope], type[Envelope]] = {
    fast: EVENT_MODELS[event_type] for event_type, fast in FAST_MODELS.items()
}
