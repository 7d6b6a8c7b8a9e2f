"""What an insert sends: each table's `InsertPlan` (column names, ClickHouse types and the
converter of each column) and the settings pinned on every insert.

Converters exist only for the column kinds clickhouse-connect does not take as-is: times (a
naive datetime would be read as process-local time), decimals (rounded half-up to the column's
scale), UUIDs given as 16 bytes, and strings (anything but str/bytes is refused). A converter
raises TypeError or ValueError on a value it cannot convert.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final

from schemas.tables import Table

__all__ = ["INSERT_SETTINGS", "InsertPlan", "insert_plan"]

INSERT_SETTINGS: Final[Mapping[str, object]] = {"async_insert": 0}
"""Pinned on every insert: chDB 26.x and ClickHouse >= 26.3 default to async_insert=1."""

_UTC = dt.UTC


def _to_time(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        # clickhouse-connect reads a naive datetime as *process-local* time: pin it to UTC.
        return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)
    raise TypeError(f"expected a datetime, got {type(value).__name__}")


def _decimal_converter(scale: int) -> Callable[[object], object]:
    quantum = Decimal(1).scaleb(-scale)

    def convert(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, Decimal):
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int) and exponent >= -scale:
                return value
            # ClickHouse would truncate extra digits; the contract rounds half-up.
            return value.quantize(quantum, rounding=ROUND_HALF_UP)
        if isinstance(value, bool):
            raise TypeError("expected a decimal, got bool")
        if isinstance(value, int | float | str):
            try:
                return Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation as exc:
                raise TypeError(f"not a decimal: {value!r}") from exc
        raise TypeError(f"expected a decimal, got {type(value).__name__}")

    return convert


def _to_uuid(value: object) -> object:
    if value is None or isinstance(value, uuid.UUID | str):
        return value  # clickhouse-connect parses str itself
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    raise TypeError(f"expected a UUID, got {type(value).__name__}")


def _to_string(value: object) -> object:
    if value is None or isinstance(value, str | bytes):
        return value
    raise TypeError(f"expected str, got {type(value).__name__}")


_DECIMAL_TYPE = re.compile(r"Decimal\(\s*\d+\s*,\s*(\d+)\s*\)")


def _converter(ch_type: str) -> Callable[[object], object] | None:
    inner = ch_type
    for wrapper in ("LowCardinality(", "Nullable("):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper) : -1]
    if inner.startswith("DateTime64"):
        return _to_time
    decimal = _DECIMAL_TYPE.fullmatch(inner)
    if decimal:
        return _decimal_converter(int(decimal.group(1)))
    if inner == "UUID":
        return _to_uuid
    if inner == "String":
        return _to_string
    return None


@dataclass(frozen=True)
class InsertPlan:
    table: Table
    names: tuple[str, ...]
    types: tuple[str, ...]
    known: frozenset[str]
    converters: tuple[Callable[[object], object] | None, ...]  # None: the value goes as-is


def insert_plan(table: Table) -> InsertPlan:
    """The plan of inserts into `table` (a table of schemas/tables.py)."""
    return InsertPlan(
        table,
        table.column_names,
        table.column_types,
        frozenset(table.column_names),
        tuple(_converter(t) for t in table.column_types),
    )
