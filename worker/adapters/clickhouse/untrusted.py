"""Statements that come from outside ringlog's own code (POST /query, `ringlog sql`).

The engine enforces what they may do, not a regular expression: each one runs on a client
of its own with `readonly = 1` (no writes, no setting changes, no table functions such as
`file`, `url`, `s3`, `remote` or `executable`) and caps on execution time, result rows and
result bytes. `readonly` is the last setting applied, so neither a `SETTINGS` clause nor a
`SET` in the statement can lift it or the caps ("Cannot modify ... in readonly mode").
One thing readonly does not cover in embedded chDB: `INTO OUTFILE` (chDB runs it like
clickhouse-local, on this host), which `check_statement` refuses.

A client of its own because chDB keeps settings on its session: the worker's own client,
which inserts, must never become read-only. Otherwise `check_statement` is only an early,
friendlier message for the obvious cases (not a read, several statements); the engine has the
last word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.pipeline.ports import StoreError


class StatementRefused(StoreError):
    """The statement was refused (by ringlog's early check or by the engine); the message
    says why, in words an operator can act on."""


@dataclass(frozen=True)
class QueryLimits:
    max_seconds: float = 30.0  # RINGLOG_QUERY_MAX_SECONDS
    max_rows: int = 100_000  # RINGLOG_QUERY_MAX_ROWS
    max_bytes: int = 100 * 1024 * 1024  # RINGLOG_QUERY_MAX_BYTES
    # Embedded chDB runs inside the worker: a query must not be able to exhaust its memory.
    max_memory: int = 1024 * 1024 * 1024  # RINGLOG_QUERY_MAX_MEMORY

    def settings(self) -> dict[str, object]:
        return {
            "max_execution_time": self.max_seconds,
            "max_result_rows": self.max_rows,
            "max_result_bytes": self.max_bytes,
            "result_overflow_mode": "throw",
            "max_memory_usage": self.max_memory,
            "readonly": 1,  # last: from here on the engine refuses every setting change
        }


READ_START = re.compile(r"^\s*(\(\s*)*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)
# String literals, quoted identifiers and comments: a ';' inside them separates nothing.
_NOT_CODE = re.compile(
    r"'(?:[^'\\]|\\.|'')*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`|--[^\n]*|#[^\n]*|/\*.*?\*/",
    re.S,
)

INTO_OUTFILE = re.compile(r"\bINTO\s+OUTFILE\b", re.I)

# ClickHouse error codes that mean "refused on purpose", and what to tell the caller.
READONLY = 164
TIMEOUT_EXCEEDED = 159
TOO_MANY_ROWS_OR_BYTES = 396
SYNTAX_ERROR = 62
MEMORY_LIMIT_EXCEEDED = 241
_CODE = re.compile(r"Code: (\d+)\.")


def check_statement(sql: str) -> None:
    """Raise StatementRefused for what is obviously not one read-only statement."""
    code = _NOT_CODE.sub(" ", sql)
    if not code.strip():
        raise StatementRefused("empty statement: send one SELECT")
    if ";" in code.rstrip().rstrip(";"):
        raise StatementRefused("several statements in one request: send one statement per request")
    if not READ_START.match(code):
        raise StatementRefused(
            "only read-only statements (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN, EXISTS) are "
            "accepted here"
        )
    if INTO_OUTFILE.search(code):
        # readonly = 1 does not stop it in embedded chDB, which runs it like clickhouse-local.
        raise StatementRefused(
            "INTO OUTFILE would write a file on the worker's host: not allowed here; read the "
            "result from the response (`ringlog sql --format csv > file`)"
        )


def refusal(message: str, limits: QueryLimits) -> StatementRefused | None:
    """The engine's refusal in words an operator can act on; None for other errors."""
    match = _CODE.search(message)
    code = int(match.group(1)) if match else None
    if code == READONLY:
        return StatementRefused(
            "refused by ClickHouse: statements here run read-only (readonly = 1): no writes, "
            "no setting changes (SET or SETTINGS), no table functions that reach files or the "
            f"network. Engine said: {message}"
        )
    if code == TIMEOUT_EXCEEDED:
        return StatementRefused(
            f"the statement ran longer than RINGLOG_QUERY_MAX_SECONDS={limits.max_seconds:g}s "
            f"and was stopped. Engine said: {message}"
        )
    if code == SYNTAX_ERROR:
        return StatementRefused(f"the statement does not parse as one statement: {message}")
    if code == MEMORY_LIMIT_EXCEEDED:
        return StatementRefused(
            f"the statement needs more memory than RINGLOG_QUERY_MAX_MEMORY={limits.max_memory}"
            f" bytes: aggregate less at once, or add a LIMIT. Engine said: {message}"
        )
    if code == TOO_MANY_ROWS_OR_BYTES:
        return StatementRefused(
            f"the result is larger than RINGLOG_QUERY_MAX_ROWS={limits.max_rows} rows or "
            f"RINGLOG_QUERY_MAX_BYTES={limits.max_bytes} bytes: aggregate, or add a LIMIT. "
            f"Engine said: {message}"
        )
    return None
