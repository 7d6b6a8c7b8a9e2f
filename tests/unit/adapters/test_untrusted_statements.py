"""The early check of statements from outside ringlog (the engine's readonly = 1 is the real
guard; this only gives friendlier messages and stops what readonly does not cover)."""

from __future__ import annotations

import pytest

from worker.adapters.clickhouse.untrusted import (
    QueryLimits,
    StatementRefused,
    check_statement,
    refusal,
)


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT 1",
        "  (SELECT 1) UNION ALL (SELECT 2)",
        "WITH 1 AS a SELECT a",
        "SHOW TABLES",
        "DESCRIBE call_event",
        "EXPLAIN SELECT 1",
        "SELECT ';' AS semicolon",
        "SELECT 1 -- ; DROP TABLE call_event",
        "SELECT 1 /* ; INSERT */",
        "SELECT 1;",
        "SELECT 'INTO OUTFILE' AS words",
    ],
)
def test_reads_pass(sql: str) -> None:
    check_statement(sql)


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("", "empty statement"),
        ("-- only a comment", "empty statement"),
        ("SELECT 1; SELECT 2", "several statements"),
        ("SELECT 1; DROP TABLE call_event", "several statements"),
        ("SET readonly = 0", "only read-only statements"),
        ("/* SELECT */ INSERT INTO rejected_event VALUES ('x')", "only read-only statements"),
        ("DROP TABLE call_event", "only read-only statements"),
        ("ALTER TABLE call_event DELETE WHERE 1", "only read-only statements"),
        ("SELECT 1 INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("SELECT 1 INTO/**/OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("select 1 into\noutfile '/tmp/x' APPEND", "INTO OUTFILE"),
    ],
)
def test_obvious_non_reads_are_refused_with_the_reason(sql: str, reason: str) -> None:
    with pytest.raises(StatementRefused, match=reason):
        check_statement(sql)


def test_engine_refusals_are_explained_with_the_setting_to_change() -> None:
    limits = QueryLimits(max_seconds=2, max_rows=10, max_bytes=1000)
    readonly = refusal("Code: 164. DB::Exception: Cannot execute query in readonly mode.", limits)
    assert readonly is not None and "read-only (readonly = 1)" in str(readonly)
    slow = refusal("Code: 159. DB::Exception: Timeout exceeded", limits)
    assert slow is not None and "RINGLOG_QUERY_MAX_SECONDS=2s" in str(slow)
    big = refusal("Code: 396. DB::Exception: Limit for result exceeded", limits)
    assert big is not None and "RINGLOG_QUERY_MAX_ROWS=10" in str(big)
    assert refusal("Code: 60. DB::Exception: Unknown table", limits) is None
    # readonly is applied last, after the caps it protects
    assert list(limits.settings())[-1] == "readonly"
