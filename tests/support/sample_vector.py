"""Helpers to compare rows with the shared end-to-end vector (../shared/examples), if present."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

EXAMPLES_DIR = Path(__file__).resolve().parents[3] / "shared" / "examples"
SAMPLE_DIR = EXAMPLES_DIR / "sample-40-calls"
AMENDMENTS_DIR = EXAMPLES_DIR / "sample-60-calls-amendments"

NATURAL_KEYS = {
    "incoming_call_log": ("project_id", "call_provider_call_id"),
    "incoming_call_log_item": ("project_id", "incoming_call_log_id", "dial_id"),
    "call_log": ("project_id", "call_provider_call_id"),
    "cdr": ("project_id", "cdr_id"),
}


def normalise(column: str, value: Any) -> Any:
    """Compare money numerically, times as UTC milliseconds and call_data parsed."""
    if value is None:
        return None
    if column == "call_data":
        return json.loads(value) if isinstance(value, str) else value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return int(value.timestamp() * 1000)
    if isinstance(value, str) and (column.endswith("_at")):
        return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
    if column.endswith("_in_usd_cents") or column == "cost":
        return Decimal(str(value)).normalize()
    if column.endswith("id") and not isinstance(value, str):
        return str(value)
    return value


def load_expected(directory: Path = SAMPLE_DIR) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((directory / "expected.json").read_text())
    return data


def sample_messages(directory: Path = SAMPLE_DIR) -> list[tuple[bytes, bytes]]:
    lines = (directory / "events.jsonl").read_bytes().split(b"\n")
    keys = (directory / "keys.txt").read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines = lines[:-1]
    return list(zip(keys[: len(lines)], lines, strict=True))


def diff_tables(actual: dict[str, list[dict[str, Any]]], expected: dict[str, Any]) -> list[str]:
    """Row-by-row differences between actual rows and expected.json (ambiguous cells noted)."""
    ignored = set(expected["meta"]["ignored_columns"]) | set(expected["meta"]["id_columns"])
    problems: list[str] = []
    for table, rows in expected["tables"].items():
        want: dict[tuple[Any, ...], dict[str, Any]] = {}
        for entry in rows:
            k = entry["key"]
            nat = (k["project_id"], k.get("cdr_id") or k["call_id"], k.get("dial_id"))
            want[nat] = entry
        got: dict[tuple[Any, ...], dict[str, Any]] = {}
        for row in actual.get(table, []):
            if table == "cdr":
                nat = (str(row["project_id"]), row["cdr_id"], None)
            elif table == "incoming_call_log_item":
                nat = (str(row["project_id"]), row["_call_id"], row["dial_id"])
            else:
                nat = (str(row["project_id"]), row["call_provider_call_id"], None)
            got[nat] = row
        for nat in sorted(set(want) - set(got), key=str):
            problems.append(f"{table} {nat}: missing")
        for nat in sorted(set(got) - set(want), key=str):
            problems.append(f"{table} {nat}: unexpected")
        for nat in sorted(set(want) & set(got), key=str):
            exp_row, ambiguous = want[nat]["row"], set(want[nat]["ambiguous"])
            for column, exp_value in exp_row.items():
                if column in ignored:
                    continue
                a = normalise(column, got[nat].get(column))
                e = normalise(column, exp_value)
                if a != e:
                    tag = " (ambiguous)" if column in ambiguous else ""
                    problems.append(f"{table} {nat} {column}: got {a!r} want {e!r}{tag}")
    return problems
