"""What the tables can hold (schemas/tables.py), for the values the contract's types accept.

A value the contract accepts but a column cannot store would fail the insert with a permanent
error and stall the worker on that batch forever, so the decoder rejects it instead, naming
the field (`worker.core.decode`); the decoder's fast path refuses it up front
(`worker.core.event_fast_path`), and the contract path reports it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

TIME_MIN = datetime(1970, 1, 1, tzinfo=UTC)
TIME_MAX = datetime(2106, 1, 1, tzinfo=UTC)  # exclusive: any two times fit a UInt32 duration
MONEY_MAX = Decimal(10) ** 12  # exclusive, US cents: sums of legs stay within Decimal(18, 4)
INT_RANGES: dict[str, tuple[int, int]] = {
    "sequence": (0, 2**63 - 1),  # Int64
    "billable_seconds": (0, 2**31 - 1),  # ~68 years; rated into Decimal(18, 4)
    "duration": (0, 2**31 - 1),
    "escalation_rule_order": (1, 2**32 - 1),  # UInt32
    "repeat_count": (0, 2**32 - 1),
    "status_code": (-(2**31), 2**31 - 1),  # Int32
}
"""Inclusive bounds of the integer fields, by field name."""
