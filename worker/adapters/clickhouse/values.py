"""What an insert sends: each table's `InsertPlan` (its columns, and how a batch of dict rows
becomes one JSONEachRow body) and the settings pinned on every insert.

Two encodings, the same stored values:

- RowBinary, written by `ringlog_native.RowBinaryEncoder` (native/src/row_binary.rs) from the
  dict rows: the usual way. It costs the writer's thread well under a microsecond per row
  (orjson and the decimal rounding took 3-5), and ClickHouse parses it for about half of what
  JSON costs it. The encoder answers None for any block holding a value it cannot be sure to
  store exactly as the JSON body would (a missing or unknown column, a None in a column that
  is not Nullable, an unusual Python type, a value out of range); that block goes as JSON.
  The RowBinary rows are then sent as one block of ClickHouse's Native format
  (`InsertPlan.native`: `ringlog_native.NativeBlockWriter`, native/src/native_block.rs, turns
  them column-wise and writes the block without the GIL), because ClickHouse reads Native a
  column at a time and RowBinary a value at a time: the planner's blocks for the benchmark's
  200k events cost chDB 9.78 instead of 11.91 us of CPU per event (call_event 4.73 instead of
  6.25), the rows stored identical (README, "Inserts as Native blocks").
- JSONEachRow (`InsertPlan.body`): every other block, and every block without the native
  extension. Not clickhouse-connect's Native encoding: that is built value by value in Python
  on the worker's thread (17.8 against 5.8 us of the calling thread's CPU per event for JSON,
  `python -m benchmarks.stages`).

A plan's `call_event` rows come encoded already: the decoder writes them in RowBinary while it
holds each message (`RowBinaryBlock`, `worker.core.call_event_rows`), and they are sent as
one Native block likewise.

The Native blocks declare a `LowCardinality(T)` column as `T`: ClickHouse converts it as it
reads the block (`input_format_native_allow_types_conversion`, on by default), which measured
the same as sending the dictionary encoding.

Values as they are encoded:

- times: aware datetimes as RFC 3339 with their offset, naive ones as UTC (a naive datetime
  must never be read as process-local time); ClickHouse reads them with
  `date_time_input_format=best_effort` and keeps the column's precision (truncating);
- decimals: rounded half-up to the column's scale here (ClickHouse would truncate the extra
  digits), sent as exact strings;
- UUIDs: str or uuid.UUID, or 16 raw bytes;
- anything else orjson cannot encode, or a value ClickHouse cannot parse into its column
  (e.g. a number for a String: `input_format_json_read_numbers_as_strings=0`), is refused:
  the store raises StoreError naming the table (and the column, when it is known here).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Final, Protocol, runtime_checkable

import orjson

from schemas.tables import Table
from worker.core.native_fast_path import NATIVE_MODULE

__all__ = [
    "INSERT_SETTINGS",
    "JSON_INSERT_SETTINGS",
    "InsertPlan",
    "RowBinaryBlock",
    "insert_plan",
]

INSERT_SETTINGS: Final[Mapping[str, object]] = {"async_insert": 0, "optimize_on_insert": 0}
"""Pinned on every insert: chDB 26.x and ClickHouse >= 26.3 default to async_insert=1. And no
ReplacingMergeTree merge of each inserted block: a batch's block holds one row per key already
(one row per id, one per event_id), and reads go through FINAL; skipping it took the inserts'
CPU from 7.10 to 6.50 us per event on the benchmark's 200k events (the rows stored identical)."""

JSON_INSERT_SETTINGS: Final[Mapping[str, object]] = {
    **INSERT_SETTINGS,
    "date_time_input_format": "best_effort",  # RFC 3339 with an offset
    "input_format_json_read_numbers_as_strings": 0,  # a number is not a String
    "input_format_json_read_bools_as_numbers": 0,
    "input_format_json_read_bools_as_strings": 0,
}
"""Pinned on every JSONEachRow insert, so values are read as strictly as Native would."""

_JSON_OPTIONS: Final = orjson.OPT_NAIVE_UTC


@runtime_checkable
class RowBinaryBlock(Protocol):
    """Rows that come already encoded in ClickHouse's RowBinary (the call_event rows the
    decoder writes, `worker.core.call_event_rows`): sent as one Native block of their columns
    (`InsertPlan.native`), after checking that their columns and types are the table's."""

    @property
    def columns(self) -> tuple[str, ...]: ...
    @property
    def types(self) -> tuple[str, ...]: ...
    def row_binary(self) -> bytes: ...
    def row_parts(self) -> tuple[list[bytes], bytes]:
        """Each row's RowBinary but its last columns, and those columns' RowBinary, the same
        for every row (`row_binary` is each row followed by it)."""
        ...


class RowEncoder(Protocol):
    """`ringlog_native.RowBinaryEncoder`: a table's dict rows in RowBinary, or None."""

    def encode(self, rows: Sequence[Mapping[str, object]], /) -> bytes | None: ...


class BlockWriter(Protocol):
    """`ringlog_native.NativeBlockWriter`: RowBinary rows of some columns as one Native
    block."""

    def block(self, body: bytes, rows: int, /) -> bytes: ...
    def block_of_rows(self, rows: list[bytes], suffix: bytes, /) -> bytes: ...


def _decimal_converter(scale: int) -> Callable[[object], object]:
    quantum = Decimal(1).scaleb(-scale)

    def convert(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, Decimal):
            # ClickHouse would truncate extra digits; the contract rounds half-up. A value
            # equal to its rounding has none (trailing zeros are ClickHouse's to drop) and is
            # sent as it is: this costs a fifth of reading its exponent (as_tuple, 0.7 us).
            try:
                rounded = value.quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation:
                return value  # too many digits for any column: ClickHouse refuses it
            return value if rounded == value else rounded
        if isinstance(value, bool):
            raise TypeError("expected a decimal, got bool")
        if isinstance(value, int | float | str):
            try:
                return Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation as exc:
                raise TypeError(f"not a decimal: {value!r}") from exc
        raise TypeError(f"expected a decimal, got {type(value).__name__}")

    return convert


def _json_default(value: object) -> object:
    """What orjson does not encode itself: decimals (exact text) and 16-byte UUIDs."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes) and len(value) == 16:
        return str(uuid.UUID(bytes=value))
    raise TypeError(f"cannot store a {type(value).__name__}")


_DECIMAL_TYPE = re.compile(r"(?:Nullable\()?Decimal\(\s*\d+\s*,\s*(\d+)\s*\)\)?")


@dataclass(frozen=True)
class InsertPlan:
    table: Table
    names: tuple[str, ...]
    types: tuple[str, ...]
    known: frozenset[str]
    # (column, converter) of the Decimal columns: the only values converted before encoding.
    decimals: tuple[tuple[str, Callable[[object], object]], ...]
    # The native RowBinary encoder of the table's columns (None: every block goes as JSON).
    encoder: RowEncoder | None = None
    # Native block writers by column order: the table's (encoder's rows) and call_event's rows'.
    block_writers: dict[tuple[str, ...], BlockWriter] = field(default_factory=dict, compare=False)

    def row_binary(self, rows: Sequence[Mapping[str, object]]) -> bytes | None:
        """The rows in RowBinary, in the table's column order, when the native encoder can
        write them exactly as `body` would have them stored; None: send `body`."""
        return self.encoder.encode(rows) if self.encoder is not None else None

    def native(self, body: bytes, rows: int, names: tuple[str, ...]) -> bytes | None:
        """`body` (the RowBinary of `rows` rows of the table's columns `names`, in that order)
        as one Native block, which ClickHouse reads a column at a time (see the module's
        docstring); None without the native extension. ValueError when `body` is not such
        rows."""
        writer = self._block_writer(names)
        return writer.block(body, rows) if writer is not None else None

    def native_of_rows(
        self, rows: list[bytes], suffix: bytes, names: tuple[str, ...]
    ) -> bytes | None:
        """`native` of the body that is each of `rows` followed by `suffix`
        (`RowBinaryBlock.row_parts`), joined in the writer's own buffer rather than in a new
        bytes object of the block's size."""
        writer = self._block_writer(names)
        return writer.block_of_rows(rows, suffix) if writer is not None else None

    def _block_writer(self, names: tuple[str, ...]) -> BlockWriter | None:
        """The Native block writer of the columns `names`, in that order (made once)."""
        if self.encoder is None or NATIVE_MODULE is None:
            return None
        writer = self.block_writers.get(names)
        if writer is None:
            types = dict(zip(self.names, self.types, strict=True))
            writer = NATIVE_MODULE.NativeBlockWriter([(name, types[name]) for name in names])
            self.block_writers[names] = writer
        return writer

    def body(self, rows: Sequence[Mapping[str, object]]) -> bytes:
        """One JSONEachRow body (a JSON array of the row objects) for `rows`.

        Raises TypeError or ValueError naming the column of a value that cannot be stored.
        """
        known = self.known
        for row in rows:
            if not known.issuperset(row):
                raise ValueError(f"unknown column(s) {sorted(set(row) - known)}")
        if self.decimals:
            rows = [self._rounded(row) for row in rows]
        try:
            return orjson.dumps(rows, default=_json_default, option=_JSON_OPTIONS)
        except orjson.JSONEncodeError as exc:
            raise TypeError(str(exc)) from None

    def check_row_binary(self, block: RowBinaryBlock) -> None:
        """Raise ValueError unless `block` has every column of the table, as its type."""
        mine = dict(zip(self.names, self.types, strict=True))
        theirs = dict(zip(block.columns, block.types, strict=True))
        if theirs != mine:
            differ = sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))
            raise ValueError(f"RowBinary rows do not match the table's columns: {differ}")

    def _rounded(self, row: Mapping[str, object]) -> Mapping[str, object]:
        copy: dict[str, object] | None = None
        for name, convert in self.decimals:
            value = row.get(name)
            if value is None:
                continue
            try:
                converted = convert(value)
            except (TypeError, ValueError) as exc:
                raise TypeError(f"{name}: {exc}") from None
            if converted is not value:
                if copy is None:
                    copy = dict(row)
                copy[name] = converted
        return row if copy is None else copy


def insert_plan(table: Table) -> InsertPlan:
    """The plan of inserts into `table` (a table of schemas/tables.py)."""
    decimals = tuple(
        (name, _decimal_converter(int(m.group(1))))
        for name, ch_type in zip(table.column_names, table.column_types, strict=True)
        if (m := _DECIMAL_TYPE.fullmatch(ch_type))
    )
    return InsertPlan(
        table,
        table.column_names,
        table.column_types,
        frozenset(table.column_names),
        decimals,
        _row_encoder(table),
    )


def _row_encoder(table: Table) -> RowEncoder | None:
    if NATIVE_MODULE is None:
        return None
    try:
        encoder: RowEncoder = NATIVE_MODULE.RowBinaryEncoder(
            list(zip(table.column_names, table.column_types, strict=True))
        )
    except ValueError:  # a column type the encoder does not write: JSON for this table
        return None
    return encoder
