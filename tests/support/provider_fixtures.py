"""The project's provider fixtures (tests/fixtures/providers/<provider>/*.json) and their
hand-computed rows.

A fixture holds the requests a provider makes for one call (`deliveries`, with the gateway's
receipt time and the URL's query where they matter) and `expected`: per call id, the rows
worked out by hand from DESIGN.md and tests/support/fixtures/rates.yaml. Rows there leave
out what is derived from the ids alone (`id`, `project_id`, the parent's id, the call id
column) and NULL columns; this module fills those in, so a row compares whole.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from schemas.events import parse_timestamp
from schemas.rows import CallLogRow, CdrRow, IncomingCallLogItemRow, IncomingCallLogRow
from tests.support import builders as b
from tests.support.expected_rows import EVENT_TIME_AUDIT, WALL_CLOCK, comparable
from worker.core.correlation import build_call_rows, row_id
from worker.core.providers import portsip, twilio
from worker.core.providers.base import Normalized, ProviderContext

FIXTURES = Path(__file__).parents[1] / "fixtures" / "providers"
PROVIDERS = ("twilio", "portsip")
TWILIO_NUMBER = "+14155550100"
ALICE_PHONE, BOB_PHONE = "+14155550111", "+4915550222"

CONTEXTS = {
    "twilio": ProviderContext(project_id=b.PROJECT, policy_for_number={TWILIO_NUMBER: b.POLICY}),
    "portsip": ProviderContext(
        project_id=b.PROJECT,
        policy_for_number={TWILIO_NUMBER: b.POLICY},
        user_for_endpoint={"101": b.ALICE, "102": b.BOB},
        phone_for_endpoint={"101": ALICE_PHONE, "102": BOB_PHONE},
    ),
}

_ROW_TYPES: dict[str, Any] = {
    "incoming_call_log": IncomingCallLogRow,
    "incoming_call_log_item": IncomingCallLogItemRow,
    "call_log": CallLogRow,
    "cdr": CdrRow,
}
TABLES = tuple(_ROW_TYPES)
MONEY = frozenset(
    {
        "call_cost_in_usd_cents",
        "incoming_call_cost_in_usd_cents",
        "outgoing_call_cost_in_usd_cents",
        "cost",
    }
)
Tables = dict[str, list[dict[str, Any]]]


def names(provider: str) -> list[str]:
    return sorted(p.stem for p in (FIXTURES / provider).glob("*.json"))


def load(provider: str, name: str) -> dict[str, Any]:
    """A fixture; one that `extends` another follows on from that one's deliveries."""
    data: dict[str, Any] = orjson.loads((FIXTURES / provider / f"{name}.json").read_bytes())
    base = data.get("extends")
    if base:
        before = load(provider, Path(base).stem)
        data["deliveries"] = before["deliveries"] + data["deliveries"]
    return data


def normalize(provider: str, delivery: Mapping[str, Any]) -> Normalized:
    """One delivery through the route the gateway (or importer) would call."""
    ctx = CONTEXTS[provider]
    if "received_at" in delivery:
        ctx = dataclasses.replace(ctx, received_at=parse_timestamp(delivery["received_at"]))
    kind, body = delivery["kind"], delivery.get("body")
    if provider == "twilio" and kind == "form":
        form, query = delivery["form"], delivery.get("query", {})
        route = delivery["route"]
        if route == "voice":
            return twilio.voice_webhook(form, ctx)
        if route == "status":
            return twilio.status_callback(form, ctx, query)
        assert route == "dial-action", route
        return twilio.dial_action(form, ctx, query)
    if provider == "twilio" and kind == "call_resource":
        return twilio.call_resource(body, ctx)
    if provider == "portsip" and kind == "webhook":
        return portsip.webhook(body, ctx)
    assert (provider, kind) == ("portsip", "calllog"), (provider, kind)
    return portsip.call_log(body, ctx)


def normalize_all(provider: str, deliveries: Iterable[Mapping[str, Any]]) -> Normalized:
    out = Normalized()
    for delivery in deliveries:
        out = out + normalize(provider, delivery)
    return out


def rows_of(events: Iterable[dict[str, Any]]) -> Tables:
    """The rows the pure core builds from the events, per call, audit columns dropped."""
    by_call: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        by_call[event["call_id"]].append(event)
    out: Tables = {table: [] for table in TABLES}
    for call_events in by_call.values():
        rows = build_call_rows([b.valid(e) for e in call_events], b.test_rates())
        for table, table_rows in rows.tables().items():
            out[table].extend(comparable(row) for row in table_rows)
    return {table: sorted(rows, key=lambda r: str(r["id"])) for table, rows in out.items()}


def expected_rows(fixture: Mapping[str, Any]) -> Tables:
    out: Tables = {table: [] for table in TABLES}
    for call_id, tables in fixture["expected"].items():
        for table, given in tables.items():
            for row in given if isinstance(given, list) else [given]:
                out[table].append(_whole_row(table, call_id, row))
    return {table: sorted(rows, key=lambda r: str(r["id"])) for table, rows in out.items()}


def _whole_row(table: str, call_id: str, given: Mapping[str, Any]) -> dict[str, Any]:
    project = b.PROJECT
    parent_id = row_id("incoming_call_log", project, call_id)
    derived: dict[str, Any] = {"project_id": project}
    if table == "incoming_call_log":
        derived |= {"id": parent_id, "call_provider_call_id": call_id}
    elif table == "incoming_call_log_item":
        derived |= {
            "id": row_id(table, project, call_id, given["dial_id"]),
            "incoming_call_log_id": parent_id,
            "is_deleted": 0,
        }
    elif table == "call_log":
        derived |= {"id": row_id(table, project, call_id), "call_provider_call_id": call_id}
    else:
        derived |= {"id": row_id(table, project, given["cdr_id"]), "session_id": call_id}
    columns = [
        c for c in _ROW_TYPES[table].__annotations__ if c not in WALL_CLOCK + EVENT_TIME_AUDIT
    ]
    row: dict[str, Any] = dict.fromkeys(columns)
    row |= derived
    for key, value in given.items():
        if key.startswith("_"):
            continue  # the arithmetic, for the reader
        if value is not None and key.endswith("_at"):
            value = parse_timestamp(value)
        elif value is not None and key in MONEY:
            value = Decimal(value)
        row[key] = value
    return row
