"""JSON Schema of the producer contract, exported for producers in other languages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from schemas.events import Event

SCHEMA_FILE = "events.schema.json"


def events_json_schema() -> dict[str, Any]:
    schema = TypeAdapter(Event).json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "ringlog call event (schema_version 1)"
    schema["description"] = (
        "One Kafka message value on the telephony.call-events topic; the message key must be "
        "the event's call_id. Unknown extra fields are ignored; a JSON null counts as absent."
    )
    return schema


def write_json_schema(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / SCHEMA_FILE
    path.write_text(json.dumps(events_json_schema(), indent=2, sort_keys=True) + "\n")
    return path
