"""`ringlog sql`: read-only queries over the configured store."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.table import Table

from worker.cli.options import ClickhouseUrl, Database, HttpPort, console, out, settings_from
from worker.service.json_values import dumps


class OutputFormat(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def sql(
    query: Annotated[
        str,
        typer.Argument(
            help='A read-only statement, e.g. "SELECT status, '
            'count() FROM incoming_call_log FINAL GROUP BY status"'
        ),
    ],
    fmt: Annotated[
        OutputFormat,
        typer.Option("--format", "-f", help="table, json (JSON Lines: one object per row) or csv"),
    ] = OutputFormat.TABLE,
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    http_port: HttpPort = None,
) -> None:
    """Print query results from the configured store.

    In embedded mode (chdb://) a running worker owns the store, so the query goes through its
    HTTP port; with no worker running the store is opened directly. Tables resolve in the
    configured database (unqualified names work).
    """
    from worker.cli.sql_client import QueryFailed, run_query

    settings = settings_from(clickhouse_url=clickhouse_url, database=database, http_port=http_port)
    try:
        columns, rows = run_query(settings, query)
    except QueryFailed as exc:
        console.print(f"[bold red]query failed:[/] {exc}")
        raise typer.Exit(1) from None
    print_rows(columns, rows, fmt.value)


def json_line(columns: list[str], row: Any) -> str:
    """One row as one compact JSON object (a JSON Lines line, without the newline)."""
    return dumps(dict(zip(columns, row, strict=False))).decode()


def print_rows(columns: list[str], rows: list[Any], fmt: str) -> None:
    if fmt == "json":
        # JSON Lines on plain stdout: no rich markup, highlighting or line wrapping.
        sys.stdout.writelines(json_line(columns, row) + "\n" for row in rows)
        sys.stdout.flush()
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns, show_lines=False)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        out.print(table)
        out.print(f"{len(rows)} row(s)")
