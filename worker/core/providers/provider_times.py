"""Provider time notations -> aware datetimes, and aware datetimes -> the contract's RFC 3339.

Exact arithmetic on the digits (no float): an epoch with a fraction keeps its microseconds, so
the same instant written two ways (Asterisk's epoch `eventtime` and its `dateformat` text, say)
yields the same value and so the same event id.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_TEXT = re.compile(r"^(\d{1,12})(?:\.(\d{1,9}))?$")
# `YYYY-MM-DD HH:MM:SS[.f]` with an optional offset: `Z`, `+hh`, `+hhmm`, `+hh:mm` (psql prints
# `-04`). A `T` separator is accepted too.
_LOCAL_TEXT = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[ T](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?$"
)


def from_epoch_seconds(text: str) -> datetime | None:
    """`1335310195.513823` (seconds, optional fraction) -> UTC; None if not that notation."""
    match = _EPOCH_TEXT.match(text.strip())
    if match is None:
        return None
    whole, fraction = match.group(1), (match.group(2) or "")
    micros = int((fraction + "000000")[:6])
    return _EPOCH + timedelta(seconds=int(whole), microseconds=micros)


def from_epoch_micros(text: str) -> datetime | None:
    """FreeSWITCH `*_uepoch`: integer microseconds -> UTC; None if not an integer."""
    stripped = text.strip()
    if not stripped.isdigit() or not stripped.isascii():
        return None
    return _EPOCH + timedelta(microseconds=int(stripped))


def from_wall_clock(text: str, zone: tzinfo) -> datetime | None:
    """`2022-07-21 09:31:28.178728[offset]` -> aware datetime; no offset means `zone`."""
    match = _LOCAL_TEXT.match(text.strip())
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    micros = int(((match.group(7) or "") + "000000")[:6])
    offset = match.group(8)
    try:
        naive = datetime(year, month, day, hour, minute, second, micros)
    except ValueError:
        return None
    if offset is None:
        return naive.replace(tzinfo=zone)
    return naive.replace(tzinfo=_fixed_offset(offset))


def _fixed_offset(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or "0")
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def rfc3339(moment: datetime) -> str:
    """UTC, microseconds kept (the worker truncates to the millisecond), `Z` suffix."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
