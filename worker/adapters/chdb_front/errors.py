"""ClickHouse-style failures: QueryFailure, the error codes the server raises itself, and the
mapping of any exception (chDB's included) to a QueryFailure."""

from __future__ import annotations

import re
from typing import Final

_CODE = re.compile(r"Code: (\d+)\.")

# ClickHouse error codes used by the server itself.
UNKNOWN_EXCEPTION: Final = 1002
CANNOT_DECOMPRESS: Final = 271
SESSION_IS_LOCKED: Final = 373
AUTHENTICATION_FAILED: Final = 516
NOT_IMPLEMENTED: Final = 48
UNKNOWN_SETTING: Final = 115
TOO_LARGE: Final = 307  # TOO_MANY_BYTES


class QueryFailure(Exception):
    """A ClickHouse-style failure: code, message text, HTTP status."""

    def __init__(self, code: int, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def failure_from(exc: BaseException) -> QueryFailure:
    if isinstance(exc, QueryFailure):
        return exc
    text = str(exc)
    idx = text.find("Code: ")
    if idx > 0:
        text = text[idx:]
    match = _CODE.search(text)
    if match:
        return QueryFailure(int(match.group(1)), text.strip())
    return QueryFailure(
        UNKNOWN_EXCEPTION,
        f"Code: {UNKNOWN_EXCEPTION}. DB::Exception: {type(exc).__name__}: {text} "
        "(UNKNOWN_EXCEPTION)",
    )
