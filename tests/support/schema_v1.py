"""A schema-1 store, as the code before schema 2 created and wrote it: the "from" side of
the upgrade tests.

The DDL is a frozen copy of that code's `schemas/clickhouse.sql` (fixtures/clickhouse_v1.sql),
never generated from today's tables. Rows go through the store's insert path with the
columns the schema-1 tables have (read from the store itself), so they are what a schema-1
worker wrote.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from pathlib import Path

from schemas.tables import Table
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.adapters.clickhouse.values import insert_plan

V1_SQL = Path(__file__).parent / "fixtures" / "clickhouse_v1.sql"


def v1_statements(database: str) -> list[str]:
    text = V1_SQL.read_text(encoding="utf-8").replace("`ringlog`", f"`{database}`")
    statements = []
    for chunk in text.split(";\n"):
        body = "\n".join(line for line in chunk.splitlines() if not line.startswith("--"))
        if body.strip():
            statements.append(body.strip())
    return statements


def create_v1_store(store: ClickHouseStore) -> None:
    """Create the schema-1 database and record version 1, as its `ringlog migrate` did."""
    for statement in v1_statements(store.database):
        store.command(statement)
    store.command(
        f"INSERT INTO `{store.database}`.schema_migrations (version, applied_at, description) "
        "VALUES (1, %(at)s, 'ringlog schema 1')",
        {"at": dt.datetime(2024, 5, 1, tzinfo=dt.UTC)},
    )


def live_table(store: ClickHouseStore, name: str, order_by: tuple[str, ...]) -> Table:
    """`name` as the store holds it: its live columns, in order."""
    _, rows = store.query(
        "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s "
        "ORDER BY position",
        {"db": store.database, "t": name},
    )
    return Table(name, tuple((str(n), str(t)) for n, t in rows), order_by)


def insert_v1(store: ClickHouseStore, table: Table, rows: Sequence[Mapping[str, object]]) -> None:
    """Insert through the store's own insert code, planned for the schema-1 columns."""
    current = store._plans[table.name]  # swapped for the schema-1 plan, for this insert only
    store._plans[table.name] = insert_plan(table)
    try:
        names = set(table.column_names)
        store.insert(table.name, [{k: v for k, v in r.items() if k in names} for r in rows])
    finally:
        store._plans[table.name] = current
