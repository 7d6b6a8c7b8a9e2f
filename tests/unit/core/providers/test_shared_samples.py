"""Cross-check against the payloads the providers publish (../shared/provider-samples, see
its SOURCES.md): every file normalizes without an exception, to the outcome listed here.
Skipped when that folder is absent (it is reference data, not part of the project)."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from tests.support import builders as b
from tests.support import provider_fixtures as pf
from worker.core.providers import portsip, twilio
from worker.core.providers.base import (
    INVALID_FIELD,
    NOT_PROVIDER_FORMAT,
    UNKNOWN_EVENT,
    Normalized,
)

SAMPLES = Path(
    os.environ.get(
        "RINGLOG_PROVIDER_SAMPLES",
        Path(__file__).resolve().parents[4].parent / "shared" / "provider-samples",
    )
)
pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is absent")
# The voice webhook and the <Dial action> carry no time: the gateway's receipt time.
SAMPLE_NUMBER = "+14158675309"
RECEIVED = datetime(2026, 1, 6, 10, 0, 0, 250000, tzinfo=UTC)

# file -> (event types and their counts, unmapped codes)
TWILIO: dict[str, tuple[dict[str, int], list[str]]] = {
    "T01-zammad-605-child-leg-initiated.form": ({"incoming_call.dial_started": 1}, []),
    # The publisher replaced the CallSid with "redacted".
    "T02-somleng-switch-7-outbound-api-no-answer.form": ({}, [INVALID_FIELD]),
    "T03-speakez-outbound-api-completed-machine.form": (
        {"outbound_call.placed": 1, "outbound_call.ended": 1},
        [],
    ),
    "T04-twilio-python-2017-call-fetch-inbound-price.json": ({"call.cost_reported": 1}, []),
    "T05-twilio-python-2023-call-fetch-outbound-price.json": ({"call.cost_reported": 1}, []),
    "T06-twilio-python-2017-calls-list-failed-price-null.json": ({}, []),
    "TW1-01-voice-webhook-incoming.form": ({"incoming_call.received": 1}, []),
    "TW1-12-call-resource-parent-late-price.json": ({"call.cost_reported": 1}, []),
    "TW1-13-call-resource-child2-late-price.json": ({"call.cost_reported": 1}, []),
    "TW1-14-call-resource-child1-price-null.json": ({}, []),
    "TW2-10-call-resource-parent-late-price.json": ({"call.cost_reported": 1}, []),
}
PORTSIP: dict[str, tuple[dict[str, int], list[str]]] = {
    # 3 targets: 3 CDRs; caller "1888722" and did "18800606" are not E.164: no incoming call.
    "P01-call_cdr-event-reference-2024-09.json": ({"cdr.recorded": 3}, [INVALID_FIELD]),
    "P02-call_cdr-event-reference-2026-07.json": ({"cdr.recorded": 3}, [INVALID_FIELD]),
    "P03-call_cdr-admin-guide-AS-PUBLISHED-invalid.json": ({}, [NOT_PROVIDER_FORMAT]),
    "P03r-call_cdr-admin-guide-comma-repaired.json": ({"cdr.recorded": 4}, [INVALID_FIELD]),
    "P04-call_start-admin-guide.json": ({}, [UNKNOWN_EVENT]),
    # /api/cdrs records carry no session_id: no call to put them in.
    "P05-api-cdrs-list-response.json": ({}, ["missing_field", "missing_field"]),
}


def twilio_file(path: Path) -> Normalized:
    # The samples' Twilio number (from Twilio's own fixture T04) routes to the test policy.
    ctx = dataclasses.replace(
        pf.CONTEXTS["twilio"], received_at=RECEIVED, policy_for_number={SAMPLE_NUMBER: b.POLICY}
    )
    if path.suffix == ".form":
        return twilio.form_body(path.read_bytes(), ctx)
    data = orjson.loads(path.read_bytes())
    return twilio.calls_page(data, ctx) if "calls" in data else twilio.call_resource(data, ctx)


def portsip_file(path: Path) -> Normalized:
    body = path.read_bytes()
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict) and "items" in data:
        return portsip.call_logs_page(data, pf.CONTEXTS["portsip"])
    return portsip.webhook_body(body, pf.CONTEXTS["portsip"])


def wire_files(provider: str) -> list[Path]:
    """The payloads in their wire encoding (raw/ holds the published notation)."""
    folder = SAMPLES / provider
    return sorted(
        p for p in folder.rglob("*") if p.suffix in (".form", ".json") and "raw" not in p.parts
    )


@pytest.mark.parametrize("provider", ["twilio", "portsip"])
def test_every_sample_normalizes_to_its_expected_outcome(provider: str) -> None:
    files = wire_files(provider)
    assert files
    expected = TWILIO if provider == "twilio" else PORTSIP
    normalize = twilio_file if provider == "twilio" else portsip_file
    for path in files:
        result = normalize(path)
        for event in result.events:
            assert event["source"] == provider
        if path.name in expected:
            types, codes = expected[path.name]
            assert dict(Counter(e["type"] for e in result.events)) == types, path.name
            assert [u.code for u in result.unmapped] == codes, path.name
        else:  # the assembled call legs: each maps, none is dead-lettered
            assert result.events and not result.unmapped, path.name


def test_the_assembled_twilio_calls_build_the_rows_their_sources_describe() -> None:
    events = [
        e for p in wire_files("twilio") if p.name.startswith("TW") for e in twilio_file(p).events
    ]
    rows = pf.rows_of(events)
    parents = {r["call_provider_call_id"]: r for r in rows["incoming_call_log"]}
    answered, nobody = parents["CA" + "1" * 32], parents["CA" + "4" * 32]
    assert (answered["status"], answered["dial_attempts"]) == ("Completed", 2)
    # Twilio's parent prices: -0.01700 and -0.00850 USD.
    assert answered["incoming_call_cost_in_usd_cents"] == Decimal("1.7000")
    assert (nobody["status"], nobody["incoming_call_cost_in_usd_cents"]) == (
        "NoAnswer",
        Decimal("0.8500"),
    )
    statuses = sorted(r["status"] for r in rows["incoming_call_log_item"])
    assert statuses == ["Busy", "Completed", "NoAnswer", "NoAnswer"]
