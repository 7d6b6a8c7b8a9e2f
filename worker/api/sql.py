"""SQL for the query APIs: identifiers only from the field allow-list, values only as bound
parameters (ClickHouse's server-side `{name:Type}` placeholders).

A request can choose which allow-listed columns appear and which placeholders are used, never
any text of the statement: `Params.bind` is the one way a request's value enters a query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from schemas.ddl import qualified, quote_identifier
from schemas.tables import Table
from worker.api.fields import Field, Kind


@dataclass
class Params:
    """Bound values of one statement, named p0, p1, ... in the order they are bound."""

    values: dict[str, object] = field(default_factory=dict)

    def bind(self, value: object, ch_type: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{ch_type}}}"


def column(f: Field) -> str:
    return quote_identifier(f.column)


@dataclass(frozen=True)
class Order:
    field: Field
    descending: bool

    def sql(self) -> str:
        # NULLs last in both directions (DESIGN.md section 6); strings compare as bytes, and
        # so do UUIDs, by their text (ClickHouse orders the UUID type by its halves).
        key = column(self.field)
        if self.field.kind is Kind.UUID:
            key = f"toString({key})"
        return f"{key} {'DESC' if self.descending else 'ASC'} NULLS LAST"


@dataclass(frozen=True)
class Statement:
    sql: str
    params: dict[str, object]


def scoped_where(
    project_column: str, project_id: str, conditions: Sequence[str], params: Params
) -> str:
    """WHERE: the key's project first, always; then the request's conditions, ANDed."""
    scope = f"{quote_identifier(project_column)} = {params.bind(project_id, 'UUID')}"
    return " AND ".join([scope, *(f"({c})" for c in conditions)])


def select_rows(
    database: str,
    table: Table,
    columns: Sequence[Field],
    where: str,
    order: Sequence[Order],
    skip: int,
    limit: int,
    params: Params,
) -> Statement:
    listed = ", ".join(column(f) for f in columns)
    order_sql = ", ".join(o.sql() for o in order)
    sql = (
        f"SELECT {listed} FROM {qualified(database, table.name)} FINAL WHERE {where}"
        + (f" ORDER BY {order_sql}" if order_sql else "")
        + f" LIMIT {params.bind(limit, 'UInt64')} OFFSET {params.bind(skip, 'UInt64')}"
    )
    return Statement(sql, dict(params.values))


def count_rows(database: str, table: Table, where: str, params: Params) -> Statement:
    sql = f"SELECT count() FROM {qualified(database, table.name)} FINAL WHERE {where}"
    return Statement(sql, dict(params.values))
