"""How producers write timestamps: each call gets one `Clock` (UTC offset and format)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# offsets seen from producers: UTC, US, Newfoundland, Europe, India, Australia
OFFSETS = (0, 0, 0, -300, -240, -420, -210, 60, 120, 330, 600)

_EPOCH = datetime(1970, 1, 1)

# "YYYY-MM-DDT" by day number: one strftime per day instead of one per timestamp
_DATES: dict[int, str] = {}


def epoch_ms(dt: datetime) -> int:
    """Milliseconds since the epoch; a naive datetime counts as UTC."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class Clock:
    """How one producer writes timestamps: UTC offset, `Z` or `+00:00`, ms or µs digits."""

    offset_min: int
    zulu: bool
    micro: bool

    def fmt(self, ms: int, rng: random.Random) -> str:
        """RFC 3339 text of `ms`; the µs digits, when written, are random."""
        local = ms + self.offset_min * 60_000
        secs, milli = divmod(local, 1000)
        days, sod = divmod(secs, 86_400)
        date = _DATES.get(days)
        if date is None:
            date = _DATES[days] = (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%dT")
        hh, rest = divmod(sod, 3600)
        mi, ss = divmod(rest, 60)
        if self.micro:
            base = f"{date}{hh:02d}:{mi:02d}:{ss:02d}.{milli:03d}{rng.randrange(1000):03d}"
        else:
            base = f"{date}{hh:02d}:{mi:02d}:{ss:02d}.{milli:03d}"
        return base + self.suffix

    @property
    def suffix(self) -> str:
        if self.offset_min == 0 and self.zulu:
            return "Z"
        sign = "-" if self.offset_min < 0 else "+"
        hh, mm = divmod(abs(self.offset_min), 60)
        return f"{sign}{hh:02d}:{mm:02d}"
