"""The schema on a connected client: create the database, tables, `_latest` views and
schema_migrations from `schemas.ddl`, check that the live columns match schemas/tables.py
(schema drift is a StoreError), and record SCHEMA_VERSION once.

Safe to run twice or from two processes at once. The functions take the raw clickhouse-connect
(or chDB) client and let driver exceptions through: `ClickHouseStore.migrate()` calls them
under its lock and translates those into StoreUnavailable / StoreError.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Final

import orjson

from schemas.cluster_ddl import cluster_ddl_statements
from schemas.ddl import MIGRATIONS_TABLE, ddl_statements, qualified
from schemas.tables import ALL_TABLES, SCHEMA_VERSION
from worker.adapters.clickhouse.upgrade import upgrade_state, upgrade_to_2
from worker.adapters.clickhouse.values import JSON_INSERT_SETTINGS
from worker.pipeline.ports import StoreError

__all__ = ["check_columns", "create_schema", "migrate_database", "record_version"]

# Codes that concurrent `CREATE ... IF NOT EXISTS` from two processes can still raise.
_ALREADY_EXISTS_CODES: Final = frozenset({57, 82})  # TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS


def migrate_database(
    client: Any, database: str, *, upgrade: bool = False, cluster: str | None = None
) -> int:
    """Create what is missing (`ON CLUSTER` replicated tables behind Distributed ones when
    `cluster` names one: schemas.cluster_ddl), make `database` the client's default, bring a
    schema-1 store to schema 2 when `upgrade` (else refuse it: the worker never upgrades
    under other workers), check the columns and record the version. Returns SCHEMA_VERSION."""
    create_schema(client, database, cluster)
    client.database = database
    if upgrade:
        upgrade_to_2(client, database)
    else:
        state = upgrade_state(client, database)
        if state.pending:
            raise StoreError(
                f"the store {database} needs an upgrade to schema {SCHEMA_VERSION} "
                f"({state.describe()}): stop every worker and run `ringlog migrate`"
            )
    check_columns(client, database)
    record_version(client, database)
    return SCHEMA_VERSION


def create_schema(client: Any, database: str, cluster: str | None = None) -> None:
    """Run every `CREATE ... IF NOT EXISTS` of `schemas.ddl` (or `schemas.cluster_ddl`) for
    `database`."""
    statements = (
        ddl_statements(database) if cluster is None else cluster_ddl_statements(database, cluster)
    )
    for statement in statements:
        try:
            client.command(statement)
        except Exception as exc:
            if getattr(exc, "code", None) in _ALREADY_EXISTS_CODES:
                continue  # lost a CREATE race to another process: fine
            raise


def record_version(client: Any, database: str) -> None:
    """Record SCHEMA_VERSION in schema_migrations unless it is there already."""
    migrations = qualified(database, MIGRATIONS_TABLE)
    recorded = client.query(
        f"SELECT count() FROM {migrations} WHERE version = %(v)s",
        parameters={"v": SCHEMA_VERSION},
    ).result_rows[0][0]
    if not recorded:
        # The token makes a concurrent second recording a no-op (the table has a
        # non_replicated_deduplication_window, like the data tables).
        # A raw JSONEachRow insert, as the store's own: clickhouse-connect's `insert` of
        # Python rows imports pandas (when installed) to check for a DataFrame, which cost
        # the worker's start 0.4-0.6 s and tens of MiB.
        row = {
            "version": SCHEMA_VERSION,
            "applied_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
            "description": f"ringlog schema {SCHEMA_VERSION}",
        }
        client.raw_insert(
            migrations,
            list(row),
            insert_block=orjson.dumps(row),
            settings={
                **JSON_INSERT_SETTINGS,
                "insert_deduplication_token": f"schema-{SCHEMA_VERSION}",
            },
            fmt="JSONEachRow",
        )


def _normalize_type(ch_type: str) -> str:
    return re.sub(r"\s+", "", ch_type)


def check_columns(client: Any, database: str) -> None:
    """StoreError unless every table's live columns (names, types, order) are those of
    schemas/tables.py."""
    names = [t.name for t in ALL_TABLES]
    rows = client.query(
        "SELECT table, name, type FROM system.columns "
        "WHERE database = %(db)s AND table IN %(tables)s ORDER BY table, position",
        parameters={"db": database, "tables": names},
    ).result_rows
    live: dict[str, list[tuple[str, str]]] = {}
    for table, name, ch_type in rows:
        live.setdefault(table, []).append((name, _normalize_type(ch_type)))
    for table in ALL_TABLES:
        expected = [(n, _normalize_type(t)) for n, t in table.columns]
        if live.get(table.name) != expected:
            raise StoreError(
                f"schema drift in {database}.{table.name}: the live columns differ "
                f"from schemas/tables.py (version {SCHEMA_VERSION}); "
                f"live={live.get(table.name)} expected={expected}"
            )
