"""ClickHouse cluster DDL (`ringlog migrate --cluster NAME`): replicated local tables and
Distributed tables in front, under the single-node names, so the worker and every reader use
the same table names in both modes.

- `<table>_local`: `ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}',
  '{replica}', version[, is_deleted])` with the single-node columns and ORDER BY, created
  `ON CLUSTER` (the `{shard}`/`{replica}` macros come from each server's config).
- `<table>`: `Distributed(cluster, database, <table>_local, <sharding key>)`.

`FINAL` on a Distributed table runs on each shard separately, so every version of a row must
live on one shard: the sharding key is a hash of columns that never change for a row and that
every version carries. For the incoming call and its items that is the call's id
(`incoming_call_log.id` = `incoming_call_log_item.incoming_call_log_id`, derived from
`project_id` and the provider's call id), so a call and all its items land on one shard and
join locally. Inserts wait for the shards (`distributed_foreground_insert = 1`, set by the
store) before the worker commits the offsets they cover.
"""

from __future__ import annotations

from typing import Final

from schemas.ddl import (
    LATEST_VIEW_SUFFIX,
    MIGRATIONS_TABLE,
    check_database_name,
    engine_sql,
    qualified,
    quote_identifier,
)
from schemas.tables import ALL_TABLES, Table

LOCAL_SUFFIX: Final = "_local"
REPLICA_PATH: Final = "/clickhouse/tables/{shard}/{database}/{table}"

# The columns hashed (cityHash64) to choose a row's shard: never changed after a row is
# first written, and the same for every version of the row (and for all rows of one call).
SHARD_KEYS: Final[dict[str, tuple[str, ...]]] = {
    "incoming_call_log": ("project_id", "id"),
    "incoming_call_log_item": ("project_id", "incoming_call_log_id"),
    "call_log": ("project_id", "id"),
    "cdr": ("project_id", "id"),
    "call_event": ("project_id", "call_id"),
    "rejected_event": ("topic", "partition", "offset"),
    "api_key": ("id",),
}


def sharding_key(table: Table) -> str:
    columns = SHARD_KEYS[table.name]
    return f"cityHash64({', '.join(quote_identifier(c) for c in columns)})"


def replicated_engine_sql(table: Table) -> str:
    replacing = engine_sql(table)  # ReplacingMergeTree(`version`[, `is_deleted`])
    params = replacing[len("ReplacingMergeTree(") : -1]
    return f"ReplicatedReplacingMergeTree('{REPLICA_PATH}', '{{replica}}', {params})"


def _on(cluster: str) -> str:
    return f"ON CLUSTER {quote_identifier(cluster)}"


def cluster_ddl_statements(database: str, cluster: str) -> list[str]:
    """All statements, in order: database, local tables, Distributed tables, views,
    schema_migrations. Idempotent (`IF NOT EXISTS`)."""
    check_database_name(database)
    quote_identifier(cluster)
    on = _on(cluster)
    statements = [f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)} {on}"]
    for table in ALL_TABLES:
        local = table.name + LOCAL_SUFFIX
        columns = ",\n".join(f"    {quote_identifier(n)} {t}" for n, t in table.columns)
        order_by = ", ".join(quote_identifier(n) for n in table.order_by)
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {qualified(database, local)} {on}\n"
            f"(\n{columns}\n)\n"
            f"ENGINE = {replicated_engine_sql(table)}\n"
            f"ORDER BY ({order_by})"
        )
    for table in ALL_TABLES:
        local = table.name + LOCAL_SUFFIX
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {qualified(database, table.name)} {on} "
            f"AS {qualified(database, local)}\n"
            f"ENGINE = Distributed({quote_identifier(cluster)}, {quote_identifier(database)}, "
            f"{quote_identifier(local)}, {sharding_key(table)})"
        )
    for table in ALL_TABLES:
        view = qualified(database, table.name + LATEST_VIEW_SUFFIX)
        statements.append(
            f"CREATE VIEW IF NOT EXISTS {view} {on} AS\n"
            f"SELECT * FROM {qualified(database, table.name)} FINAL"
        )
    local_migrations = MIGRATIONS_TABLE + LOCAL_SUFFIX
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {qualified(database, local_migrations)} {on}\n"
        "(\n"
        "    `version` UInt32,\n"
        "    `applied_at` DateTime64(3, 'UTC'),\n"
        "    `description` String\n"
        ")\n"
        f"ENGINE = ReplicatedMergeTree('{REPLICA_PATH}', '{{replica}}')\n"
        "ORDER BY (`version`)"
    )
    statements.append(
        f"CREATE TABLE IF NOT EXISTS {qualified(database, MIGRATIONS_TABLE)} {on} "
        f"AS {qualified(database, local_migrations)}\n"
        f"ENGINE = Distributed({quote_identifier(cluster)}, {quote_identifier(database)}, "
        f"{quote_identifier(local_migrations)}, `version`)"
    )
    return statements
