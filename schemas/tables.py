"""The ClickHouse tables analysts query: column names, ClickHouse types and keys.

This is the single source of the row layout. The DDL (`schemas/clickhouse.sql`), the sink's
insert column lists and the docs are all generated from it, so a column is added here once.

Partition and ORDER BY keys use only columns that never change after a row is first written
(DESIGN.md section 3): ids and provider ids, never times that a late event could move.
"""

from __future__ import annotations

from dataclasses import dataclass

SCHEMA_VERSION = 2
"""1: the first layout. 2: `incoming_call_log_item` gains `is_deleted` (its engine becomes
ReplacingMergeTree(version, is_deleted)) and a Nullable `status` (an item created by an
amendment alone has none yet); `worker.adapters.clickhouse.upgrade` moves a store from 1."""

TIME = "DateTime64(3, 'UTC')"
NTIME = "Nullable(DateTime64(3, 'UTC'))"
MONEY = "Nullable(Decimal(18, 4))"
NSTR = "Nullable(String)"
NUUID = "Nullable(UUID)"
NUINT = "Nullable(UInt32)"
STATUS = "LowCardinality(String)"


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]
    order_by: tuple[str, ...]
    version_column: str = "version"
    # ReplacingMergeTree's second parameter: FINAL (and the `_latest` view) hide a row whose
    # newest version has it set to 1. Only item rows can be deleted (DESIGN.md, "Amendments").
    is_deleted_column: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def column_types(self) -> tuple[str, ...]:
        return tuple(ch_type for _, ch_type in self.columns)


OUTBOUND_RELATION_IDS: tuple[str, ...] = (
    "user_id",
    "team_id",
    "incident_id",
    "alert_id",
    "monitor_id",
    "scheduled_maintenance_id",
    "status_page_id",
    "status_page_announcement_id",
    "on_call_duty_policy_id",
    "on_call_duty_policy_escalation_rule_id",
    "on_call_duty_policy_schedule_id",
)

CDR_FIELDS: tuple[tuple[str, str], ...] = (
    ("cdr_id", "String"),
    ("caller", NSTR),
    ("caller_domain", NSTR),
    ("caller_display_name", NSTR),
    ("callee", NSTR),
    ("callee_domain", NSTR),
    ("callee_display_name", NSTR),
    ("started_at", NTIME),
    ("rang_at", NTIME),
    ("answered_at", NTIME),
    ("ended_at", NTIME),
    ("sip_call_id", NSTR),
    ("direction", "LowCardinality(Nullable(String))"),
    ("end_reason", NSTR),
    ("reroute_reason", NSTR),
    ("status_code", "Nullable(Int32)"),
    ("destination", NSTR),
    ("outbound_caller_id", NSTR),
    ("did_cid", NSTR),
    ("trunk", NSTR),
    ("duration", "Nullable(Int64)"),
    ("cost", MONEY),
    ("billed_account", NSTR),
    ("service_number", NSTR),
    ("user_data", NSTR),
)

# created_at / updated_at are event time (first and last event of the call), not insert
# time, so that replaying the same events rewrites byte-identical rows.
_AUDIT: tuple[tuple[str, str], ...] = (
    ("created_at", TIME),
    ("updated_at", TIME),
    ("ingested_at", TIME),
    ("version", "UInt64"),
)

INCOMING_CALL_LOG = Table(
    name="incoming_call_log",
    columns=(
        ("id", "UUID"),
        ("project_id", "UUID"),
        ("incoming_call_policy_id", NUUID),
        ("caller_phone_number", NSTR),
        ("routing_phone_number", NSTR),
        ("call_provider_call_id", "String"),
        ("status", STATUS),
        ("status_message", NSTR),
        ("call_duration_in_seconds", NUINT),
        ("call_cost_in_usd_cents", MONEY),
        ("incoming_call_cost_in_usd_cents", MONEY),
        ("outgoing_call_cost_in_usd_cents", MONEY),
        ("started_at", NTIME),
        ("answered_at", NTIME),
        ("ended_at", NTIME),
        ("answered_by_user_id", NUUID),
        ("current_escalation_rule_order", NUINT),
        ("repeat_count", NUINT),
        ("dial_attempts", "UInt32"),
        *_AUDIT,
    ),
    order_by=("project_id", "call_provider_call_id"),
)

INCOMING_CALL_LOG_ITEM = Table(
    name="incoming_call_log_item",
    columns=(
        ("id", "UUID"),
        ("project_id", "UUID"),
        ("incoming_call_log_id", "UUID"),
        ("dial_id", "String"),
        ("incoming_call_policy_escalation_rule_id", NUUID),
        ("user_id", NUUID),
        ("user_phone_number", NSTR),
        ("status", "LowCardinality(Nullable(String))"),
        ("status_message", NSTR),
        ("dial_duration_in_seconds", NUINT),
        ("talk_duration_in_seconds", NUINT),
        ("call_cost_in_usd_cents", MONEY),
        ("cost_source", "LowCardinality(Nullable(String))"),
        ("started_at", NTIME),
        ("answered_at", NTIME),
        ("ended_at", NTIME),
        ("is_answered", "Bool"),
        ("is_deleted", "UInt8"),
        *_AUDIT,
    ),
    order_by=("project_id", "incoming_call_log_id", "dial_id"),
    is_deleted_column="is_deleted",
)

CALL_LOG = Table(
    name="call_log",
    columns=(
        ("id", "UUID"),
        ("project_id", "UUID"),
        ("call_provider_call_id", "String"),
        ("to_number", NSTR),
        ("from_number", NSTR),
        ("call_data", NSTR),
        ("status", "LowCardinality(Nullable(String))"),
        ("status_message", NSTR),
        ("call_duration_in_seconds", NUINT),
        ("call_cost_in_usd_cents", MONEY),
        ("cost_source", "LowCardinality(Nullable(String))"),
        *((name, NUUID) for name in OUTBOUND_RELATION_IDS),
        ("started_at", NTIME),
        ("answered_at", NTIME),
        ("ended_at", NTIME),
        *_AUDIT,
    ),
    order_by=("project_id", "call_provider_call_id"),
)

CDR = Table(
    name="cdr",
    columns=(
        ("id", "UUID"),
        ("project_id", "UUID"),
        ("session_id", "String"),
        *CDR_FIELDS,
        ("cost_source", "LowCardinality(Nullable(String))"),
        ("ingested_at", TIME),
        ("version", "UInt64"),
    ),
    order_by=("project_id", "cdr_id"),
)

# version = a hash of the payload, so that two different payloads sharing an event_id
# collapse to the same survivor whatever order they were inserted in (the core picks the
# same one: see worker.core.correlation.event_set).
CALL_EVENT = Table(
    name="call_event",
    columns=(
        ("project_id", "UUID"),
        ("call_id", "String"),
        ("event_id", "String"),
        ("type", "LowCardinality(String)"),
        ("occurred_at", TIME),
        ("sequence", "Nullable(Int64)"),
        ("source", "LowCardinality(Nullable(String))"),
        ("payload", "String"),
        ("topic", "LowCardinality(String)"),
        ("partition", "Int32"),
        ("offset", "Int64"),
        ("ingested_at", TIME),
        ("version", "UInt64"),
    ),
    order_by=("project_id", "call_id", "event_id"),
)

REJECTED_EVENT = Table(
    name="rejected_event",
    columns=(
        ("topic", "LowCardinality(String)"),
        ("partition", "Int32"),
        ("offset", "Int64"),
        ("key", NSTR),
        ("error_code", "LowCardinality(String)"),
        ("error_message", "String"),
        ("error_field", NSTR),
        ("payload", "String"),
        ("rejected_at", TIME),
        ("version", "UInt64"),
    ),
    order_by=("topic", "partition", "offset"),
)

# The query APIs' keys (worker.api.keys): only a key's SHA-256 is kept. Revoking inserts
# version 2 of the row.
API_KEY = Table(
    name="api_key",
    columns=(
        ("id", "UUID"),
        ("project_id", "UUID"),
        ("name", "String"),
        ("role", "LowCardinality(Nullable(String))"),
        ("permissions", "Array(LowCardinality(String))"),
        ("key_hash", "String"),
        ("created_at", TIME),
        ("expires_at", NTIME),
        ("revoked_at", NTIME),
        ("version", "UInt64"),
    ),
    order_by=("id",),
)

ROW_TABLES: tuple[Table, ...] = (INCOMING_CALL_LOG, INCOMING_CALL_LOG_ITEM, CALL_LOG, CDR)
ALL_TABLES: tuple[Table, ...] = (*ROW_TABLES, CALL_EVENT, REJECTED_EVENT, API_KEY)
TABLES_BY_NAME: dict[str, Table] = {t.name: t for t in ALL_TABLES}
