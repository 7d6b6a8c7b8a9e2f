"""ClickHouse DDL generated from `schemas.tables` (the single source of the row layout).

`ddl_statements(database)` is what `ClickHouseStore.migrate()` runs; `schemas/clickhouse.sql`
is the same DDL for the default database, committed for reviewers and operators. Regenerate
it after changing `schemas/tables.py`:

    python -m schemas.ddl            # writes schemas/clickhouse.sql
    python -m schemas.ddl --check    # exits 1 when the committed file is stale

Every statement is idempotent (`IF NOT EXISTS`), so running the list twice, or from two
processes at once, is safe. There is no PARTITION BY: a partition key must never change for a
row, and no time column of these tables is immutable (a late event can move any of them).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from schemas.tables import ALL_TABLES, SCHEMA_VERSION, Table

MIGRATIONS_TABLE = "schema_migrations"
LATEST_VIEW_SUFFIX = "_latest"
DEDUPLICATION_WINDOW = 1000
SQL_PATH = Path(__file__).with_name("clickhouse.sql")

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def quote_identifier(name: str) -> str:
    """Backquote an identifier (`partition`, `offset` and `key` are column names here)."""
    if not _IDENTIFIER.match(name):
        raise ValueError(f"not a plain identifier: {name!r}")
    return f"`{name}`"


def check_database_name(database: str) -> str:
    """Return `database` if it is a plain identifier, else raise ValueError."""
    quote_identifier(database)
    return database


def qualified(database: str, table: str) -> str:
    return f"{quote_identifier(database)}.{quote_identifier(table)}"


def engine_sql(table: Table) -> str:
    """`ReplacingMergeTree(version)`, or `(version, is_deleted)` for a table whose rows can
    be deleted."""
    params = [table.version_column]
    if table.is_deleted_column is not None:
        params.append(table.is_deleted_column)
    return f"ReplacingMergeTree({', '.join(quote_identifier(p) for p in params)})"


def create_table_sql(database: str, table: Table, name: str | None = None) -> str:
    """The CREATE TABLE of `table`, under `name` when given (the upgrade builds a table
    under a temporary name before it swaps it in)."""
    columns = ",\n".join(
        f"    {quote_identifier(name)} {ch_type}" for name, ch_type in table.columns
    )
    order_by = ", ".join(quote_identifier(name) for name in table.order_by)
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, name or table.name)}\n"
        f"(\n{columns}\n)\n"
        f"ENGINE = {engine_sql(table)}\n"
        f"ORDER BY ({order_by})\n"
        f"SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}"
    )


def create_latest_view_sql(database: str, table: Table, *, replace: bool = False) -> str:
    """The `_latest` view (FINAL: the newest version of each row, deleted rows hidden);
    `replace` rewrites an existing one (a view fixes its column list when created)."""
    view = qualified(database, table.name + LATEST_VIEW_SUFFIX)
    create = "CREATE OR REPLACE VIEW" if replace else "CREATE VIEW IF NOT EXISTS"
    return f"{create} {view} AS\nSELECT * FROM {qualified(database, table.name)} FINAL"


def create_migrations_sql(database: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {qualified(database, MIGRATIONS_TABLE)}\n"
        "(\n"
        "    `version` UInt32,\n"
        "    `applied_at` DateTime64(3, 'UTC'),\n"
        "    `description` String\n"
        ")\n"
        "ENGINE = MergeTree\n"
        "ORDER BY (`version`)\n"
        # lets migrate() record a version with an insert_deduplication_token, so two
        # processes migrating at once record it once
        f"SETTINGS non_replicated_deduplication_window = {DEDUPLICATION_WINDOW}"
    )


def _validate(tables: tuple[Table, ...]) -> None:
    for table in tables:
        names = table.column_names
        if len(set(names)) != len(names):
            raise ValueError(f"{table.name}: duplicate column names")
        keys = (*table.order_by, table.version_column)
        if table.is_deleted_column is not None:
            keys += (table.is_deleted_column,)
        missing = [c for c in keys if c not in names]
        if missing:
            raise ValueError(f"{table.name}: key columns not in the table: {missing}")
        for name in table.order_by:
            if dict(table.columns)[name].startswith("Nullable("):
                raise ValueError(f"{table.name}: ORDER BY column {name} is Nullable")


def ddl_statements(database: str) -> list[str]:
    """All statements, in order: database, tables, `_latest` views, schema_migrations."""
    check_database_name(database)
    _validate(ALL_TABLES)
    statements = [f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}"]
    statements += [create_table_sql(database, table) for table in ALL_TABLES]
    statements += [create_latest_view_sql(database, table) for table in ALL_TABLES]
    statements.append(create_migrations_sql(database))
    return statements


def render_sql(database: str = "ringlog") -> str:
    header = (
        "-- Generated by `python -m schemas.ddl` from schemas/tables.py: do not edit by hand.\n"
        f"-- Schema version {SCHEMA_VERSION}. `ringlog` migrates this itself (idempotent).\n"
        "-- Analysts read the tables with FINAL, or through the *_latest views.\n"
    )
    return (
        header
        + "\n"
        + "".join(f"{stmt};\n\n" for stmt in ddl_statements(database)).rstrip("\n")
        + "\n"
    )


def write_sql(path: Path = SQL_PATH, database: str = "ringlog") -> Path:
    path.write_text(render_sql(database), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write schemas/clickhouse.sql from tables.py")
    parser.add_argument("--database", default="ringlog")
    parser.add_argument("--output", type=Path, default=SQL_PATH)
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    output: Path = args.output
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else ""
        if current != render_sql(args.database):
            print(f"{output} is stale: run python -m schemas.ddl", file=sys.stderr)
            return 1
        return 0
    write_sql(output, args.database)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
