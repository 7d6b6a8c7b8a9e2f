"""`ringlog schema export`: the events' JSON Schema for producers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from worker.cli.options import out


def schema_export(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write into")] = Path(
        "schemas"
    ),
) -> None:
    """Write the JSON Schema of the events (events.schema.json) for producers."""
    from schemas.export import write_json_schema

    path = write_json_schema(out_dir)
    out.print(f"wrote {path}")
