"""The `call_event` rows in RowBinary (`worker.core.call_event_rows`).

- The reference encoder writes exactly the dict row (`call_event_row`): read back by the
  small RowBinary reader below, column by column.
- The native decoder's row (`decode_record`) is the reference encoder's, byte for byte, for
  every message it accepts: generated ones in every JSON encoding, hypothesis field
  replacements, record positions at the edges of their types.
- `CallEventRows` joins the batch's ingested_at after each row, and reads as the dicts.

`tests/integration/test_clickhouse_store.py` checks that ClickHouse stores these bytes as the
same rows as the JSON of the dicts.
"""

from __future__ import annotations

import struct
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import worker.core.decode as decoder
from schemas.tables import CALL_EVENT
from tests.support.fakes import FakeRecord
from tests.unit.core.test_native_decode import MESSAGES, altered, encodings
from tests.unit.core.test_native_fast_path import FIELD_VALUES, NATIVE, SAMPLES, assert_same_event
from worker.core.call_event_rows import (
    CALL_EVENT_COLUMNS,
    ENCODED_TYPES,
    CallEventRows,
    call_event_row,
    encode_row,
)
from worker.core.decode import ValidEvent, decode, decode_record

T0 = datetime(2026, 12, 2, 20, 0, 0, 123456, tzinfo=UTC)
POSITIONS = [
    ("telephony.call-events", 0, 0),
    ("t", 2**31 - 1, 2**63 - 1),
    ("événements", 7, 127),
    ("x" * 200, 1, 16_384),
]


@pytest.fixture(autouse=True)
def _pure_decoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """`decode` below runs without any native code: the reference."""
    monkeypatch.setattr(decoder, "NATIVE", None)


class Reader:
    """Reads RowBinary values back (the types `ENCODED_TYPES` names)."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, n: int) -> bytes:
        out = self.data[self.at : self.at + n]
        assert len(out) == n, "the row ended early"
        self.at += n
        return out

    def varint(self) -> int:
        value = shift = 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value

    def value(self, ch_type: str) -> object:
        if ch_type.startswith("LowCardinality("):
            return self.value(ch_type[len("LowCardinality(") : -1])
        if ch_type.startswith("Nullable("):
            return None if self.take(1) == b"\x01" else self.value(ch_type[len("Nullable(") : -1])
        if ch_type == "String":
            return self.take(self.varint()).decode()
        if ch_type == "UUID":
            high, low = struct.unpack("<QQ", self.take(16))
            return str(uuid.UUID(int=high << 64 | low))
        if ch_type.startswith("DateTime64(3"):
            (millis,) = struct.unpack("<q", self.take(8))
            return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=millis)
        code = {"Int32": "<i", "Int64": "<q", "UInt64": "<Q"}[ch_type]
        (number,) = struct.unpack(code, self.take(struct.calcsize(code)))
        return number


def read_rows(data: bytes, columns: tuple[str, ...]) -> list[dict[str, object]]:
    reader, rows = Reader(data), []
    while reader.at < len(data):
        rows.append({name: reader.value(ENCODED_TYPES[name]) for name in columns})
    return rows


def truncated(value: datetime) -> datetime:
    """As DateTime64(3) keeps it."""
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def check(record: FakeRecord) -> tuple[ValidEvent, bytes | None] | None:
    """The native answer for a record; its row checked against the reference encoder's."""
    assert record.value is not None
    native = NATIVE.decode_record(
        record.value, record.key, record.topic, record.partition, record.offset
    )
    if native is None:
        return None
    ev, row = native
    expected = decode(record.key, record.value)
    assert isinstance(expected, ValidEvent), f"native accepted what is refused: {expected}"
    assert_same_event(ev.event, expected.event)
    assert ev.digest == expected.digest
    assert row == encode_row(record, expected)
    return native


def test_the_encoded_types_are_the_tables() -> None:
    assert dict(CALL_EVENT.columns) == ENCODED_TYPES
    assert sorted(CALL_EVENT_COLUMNS) == sorted(CALL_EVENT.column_names)
    assert CALL_EVENT_COLUMNS[-1] == "ingested_at"


def test_the_reference_row_reads_back_as_the_dict() -> None:
    for topic, partition, offset in POSITIONS:
        for message in MESSAGES[:150]:
            record = FakeRecord(topic, partition, offset, message.key, message.value)
            ev = decode(record.key, message.value)
            assert isinstance(ev, ValidEvent)
            at = struct.pack("<q", 1_764_705_600_123)
            [row] = read_rows(encode_row(record, ev) + at, CALL_EVENT_COLUMNS)
            expected = call_event_row(record, ev, datetime.fromtimestamp(1_764_705_600.123, UTC))
            expected["occurred_at"] = truncated(expected["occurred_at"])
            assert row == expected


def test_the_native_row_is_the_reference_row() -> None:
    answered = 0
    for topic, partition, offset in POSITIONS:
        for message in MESSAGES:
            record = FakeRecord(topic, partition, offset, message.key, message.value)
            found = check(record)
            if found is not None and found[1] is not None:
                answered += 1
    assert answered > len(POSITIONS) * len(MESSAGES) * 0.9


def test_every_encoding_gives_the_row_of_its_own_bytes() -> None:
    for message in MESSAGES[:100]:
        data = orjson.loads(message.value)
        if None in data.values():
            continue
        data["source"] = "tw\u00e9lio\t" + "s" * 40
        data["sequence"] = 2**62
        for value in encodings(data):
            found = check(FakeRecord("t", 3, 9, message.key, value))
            assert found is not None and found[1] is not None, value


def test_a_long_payload_takes_a_three_byte_length() -> None:
    message = next(m for m in MESSAGES if b"outbound_call.placed" in m.value)
    data = orjson.loads(message.value)
    data["call_data"] = {"note": "n" * 20_000}
    found = check(FakeRecord("t", 0, 1, message.key, orjson.dumps(data)))
    assert found is not None and found[1] is not None
    [row] = read_rows(found[1] + bytes(8), CALL_EVENT_COLUMNS)
    assert row["payload"] == orjson.dumps(data).decode()


@settings(max_examples=1500, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(SAMPLES), st.data(), FIELD_VALUES, st.sampled_from(POSITIONS))
def test_a_native_row_is_the_reference_row(
    sample: dict[str, Any],
    data: st.DataObject,
    value: object,
    position: tuple[str, int, int],
) -> None:
    encoded = altered(sample, data, value)
    if encoded is not None:
        check(FakeRecord(*position, str(sample["call_id"]).encode(), encoded))


def test_a_block_joins_the_batch_time_after_each_row() -> None:
    ingested_at = datetime(2026, 12, 2, 21, 0, 0, 999999, tzinfo=timezone(timedelta(hours=1)))
    rows = CallEventRows(ingested_at)
    assert rows.row_binary() == b"" and list(rows) == []
    added = []
    for offset, message in enumerate(MESSAGES[:30]):
        record = FakeRecord("t", 1, offset, message.key, message.value)
        ev = decode(record.key, message.value)
        assert isinstance(ev, ValidEvent)
        # Every third row as the native decoder would give it, the others left to Python.
        rows.add(record, ev, encode_row(record, ev) if offset % 3 == 0 else None)
        added.append((record, ev))
    assert len(rows) == 30
    assert list(rows) == [call_event_row(r, ev, ingested_at) for r, ev in added]
    assert rows[4] == call_event_row(*added[4], ingested_at)
    assert rows[1:3] == [call_event_row(r, ev, ingested_at) for r, ev in added[1:3]]
    read = read_rows(rows.row_binary(), rows.columns)
    assert [row["ingested_at"] for row in read] == [truncated(ingested_at)] * 30
    assert [row["offset"] for row in read] == list(range(30))
    assert rows.types == tuple(ENCODED_TYPES[name] for name in rows.columns)


def test_a_naive_time_is_utc() -> None:
    message = MESSAGES[0]
    record = FakeRecord("t", 0, 0, message.key, message.value)
    ev = decode(record.key, message.value)
    assert isinstance(ev, ValidEvent)
    aware, naive = CallEventRows(T0), CallEventRows(T0.replace(tzinfo=None))
    aware.add(record, ev, None)
    naive.add(record, ev, None)
    assert aware.row_binary() == naive.row_binary()


def test_decode_record_without_native_code_leaves_the_row_to_python() -> None:
    message = MESSAGES[0]
    ev, row = decode_record(FakeRecord("t", 0, 0, message.key, message.value))
    assert isinstance(ev, ValidEvent) and row is None
