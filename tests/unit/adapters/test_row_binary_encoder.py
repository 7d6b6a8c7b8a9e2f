"""The native RowBinary encoder of the rows tables (native/src/row_binary.rs), value by value.

What it writes is checked against RowBinary worked out here from Python's own arithmetic
(`Decimal.quantize` with ROUND_HALF_UP, datetime's epoch); where it answers None the JSON path
encodes the block instead, so None must come for every value it cannot store exactly as JSON
would. tests/integration/test_clickhouse_store.py checks the stored rows of both paths in chDB.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.tables import ALL_TABLES, Table
from worker.adapters.clickhouse.values import insert_plan
from worker.core.native_fast_path import NATIVE_MODULE

pytestmark = pytest.mark.skipif(NATIVE_MODULE is None, reason="ringlog_native is not built")

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
END = dt.datetime(2106, 1, 1, tzinfo=dt.UTC)
UUID_TEXT = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
# ClickHouse's UUID: the high 64 bits, then the low, each little-endian.
UUID_ROW = bytes.fromhex("71605f4e3d2c1b0af9e8d7c6b5a49382")


def encoder(*columns: tuple[str, str]) -> Any:
    assert NATIVE_MODULE is not None
    return NATIVE_MODULE.RowBinaryEncoder(list(columns))


def one(kind: str, value: object) -> bytes | None:
    """The RowBinary of `value` in a one-column table of type `kind`."""
    encoded: bytes | None = encoder(("c", kind)).encode([{"c": value}])
    return encoded


def half_up(value: Decimal) -> int:
    return int(value.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP).scaleb(4))


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=6, max_value=10**15, min_value=-(10**15)
    )
    | st.decimals(allow_nan=False, allow_infinity=False)
)
@example(Decimal("1.23455"))
@example(Decimal("-1.23455"))
@example(Decimal("0.00005"))
@example(Decimal("-0.000049999"))
@example(Decimal("-0"))
@example(Decimal("0E-40"))
@example(Decimal("1E-60"))
@example(Decimal("1.2E+3"))
@example(Decimal("0." + "9" * 50))  # more digits than any Decimal64, rounding up to 1
@example(Decimal("-12345.00005" + "0" * 40 + "1"))
@example(Decimal("99999999999999.99995"))  # rounds up to 10^14: out of Decimal(18, 4)
@example(Decimal("99999999999999.99994"))
@settings(max_examples=400)
def test_decimals_round_half_up_as_the_json_path_does(value: Decimal) -> None:
    encoded = one("Nullable(Decimal(18, 4))", value)
    scaled = half_up(value) if value.adjusted() < 20 else 10**18
    if abs(scaled) >= 10**18:
        assert encoded is None  # ClickHouse refuses it: the JSON path raises the error
    else:
        assert encoded == b"\x00" + scaled.to_bytes(8, "little", signed=True)


@pytest.mark.parametrize("value", ["NaN", "-Infinity", "sNaN"])
def test_decimals_that_are_not_numbers_go_as_json(value: str) -> None:
    assert one("Decimal(18, 4)", Decimal(value)) is None


@pytest.mark.parametrize("value", [1, 1.5, "1.5", True])
def test_a_decimal_column_takes_only_decimals(value: object) -> None:
    # The JSON path converts these (values._decimal_converter); RowBinary leaves them to it.
    assert one("Decimal(18, 4)", value) is None


@given(
    st.datetimes(
        min_value=dt.datetime(1960, 1, 1),
        max_value=dt.datetime(2200, 1, 1),
        timezones=st.none() | st.just(dt.UTC) | st.timezones(),  # type: ignore[arg-type]
    )
)
@example(dt.datetime(2026, 12, 2, 23, 59, 59, 999999, tzinfo=dt.UTC))
@example(dt.datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=dt.UTC))
@example(dt.datetime(1970, 1, 1, 0, 0, 0, 999, tzinfo=dt.timezone(dt.timedelta(hours=1))))
@example(dt.datetime(2105, 12, 31, 23, 59, 59, 999999))
def test_times_are_utc_milliseconds_truncated(value: dt.datetime) -> None:
    aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
    encoded = one("DateTime64(3, 'UTC')", value)
    if not EPOCH <= aware < END:
        assert encoded is None
    else:
        millis = (aware - EPOCH) // dt.timedelta(milliseconds=1)
        assert encoded == millis.to_bytes(8, "little")


def test_times_other_than_datetimes_go_as_json() -> None:
    class Moment(dt.datetime):
        pass

    assert one("DateTime64(3, 'UTC')", "2026-01-01T00:00:00Z") is None
    assert one("DateTime64(3, 'UTC')", dt.date(2026, 1, 1)) is None
    assert one("DateTime64(3, 'UTC')", Moment(2026, 1, 1, tzinfo=dt.UTC)) is None


@pytest.mark.parametrize(
    ("kind", "low", "high", "size", "signed"),
    [
        ("Int32", -(2**31), 2**31 - 1, 4, True),
        ("Int64", -(2**63), 2**63 - 1, 8, True),
        ("UInt8", 0, 255, 1, False),
        ("UInt32", 0, 2**32 - 1, 4, False),
        ("UInt64", 0, 2**64 - 1, 8, False),
    ],
)
def test_ints_within_their_column_and_nothing_else(
    kind: str, low: int, high: int, size: int, signed: bool
) -> None:
    for value in (low, high, 0, 7):
        assert one(kind, value) == value.to_bytes(size, "little", signed=signed)
    for refused in (low - 1, high + 1, 2**70, True, 1.0, "1", Decimal(1)):
        assert one(kind, refused) is None, refused
    assert one(f"Nullable({kind})", 7) == b"\x00" + (7).to_bytes(size, "little")
    assert one(f"Nullable({kind})", None) == b"\x01"


def test_bools() -> None:
    assert one("Bool", True) == b"\x01"
    assert one("Bool", False) == b"\x00"
    assert one("Bool", 1) is None


def test_uuids_from_text_bytes_and_uuid_objects() -> None:
    parsed = uuid.UUID(UUID_TEXT)
    for value in (UUID_TEXT, UUID_TEXT.upper(), parsed.bytes, parsed):
        assert one("UUID", value) == UUID_ROW, value
    assert one("Nullable(UUID)", UUID_TEXT) == b"\x00" + UUID_ROW
    for bad in (
        parsed.hex,
        "{" + UUID_TEXT + "}",
        UUID_TEXT[:-1] + "g",
        UUID_TEXT[:8] + "x" + UUID_TEXT[9:],
        b"\x00" * 15,
        5,
    ):
        assert one("UUID", bad) is None, bad


def test_strings() -> None:
    assert one("String", "") == b"\x00"
    assert one("LowCardinality(String)", "☎") == b"\x03" + "☎".encode()
    long = "x" * 300  # a two-byte length
    assert one("Nullable(String)", long) == b"\x00\xac\x02" + long.encode()
    assert one("LowCardinality(Nullable(String))", None) == b"\x01"
    assert one("String", "\ud800") is None  # a lone surrogate: orjson refuses it
    assert one("String", 5) is None
    assert one("String", b"x") is None
    assert one("Array(LowCardinality(String))", ["a", "bc"]) == b"\x02\x01a\x02bc"
    assert one("Array(String)", ()) == b"\x00"
    assert one("Array(String)", ["a", 1]) is None


def test_rows_in_column_order_else_json() -> None:
    two = encoder(("a", "UInt8"), ("b", "Nullable(String)"))
    assert two.encode([{"b": "x", "a": 1}, {"a": 2, "b": None}]) == b"\x01\x00\x01x\x02\x01"
    assert two.encode([]) == b""
    assert two.encode([{"a": 1}]) is None  # missing: the JSON path stores the default
    assert two.encode([{"a": 1, "b": "x", "c": 3}]) is None  # unknown: the JSON path refuses
    assert two.encode([{"a": 1, "c": 3}]) is None
    assert two.encode([{"a": None, "b": "x"}]) is None  # None in a column that is not Nullable
    assert two.encode([("a", 1)]) is None


def test_types_it_does_not_write_are_refused_at_construction() -> None:
    for kind in (
        "Map(String, String)",
        "DateTime64(6, 'UTC')",
        "Decimal(38, 4)",
        "Nullable(Array(String))",
    ):
        with pytest.raises(ValueError, match=r"column c: RowBinary of .* not written"):
            encoder(("c", kind))


def test_every_table_has_an_encoder_and_others_go_as_json() -> None:
    for table in ALL_TABLES:
        assert insert_plan(table).encoder is not None, table.name
    odd = Table("odd", (("id", "UUID"), ("tags", "Map(String, String)")), ("id",))
    assert insert_plan(odd).encoder is None
    assert insert_plan(odd).row_binary([{"id": UUID_TEXT, "tags": {}}]) is None
