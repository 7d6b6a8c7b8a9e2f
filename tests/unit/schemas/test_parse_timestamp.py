"""`parse_timestamp` against a reference built from the parts of the text: its shortcut for the
common form ("T", milliseconds, Z or +hh:mm) must read every text as the general path does."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic_core import PydanticCustomError

from schemas.events import parse_timestamp


def _reference(
    year: int, month: int, day: int, clock: tuple[int, int, int], fraction: str, offset: str
) -> datetime | None:
    """RFC 3339 read by hand: digits below the millisecond truncated, the offset applied."""
    hour, minute, second = clock
    millis = int((fraction + "000")[:3])
    try:
        if offset in ("Z", "z"):
            tz = UTC
        else:
            sign = -1 if offset[0] == "-" else 1
            hh, mm = int(offset[1:3]), int(offset[4:6])
            if hh > 23 or mm > 59:
                return None
            tz = timezone(sign * timedelta(hours=hh, minutes=mm))
        local = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=tz)
        return local.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


@given(
    year=st.integers(1, 9999),
    month=st.integers(1, 13),
    day=st.integers(1, 31),
    clock=st.tuples(st.integers(0, 24), st.integers(0, 60), st.integers(0, 60)),
    separator=st.sampled_from(["T", "t", " "]),
    fraction=st.one_of(st.just(""), st.text("0123456789", min_size=1, max_size=9)),
    offset=st.one_of(
        st.sampled_from(["Z", "z", "+00:00", "-00:00"]),
        st.builds(
            "{}{:02d}:{:02d}".format,
            st.sampled_from("+-"),
            st.integers(0, 25),
            st.integers(0, 60),
        ),
    ),
)
@example(2024, 5, 1, (8, 0, 0), "T", "123", "Z")
@example(2024, 5, 1, (3, 0, 0), "T", "123999", "-05:00")
@example(2024, 5, 1, (8, 0, 0), "T", "123", "+00:60")  # RFC 3339 minutes end at 59
@example(2024, 5, 1, (8, 0, 0), " ", "", "-00:60")
@example(1, 1, 1, (0, 30, 0), "T", "000", "+01:00")  # before year 1 in UTC
@example(9999, 12, 31, (23, 30, 0), "T", "000", "-01:00")  # after year 9999 in UTC
def test_parse_timestamp_reads_every_form_as_its_parts_say(
    year: int,
    month: int,
    day: int,
    clock: tuple[int, int, int],
    separator: str,
    fraction: str,
    offset: str,
) -> None:
    hour, minute, second = clock
    text = f"{year:04d}-{month:02d}-{day:02d}{separator}{hour:02d}:{minute:02d}:{second:02d}"
    text += f".{fraction}" if fraction else ""
    text += offset
    expected = _reference(year, month, day, clock, fraction, offset)
    if expected is None:
        with pytest.raises(PydanticCustomError):
            parse_timestamp(text)
        return
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


@pytest.mark.parametrize(
    "text",
    [
        "2024-05-01T08:00:00.123Z\n",
        "2024-05-01T08:00:00.123+0200",
        "2024-05-01T08:00:00.123",
        "2024-W18-3T08:00:00.123Z",  # an ISO week date: fromisoformat reads it, RFC 3339 not
        "2024-05-01T08:00:0٠.123Z",
        "2024-05-01T08:00:00,123Z",
    ],
)
def test_parse_timestamp_refuses_what_rfc_3339_does_not_allow(text: str) -> None:
    with pytest.raises(PydanticCustomError):
        parse_timestamp(text)
