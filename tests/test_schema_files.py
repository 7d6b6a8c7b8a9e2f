"""The committed schema files are what the code generates (producers and DBAs read them)."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.ddl import render_sql
from schemas.events import EVENT_MODELS
from schemas.export import SCHEMA_FILE, events_json_schema

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"


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
