"""A batch's `call_event` rows, written while each message is decoded.

Every valid event becomes one `call_event` row, so these rows are the bulk of what a batch
inserts (a few hundred bytes of payload each). Built as dicts and sent as JSON they cost a
dict per event on the planner's thread, orjson's encoding of every payload again on the
writer's, and ClickHouse's parse of that JSON. Instead the native decoder writes each row in
ClickHouse's RowBinary while it still holds the message (`ringlog_native`'s `decode_record`):
the payload's own bytes, the members it has just read, the record's position. This module is
the reference encoder (it writes what the native one does not) and the block the store sends.

`CallEventRows` is also a sequence of the rows as dicts (`call_event_row`), built on demand:
that is what the in-memory stores of the tests keep, and what a reader of a plan sees.

Measured on the benchmark's batches (chDB, same rows): ClickHouse reads RowBinary for
2.8-3.2 us of CPU per row where JSONEachRow takes 5.0-5.2 (a Null table); the whole insert
6.7-7.8 against 9.3-10.2 us per row.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import ClassVar, Final, overload

from schemas.rows import CallEventRow
from worker.core.record import Record
from worker.core.valid_event import ValidEvent

__all__ = ["CALL_EVENT_COLUMNS", "BatchItem", "CallEventRows", "call_event_row", "encode_row"]

BatchItem = tuple[Record, ValidEvent, bytes | None]
"""One valid event of a batch: its record, the event, its call_event row in RowBinary (None:
encode it from the event)."""


CALL_EVENT_COLUMNS: Final = (
    "project_id",
    "call_id",
    "event_id",
    "type",
    "occurred_at",
    "sequence",
    "source",
    "payload",
    "version",
    "topic",
    "partition",
    "offset",
    # Last: the batch's one value, joined after each row (`CallEventRows.row_binary`).
    "ingested_at",
)
"""The columns of a RowBinary row, in order (the insert names them)."""

ENCODED_TYPES: Final = {
    "project_id": "UUID",
    "call_id": "String",
    "event_id": "String",
    "type": "LowCardinality(String)",
    "occurred_at": "DateTime64(3, 'UTC')",
    "sequence": "Nullable(Int64)",
    "source": "LowCardinality(Nullable(String))",
    "payload": "String",
    "version": "UInt64",
    "topic": "LowCardinality(String)",
    "partition": "Int32",
    "offset": "Int64",
    "ingested_at": "DateTime64(3, 'UTC')",
}
"""The column types this encoder writes; the store refuses the block if the table differs."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_NULL: Final = b"\x01"
_NOT_NULL: Final = b"\x00"
_INT64 = struct.Struct("<q")
_UINT64 = struct.Struct("<Q")
_POSITION = struct.Struct("<iq")  # partition, offset


def call_event_row(record: Record, ev: ValidEvent, ingested_at: datetime) -> CallEventRow:
    """The row as a dict: what the RowBinary encodes."""
    e = ev.event
    return {
        "project_id": e.project_id,
        "call_id": e.call_id,
        "event_id": e.event_id,
        "type": e.type,
        "occurred_at": e.occurred_at,
        "sequence": e.sequence,
        "source": e.source,
        # The exact text it arrived as (valid UTF-8: the decoder parsed it).
        "payload": record.value.decode("utf-8") if record.value is not None else "",
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "ingested_at": ingested_at,
        "version": ev.digest,
    }


def encode_row(record: Record, ev: ValidEvent) -> bytes:
    """The row in RowBinary, every column of CALL_EVENT_COLUMNS but ingested_at (the
    reference of `ringlog_native`'s)."""
    e = ev.event
    parts = [
        _uuid(e.project_id),
        _string(e.call_id.encode()),
        _string(e.event_id.encode()),
        _string(e.type.encode()),
        _INT64.pack(_millis(e.occurred_at)),
        _NULL if e.sequence is None else _NOT_NULL + _INT64.pack(e.sequence),
        _NULL if e.source is None else _NOT_NULL + _string(e.source.encode()),
        _string(record.value if record.value is not None else b""),
        _UINT64.pack(ev.digest),
        _string(record.topic.encode()),
        _POSITION.pack(record.partition, record.offset),
    ]
    return b"".join(parts)


class CallEventRows(Sequence[CallEventRow]):
    """The `call_event` rows of one plan, in the order they were added."""

    columns: ClassVar[tuple[str, ...]] = CALL_EVENT_COLUMNS
    types: ClassVar[tuple[str, ...]] = tuple(ENCODED_TYPES[name] for name in CALL_EVENT_COLUMNS)

    def __init__(self, ingested_at: datetime) -> None:
        self.ingested_at = ingested_at
        self._rows: list[BatchItem] = []

    def add(self, record: Record, ev: ValidEvent, encoded: bytes | None) -> None:
        """Add the row of `ev` as consumed in `record`; `encoded` is its RowBinary from the
        decoder, if it wrote it."""
        self._rows.append((record, ev, encoded))

    def extend(self, items: Iterable[BatchItem]) -> None:
        """`add` of each (record, event, encoded) in turn."""
        self._rows.extend(items)

    @property
    def items(self) -> list[BatchItem]:
        """The (record, event, encoded) items themselves, in order (not a copy)."""
        return self._rows

    def row_parts(self) -> tuple[list[bytes], bytes]:
        """Each row in RowBinary but its last column (the rows the decoder did not write are
        encoded now), and that column's value, which ends every row: the batch's ingested_at.
        The store joins them into a Native block without a copy of the whole body."""
        rows = [row if row is not None else encode_row(rec, ev) for rec, ev, row in self._rows]
        return rows, _INT64.pack(_millis(self.ingested_at))

    def row_binary(self) -> bytes:
        """Every row in RowBinary, each followed by the batch's ingested_at."""
        if not self._rows:
            return b""
        rows, at = self.row_parts()
        rows.append(b"")  # so the join ends with `at` too, without a second copy of the block
        return at.join(rows)

    def __len__(self) -> int:
        return len(self._rows)

    @overload
    def __getitem__(self, index: int) -> CallEventRow: ...
    @overload
    def __getitem__(self, index: slice) -> list[CallEventRow]: ...
    def __getitem__(self, index: int | slice) -> CallEventRow | list[CallEventRow]:
        if isinstance(index, slice):
            return [call_event_row(r, ev, self.ingested_at) for r, ev, _ in self._rows[index]]
        record, ev, _ = self._rows[index]
        return call_event_row(record, ev, self.ingested_at)

    def __iter__(self) -> Iterator[CallEventRow]:
        for record, ev, _ in self._rows:
            yield call_event_row(record, ev, self.ingested_at)


def _millis(value: datetime) -> int:
    """DateTime64(3): whole milliseconds since the epoch (truncated, as ClickHouse reads a
    finer text); a naive datetime is UTC, as the JSON inserts read it."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return (value - _EPOCH) // _MILLISECOND


def _string(data: bytes) -> bytes:
    """A String: its length as a LEB128 varint, then its bytes."""
    length = len(data)
    prefix = bytearray()
    while length >= 0x80:
        prefix.append((length & 0x7F) | 0x80)
        length >>= 7
    prefix.append(length)
    return bytes(prefix) + data


def _uuid(text: str) -> bytes:
    """A UUID as ClickHouse stores it: two 64-bit halves, each little-endian."""
    value = uuid.UUID(text).int
    return _UINT64.pack(value >> 64) + _UINT64.pack(value & 0xFFFF_FFFF_FFFF_FFFF)
