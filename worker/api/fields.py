"""Which columns each API resource exposes, under which name, and what values they hold.

The allow-list every request is checked against: a field name from a request is only ever
looked up here, and only the column name found here reaches SQL. Built from
`schemas.tables`, so a new column appears in the API (camelCase) without a second list.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from schemas.tables import CALL_LOG, CDR, INCOMING_CALL_LOG, INCOMING_CALL_LOG_ITEM, Table

# Never exposed: they say how the row was written, not what it holds (DESIGN.md section 6).
HIDDEN_COLUMNS = frozenset({"version", "ingested_at"})


class Kind(StrEnum):
    UUID = "uuid"
    STRING = "string"
    JSON = "json"  # a JSON document kept as text (call_data): answered parsed
    INT = "int"
    DECIMAL = "decimal"
    DATETIME = "datetime"
    BOOL = "bool"

    @property
    def ordered(self) -> bool:
        """Whether GreaterThan, LessThan and InBetween apply."""
        return self in (Kind.INT, Kind.DECIMAL, Kind.DATETIME)

    @property
    def textual(self) -> bool:
        """Whether Search, StartsWith, EndsWith and NotContains apply."""
        return self in (Kind.UUID, Kind.STRING, Kind.JSON)


@dataclass(frozen=True)
class Field:
    name: str  # as the API spells it
    column: str  # as the table spells it
    kind: Kind
    ch_type: str  # the column's ClickHouse type without Nullable / LowCardinality
    nullable: bool


@dataclass(frozen=True)
class Resource:
    path: str  # under /api
    title: str  # as OneUptime names the model in its messages
    table: Table
    fields: dict[str, Field]
    writable: bool

    def field(self, name: str) -> Field | None:
        return self.fields.get(name)


def camel_case(column: str) -> str:
    """`call_cost_in_usd_cents` -> `callCostInUSDCents`, `id` -> `_id` (OneUptime's names)."""
    if column == "id":
        return "_id"
    head, *rest = column.split("_")
    return head + "".join("USD" if part == "usd" else part.capitalize() for part in rest)


def _bare_type(ch_type: str) -> tuple[str, bool]:
    nullable = False
    for wrapper in ("LowCardinality(", "Nullable("):
        if ch_type.startswith(wrapper):
            nullable = nullable or wrapper == "Nullable("
            ch_type = ch_type[len(wrapper) : -1]
    if ch_type.startswith("Nullable("):  # LowCardinality(Nullable(String))
        nullable, ch_type = True, ch_type[len("Nullable(") : -1]
    return ch_type, nullable


def _kind(column: str, bare: str) -> Kind:
    if column == "call_data":
        return Kind.JSON
    if column == "is_deleted":  # UInt8 because ReplacingMergeTree needs it; a flag to clients
        return Kind.BOOL
    if bare == "UUID":
        return Kind.UUID
    if bare.startswith("DateTime64"):
        return Kind.DATETIME
    if bare.startswith("Decimal"):
        return Kind.DECIMAL
    if bare.startswith(("UInt", "Int")):
        return Kind.INT
    if bare == "Bool":
        return Kind.BOOL
    return Kind.STRING


def fields_of(table: Table, naming: str = "camel") -> dict[str, Field]:
    out: dict[str, Field] = {}
    for column, ch_type in table.columns:
        if column in HIDDEN_COLUMNS:
            continue
        bare, nullable = _bare_type(ch_type)
        name = camel_case(column) if naming == "camel" else column
        out[name] = Field(name, column, _kind(column, bare), bare, nullable)
    return out


def _resource(path: str, title: str, table: Table, writable: bool) -> Resource:
    return Resource(path, title, table, fields_of(table), writable)


INCOMING_CALL_LOG_RESOURCE = _resource(
    "incoming-call-log", "Incoming Call Log", INCOMING_CALL_LOG, writable=False
)
INCOMING_CALL_LOG_ITEM_RESOURCE = _resource(
    "incoming-call-log-item", "Incoming Call Log Item", INCOMING_CALL_LOG_ITEM, writable=True
)
CALL_LOG_RESOURCE = _resource("call-log", "Call Log", CALL_LOG, writable=False)

ONEUPTIME_RESOURCES: tuple[Resource, ...] = (
    INCOMING_CALL_LOG_RESOURCE,
    INCOMING_CALL_LOG_ITEM_RESOURCE,
    CALL_LOG_RESOURCE,
)

# PortSIP's call log: the cdr table under PortSIP's own (snake_case) names. `call_id` is
# PortSIP's name for the SIP Call-ID (`sip_call_id`); `id` is the record's `cdr_id`.
CDR_FIELDS: dict[str, Field] = fields_of(CDR, naming="snake")

# PortSIP's `/calllogs` names (its summary representation), mapped to cdr columns; the detail
# adds `cost` and `billed_account`.
_PORTSIP_RENAMED = {"id": "cdr_id", "call_id": "sip_call_id"}
PORTSIP_SUMMARY: tuple[str, ...] = (
    "id",
    "session_id",
    "caller",
    "caller_domain",
    "caller_display_name",
    "callee",
    "callee_domain",
    "callee_display_name",
    "started_at",
    "rang_at",
    "answered_at",
    "ended_at",
    "call_id",
    "direction",
    "end_reason",
    "reroute_reason",
    "status_code",
    "destination",
    "outbound_caller_id",
    "did_cid",
    "trunk",
    "duration",
    "service_number",
    "user_data",
)
PORTSIP_DETAIL: tuple[str, ...] = (*PORTSIP_SUMMARY, "cost", "billed_account")


def _portsip_field(name: str) -> Field:
    column = CDR_FIELDS[_PORTSIP_RENAMED.get(name, name)]
    return Field(name, column.column, column.kind, column.ch_type, column.nullable)


PORTSIP_FIELDS: dict[str, Field] = {name: _portsip_field(name) for name in PORTSIP_DETAIL}
PORTSIP_SEARCHED: tuple[str, ...] = (
    "caller",
    "callee",
    "caller_display_name",
    "callee_display_name",
)
