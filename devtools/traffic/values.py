"""Random field values as providers write them: UUIDs, hex and digit ids, E.164 numbers.

Every helper draws from the `random.Random` it is given, never from global state, so the
traffic stays a pure function of the seed.
"""

from __future__ import annotations

import random


def uuid4(rng: random.Random) -> str:
    """A version-4 UUID built from the seeded rng (`uuid.uuid4` would use the OS entropy)."""
    n = rng.getrandbits(128)
    n = (n & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def hex_id(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def digit_id(rng: random.Random, n: int) -> str:
    return f"{rng.randrange(10**n):0{n}d}"


# E.164 numbers: (country+area prefix, remaining digits, weight)
_NUMBER_PLANS: tuple[tuple[str, int, int], ...] = (
    ("1", 10, 30),  # US / Canada (first digit of the area code 2-9, see below)
    ("4420", 8, 8),  # London
    ("447", 9, 10),  # UK mobile
    ("44161", 7, 3),  # Manchester
    ("49", 10, 10),  # Germany
    ("4915", 9, 4),  # German mobile
    ("61", 9, 6),  # Australia
    ("91", 10, 8),  # India
    ("33", 9, 7),  # France
    ("81", 10, 4),  # Japan
    ("55", 11, 3),  # Brazil
    ("353", 9, 3),  # Ireland
)


def _cumulative(weights: list[int]) -> list[int]:
    out: list[int] = []
    for w in weights:
        out.append((out[-1] if out else 0) + w)
    return out


_PLAN_CUM = _cumulative([w for _, _, w in _NUMBER_PLANS])


def _bisect_weight(cum: list[int], x: int) -> int:
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


def phone(rng: random.Random) -> str:
    """An E.164 number from a weighted mix of countries."""
    # one randrange over the summed weights (not rng.choices) keeps the rng calls fixed
    prefix, n, _ = _NUMBER_PLANS[_bisect_weight(_PLAN_CUM, rng.randrange(_PLAN_CUM[-1]))]
    rest = digit_id(rng, n)
    if prefix == "1":
        rest = str(rng.randrange(2, 10)) + rest[1:]
    return f"+{prefix}{rest}"
