"""`ringlog sql --format json` prints JSON Lines: one compact, JSON-safe object per row."""

from __future__ import annotations

import json
import socket
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from worker.cli.main import app
from worker.cli.query import print_rows

COLUMNS = ["call_id", "started_at", "cost", "answered_by", "day", "project_id"]
PROJECT = uuid.UUID("0b6d4a4e-6f8e-4c2b-9d55-3f1f0c2a7e11")
ROWS = [
    [
        "CA1",
        datetime(2026, 11, 22, 9, 30, 5, 123000, tzinfo=UTC),
        Decimal("2.6000"),
        None,
        date(2026, 11, 22),
        PROJECT,
    ],
    [
        'CA2 "quoted" ünïcode',
        datetime(2026, 11, 22, 10, 0, tzinfo=UTC),
        Decimal("0"),
        "u-7",
        None,
        PROJECT,
    ],
]


def test_json_format_prints_one_compact_object_per_row(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows(COLUMNS, ROWS, "json")
    captured = capsys.readouterr()
    assert captured.err == ""
    assert captured.out.splitlines() == [
        '{"call_id":"CA1","started_at":"2026-11-22T09:30:05.123000+00:00","cost":"2.6000",'
        '"answered_by":null,"day":"2026-11-22",'
        '"project_id":"0b6d4a4e-6f8e-4c2b-9d55-3f1f0c2a7e11"}',
        '{"call_id":"CA2 \\"quoted\\" ünïcode","started_at":"2026-11-22T10:00:00+00:00",'
        '"cost":"0","answered_by":"u-7","day":null,'
        '"project_id":"0b6d4a4e-6f8e-4c2b-9d55-3f1f0c2a7e11"}',
    ]
    assert captured.out.endswith("\n")
    # every line is a JSON document on its own
    assert [json.loads(line)["call_id"] for line in captured.out.splitlines()] == [
        "CA1",
        'CA2 "quoted" ünïcode',
    ]


def test_json_format_prints_nothing_for_no_rows(capsys: pytest.CaptureFixture[str]) -> None:
    print_rows(COLUMNS, [], "json")
    assert capsys.readouterr().out == ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_sql_verb_prints_json_lines_from_the_embedded_store(chdb_store_url: str) -> None:
    # A port nobody listens on, so `ringlog sql` opens the chDB store itself instead of asking
    # a worker (possibly another test run's) over HTTP.
    result = CliRunner().invoke(
        app,
        [
            "sql",
            "SELECT number AS n, toDateTime64('2026-11-22 09:30:05.123', 3, 'UTC') AS at, "
            "toDecimal64(number, 4) / 4 AS cost, if(number = 0, NULL, 'x') AS s "
            "FROM system.numbers LIMIT 2",
            "--format",
            "json",
            "--clickhouse-url",
            chdb_store_url,
            "--http-port",
            str(_free_port()),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        '{"n":0,"at":"2026-11-22T09:30:05.123000+00:00","cost":"0.0000","s":null}',
        '{"n":1,"at":"2026-11-22T09:30:05.123000+00:00","cost":"0.2500","s":"x"}',
    ]
