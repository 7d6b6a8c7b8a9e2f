"""Schema 1 -> 2 in place: `incoming_call_log_item` gains `is_deleted` and its engine becomes
ReplacingMergeTree(version, is_deleted) (DESIGN.md section 3, "Amendments").

A table engine cannot be altered, so the item table is rebuilt beside the live one and
swapped in:

1. CREATE the schema-2 table under TEMP_ITEM_TABLE;
2. copy every stored row into it (every part, not FINAL: each row and version carries over
   as it is, with is_deleted = 0), without insert deduplication (two equal blocks are two
   rows here) nor optimize_on_insert (which would merge the versions of a row that meet in
   one block), and check that the counts agree;
3. EXCHANGE TABLES live AND temp: one atomic swap of the names in an Atomic database (the
   default engine of ClickHouse and of chDB), so a reader sees the old table or the new one;
4. DROP the temp name, which now holds the schema-1 table;
5. CREATE OR REPLACE the `_latest` view: a view fixes its column list when it is created, so
   the schema-1 view would neither show `is_deleted` nor read the new table at all.

Each state between the steps can be told from the store, so a crash anywhere is resumed by
running the same function again: a live table with the schema-1 columns plus a temp table
is an unfinished copy (dropped and redone: a partial copy is never swapped in); a live table
with the schema-2 columns plus a temp table was swapped but not dropped (dropped); a stale
view is replaced. A store already at schema 2 is left alone (nothing runs).

The caller records version 2 in schema_migrations afterwards (`migrations.record_version`),
and refuses to start while a worker may still write (`ringlog migrate`): rows written to the
schema-1 table during the copy would be lost in the swap.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any, Final

from schemas.ddl import (
    LATEST_VIEW_SUFFIX,
    create_latest_view_sql,
    create_table_sql,
    qualified,
    quote_identifier,
)
from schemas.tables import INCOMING_CALL_LOG_ITEM, STATUS, Table
from worker.pipeline.ports import StoreError

log = logging.getLogger("ringlog.upgrade")

__all__ = [
    "ITEM_COLUMNS_V1",
    "TEMP_ITEM_TABLE",
    "UpgradeState",
    "copy_to_temp",
    "drop_temp",
    "swap_temp_in",
    "upgrade_state",
    "upgrade_to_2",
]

TEMP_ITEM_TABLE: Final = f"{INCOMING_CALL_LOG_ITEM.name}__upgrade_v2"
"""The schema-2 item table while it is filled; after the swap, the schema-1 table."""

ITEM_COLUMNS_V1: Final[tuple[tuple[str, str], ...]] = tuple(
    # Frozen: schema 1's item columns (no is_deleted, a status that is never NULL).
    (name, STATUS if name == "status" else ch_type)
    for name, ch_type in INCOMING_CALL_LOG_ITEM.columns
    if name != "is_deleted"
)
_ADDED: Final = {"is_deleted": "0"}  # what the copy writes into schema 2's new columns


@dataclass(frozen=True)
class UpgradeState:
    """What is left to do on one store (all False: at schema 2, nothing to do)."""

    copy_and_swap: bool  # the live item table still has the schema-1 columns
    drop_temp: bool  # a temp table is left over (an unfinished copy, or the swapped-out table)
    replace_view: bool  # the `_latest` view does not show the schema-2 columns

    @property
    def pending(self) -> bool:
        return self.copy_and_swap or self.drop_temp or self.replace_view

    def describe(self) -> str:
        steps = [
            (
                "copy incoming_call_log_item into the schema-2 layout and swap it in",
                self.copy_and_swap,
            ),
            (f"drop the leftover {TEMP_ITEM_TABLE}", self.drop_temp),
            ("replace the incoming_call_log_item_latest view", self.replace_view),
        ]
        return "; ".join(text for text, due in steps if due)


def _normalise(ch_type: str) -> str:
    return re.sub(r"\s+", "", ch_type)


def _columns(client: Any, database: str, table: str) -> list[tuple[str, str]]:
    rows = client.query(
        "SELECT name, type FROM system.columns WHERE database = %(db)s AND table = %(t)s "
        "ORDER BY position",
        parameters={"db": database, "t": table},
    ).result_rows
    return [(str(name), _normalise(str(ch_type))) for name, ch_type in rows]


def _layout(columns: list[tuple[str, str]]) -> int | None:
    """1 or 2 when `columns` are schema 1's or 2's item columns, else None."""
    for version, expected in ((1, ITEM_COLUMNS_V1), (2, INCOMING_CALL_LOG_ITEM.columns)):
        if columns == [(name, _normalise(t)) for name, t in expected]:
            return version
    return None


def upgrade_state(client: Any, database: str) -> UpgradeState:
    """What `upgrade_to_2` would do on `database` (whose tables exist)."""
    item = INCOMING_CALL_LOG_ITEM.name
    live = _columns(client, database, item)
    layout = _layout(live)
    if layout is None:
        # Neither layout: not a table to upgrade; the drift check reports it.
        return UpgradeState(copy_and_swap=False, drop_temp=False, replace_view=False)
    temp = bool(_columns(client, database, TEMP_ITEM_TABLE))
    view = [name for name, _ in _columns(client, database, item + LATEST_VIEW_SUFFIX)]
    return UpgradeState(
        copy_and_swap=layout == 1,
        drop_temp=temp,
        replace_view=view != list(INCOMING_CALL_LOG_ITEM.column_names),
    )


def upgrade_to_2(client: Any, database: str) -> UpgradeState:
    """Bring the item table of `database` to schema 2 from any state this module leaves
    (see the module doc). Returns what was pending before it ran."""
    state = upgrade_state(client, database)
    if state.copy_and_swap:
        if state.drop_temp:
            log.warning("dropping %s: an unfinished copy of an earlier run", TEMP_ITEM_TABLE)
        drop_temp(client, database)
        copy_to_temp(client, database)
        swap_temp_in(client, database)
    if state.copy_and_swap or state.drop_temp:
        drop_temp(client, database)  # after the swap it holds the schema-1 table
    if state.pending:
        _replace_view(client, database, INCOMING_CALL_LOG_ITEM)
    return state


# The steps, public so that tests can stop between them as a crash would.


def drop_temp(client: Any, database: str) -> None:
    client.command(f"DROP TABLE IF EXISTS {qualified(database, TEMP_ITEM_TABLE)} SYNC")


def copy_to_temp(client: Any, database: str) -> None:
    live = qualified(database, INCOMING_CALL_LOG_ITEM.name)
    temp = qualified(database, TEMP_ITEM_TABLE)
    client.command(create_table_sql(database, INCOMING_CALL_LOG_ITEM, name=TEMP_ITEM_TABLE))
    names = INCOMING_CALL_LOG_ITEM.column_names
    targets = ", ".join(quote_identifier(n) for n in names)
    sources = ", ".join(_ADDED.get(n, quote_identifier(n)) for n in names)
    log.info("copying %s into %s", live, temp)
    client.command(
        f"INSERT INTO {temp} ({targets}) SELECT {sources} FROM {live}",
        # optimize_on_insert would collapse the versions of a row that meet in one block.
        settings={"insert_deduplicate": 0, "optimize_on_insert": 0, "async_insert": 0},
    )
    before = client.query(f"SELECT count() FROM {live}").result_rows[0][0]
    after = client.query(f"SELECT count() FROM {temp}").result_rows[0][0]
    if before != after:
        raise StoreError(
            f"the copy of {live} holds {after} rows, the table {before}: not swapping "
            "(was a worker writing? stop it and run `ringlog migrate` again)"
        )


def swap_temp_in(client: Any, database: str) -> None:
    live = qualified(database, INCOMING_CALL_LOG_ITEM.name)
    temp = qualified(database, TEMP_ITEM_TABLE)
    try:
        client.command(f"EXCHANGE TABLES {live} AND {temp}")
    except Exception as exc:
        raise StoreError(
            f"EXCHANGE TABLES {live} AND {temp} failed ({exc}); it needs an Atomic database "
            "(the default engine). Nothing was swapped: the next `ringlog migrate` starts over"
        ) from exc


def _replace_view(client: Any, database: str, table: Table) -> None:
    client.command(create_latest_view_sql(database, table, replace=True))
