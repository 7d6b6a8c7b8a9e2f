"""Row values as the APIs answer them: plain JSON (DESIGN.md section 6).

UUIDs as strings, times as RFC 3339 UTC with milliseconds (`2024-05-01T09:25:46.061Z`), money
as an exact JSON number with its four decimals (`2.6000`, never a rounded float), `call_data`
as the JSON object it is, NULL as null.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import orjson

from worker.api.fields import Field, Kind


def iso_millis(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def json_value(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return iso_millis(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return orjson.Fragment(format(value, "f"))
    if kind is Kind.BOOL:
        return bool(value)
    if kind is Kind.JSON and isinstance(value, str):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def record(
    fields: Sequence[Field], row: Sequence[Any], names: Sequence[str] | None = None
) -> dict[str, Any]:
    """One row as a JSON object, keyed by the API's field names (or `names`)."""
    keys = names if names is not None else [f.name for f in fields]
    return {key: json_value(f.kind, v) for key, f, v in zip(keys, fields, row, strict=True)}
