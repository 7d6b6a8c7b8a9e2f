"""The committed schema files are what the code generates (producers and DBAs read them)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.ddl import render_sql
from schemas.events import EVENT_MODELS
from schemas.export import SCHEMA_FILE, events_json_schema
from schemas.row_types import ROWS_FILE, check_row_types, python_type, render

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"


def test_committed_json_schema_is_current() -> None:
    committed = json.loads((SCHEMAS / SCHEMA_FILE).read_text())
    assert committed == json.loads(json.dumps(events_json_schema(), sort_keys=True)), (
        "run `ringlog schema export` and commit schemas/events.schema.json"
    )


def test_json_schema_covers_every_event_type() -> None:
    schema = events_json_schema()
    types = {
        d["properties"]["type"]["const"]
        for d in schema["$defs"].values()
        if "type" in d.get("properties", {})
    }
    assert types == set(EVENT_MODELS)


def test_committed_ddl_is_current() -> None:
    assert (SCHEMAS / "clickhouse.sql").read_text() == render_sql("ringlog")


def test_committed_row_types_are_current() -> None:
    assert ROWS_FILE.read_text() == render(), (
        "run `python -m schemas.row_types` and commit schemas/rows.py"
    )
    check_row_types()


def test_row_types_follow_the_clickhouse_types() -> None:
    assert python_type("Nullable(UUID)") == "str | None"
    assert python_type("LowCardinality(Nullable(String))") == "str | None"
    assert python_type("DateTime64(3, 'UTC')") == "datetime"
    assert python_type("Nullable(Decimal(18, 4))") == "Decimal | None"
    assert python_type("UInt64") == "int"
    assert python_type("Bool") == "bool"
