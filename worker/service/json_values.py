"""Query results as JSON, for /query and `ringlog sql --format json`: exact numbers and ids
as strings (never floats), times as ISO 8601, anything else orjson cannot encode as text."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson


def json_default(value: Any) -> Any:
    """What orjson cannot serialise itself."""
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, set | frozenset):
        return list(value)
    return str(value)  # IP addresses and other exotic ClickHouse types


def dumps(value: Any) -> bytes:
    return orjson.dumps(
        value, default=json_default, option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    )
