"""A corpus of bad messages, interleaved with valid calls, through the real worker.

Every bad message must land in the DLQ topic AND in `rejected_event` with exactly the code and
field listed in CORPUS; the worker must keep going (every offset committed); the valid events
around the bad ones must give exactly the rows the pure core gives for them.
"""

from __future__ import annotations

import asyncio
import base64
import random
from collections import Counter
from typing import Any

import orjson
import pytest

from tests.support import builders as b
from tests.support.call_rows import by_call, expected_tables, read_tables
from tests.support.in_process_worker import fresh_settings, produce, read_dlq, running_worker
from worker.core.decode import Rejection, decode

pytestmark = pytest.mark.kafka

CALL_2ND = "bi-2nd"
CALL_NONE = "bi-none"
CALL_OUT = "bi-out"
CALL_CDR = "bi-cdr"
CALL_LATE = "bi-late"
TWO_MB = 2 * 1024 * 1024


def valid_calls() -> list[list[dict[str, Any]]]:
    return [
        b.answered_on_second_attempt(CALL_2ND),
        b.nobody_answers(CALL_NONE),
        b.outbound_call(CALL_OUT),
        b.cdr_record(CALL_CDR),
        b.late_cost_report(CALL_LATE),
    ]


def _without(ev: dict[str, Any], field: str) -> dict[str, Any]:
    return {k: v for k, v in ev.items() if k != field}


def _json(ev: dict[str, Any]) -> bytes:
    return orjson.dumps(ev)


Entry = tuple[str, bytes | None, bytes, str, str | None]
"""(name, key, value, expected code, expected field)"""


def corpus() -> list[Entry]:
    """Bad messages; most ride on a valid call's key, so they share its partition."""
    received = b.received(CALL_2ND, 0.5)
    dial_started = b.dial_started(CALL_2ND, "bi-x", 2, escalation_rule_order=1)
    dial_ended = b.dial("ended", CALL_NONE, f"{CALL_NONE}-1", 30, outcome="busy")
    placed = b.outbound_call(CALL_OUT)[0] | {"event_id": "bi-placed-bad"}
    cdr = b.cdr_record(CALL_CDR)[0] | {"event_id": "bi-cdr-bad"}
    cost = b.cost(CALL_LATE, f"{CALL_LATE}-1", 700, "1.5")
    k2, kn, ko, kc, kl = (c.encode() for c in (CALL_2ND, CALL_NONE, CALL_OUT, CALL_CDR, CALL_LATE))
    return [
        # -- not a JSON object ------------------------------------------------------------
        ("not json", k2, b"{this is not json", "invalid_json", None),
        ("empty value", k2, b"", "invalid_json", None),
        ("NaN literal", k2, b'{"event_id": NaN}', "invalid_json", None),
        ("not utf-8", k2, b"\xff\xfe{\x00}", "not_utf8", None),
        ("latin-1 text", kn, '{"caller": "Müller"}'.encode("latin-1"), "not_utf8", None),
        ("json array", k2, b'[{"event_id": "a"}]', "not_object", None),
        ("json number", kn, b"42", "not_object", None),
        ("json string", kn, b'"incoming_call.received"', "not_object", None),
        ("json null", kn, b"null", "not_object", None),
        ("json true", kn, b"true", "not_object", None),
        # -- envelope ---------------------------------------------------------------------
        ("no event_id", k2, _json(_without(received, "event_id")), "missing_field", "event_id"),
        ("no type", k2, _json(_without(received, "type")), "missing_field", "type"),
        ("null type", k2, _json(received | {"type": None}), "missing_field", "type"),
        (
            "no occurred_at",
            k2,
            _json(_without(received, "occurred_at")),
            "missing_field",
            "occurred_at",
        ),
        (
            "no project_id",
            k2,
            _json(_without(received, "project_id")),
            "missing_field",
            "project_id",
        ),
        ("no call_id", k2, _json(_without(received, "call_id")), "missing_field", "call_id"),
        (
            "unknown type",
            k2,
            _json(received | {"type": "incoming_call.transferred"}),
            "unknown_type",
            "type",
        ),
        ("type not a string", k2, _json(received | {"type": 7}), "invalid_field", "type"),
        (
            "schema_version 2",
            k2,
            _json(received | {"schema_version": 2}),
            "unsupported_schema_version",
            "schema_version",
        ),
        (
            "schema_version string",
            k2,
            _json(received | {"schema_version": "1"}),
            "invalid_field",
            "schema_version",
        ),
        (
            "event_id too long",
            k2,
            _json(received | {"event_id": "e" * 129}),
            "invalid_field",
            "event_id",
        ),
        # -- wrong types ------------------------------------------------------------------
        (
            "sequence as string",
            k2,
            _json(received | {"sequence": "3"}),
            "invalid_field",
            "sequence",
        ),
        ("sequence negative", k2, _json(received | {"sequence": -1}), "invalid_field", "sequence"),
        (
            "call_data as list",
            ko,
            _json(placed | {"call_data": [1, 2]}),
            "invalid_field",
            "call_data",
        ),
        (
            "status_code as string",
            kc,
            _json(cdr | {"status_code": "200"}),
            "invalid_field",
            "status_code",
        ),
        (
            "dial_id as object",
            kn,
            _json(dial_ended | {"dial_id": {"id": 1}}),
            "invalid_field",
            "dial_id",
        ),
        (
            "unknown outcome",
            kn,
            _json(dial_ended | {"outcome": "voicemail"}),
            "invalid_field",
            "outcome",
        ),
        ("no user_id", k2, _json(_without(dial_started, "user_id")), "missing_field", "user_id"),
        # -- invalid values ---------------------------------------------------------------
        (
            "project_id not a UUID",
            k2,
            _json(received | {"project_id": "project-7"}),
            "invalid_field",
            "project_id",
        ),
        (
            "user_id not a UUID",
            k2,
            _json(dial_started | {"user_id": "1e2a2c05-b127-413f"}),
            "invalid_field",
            "user_id",
        ),
        (
            "timestamp without offset",
            k2,
            _json(received | {"occurred_at": "2024-05-01T08:00:00"}),
            "invalid_field",
            "occurred_at",
        ),
        (
            "timestamp garbage",
            k2,
            _json(received | {"occurred_at": "yesterday at noon"}),
            "invalid_field",
            "occurred_at",
        ),
        (
            "timestamp epoch number",
            k2,
            _json(received | {"occurred_at": 1714550400}),
            "invalid_field",
            "occurred_at",
        ),
        (
            "timestamp hour 25",
            k2,
            _json(received | {"occurred_at": "2024-05-01T25:00:00Z"}),
            "invalid_field",
            "occurred_at",
        ),
        (
            "timestamp year 2300",
            k2,
            _json(received | {"occurred_at": "2300-05-01T08:00:00Z"}),
            "invalid_field",
            "occurred_at",
        ),
        ("cdr time garbage", kc, _json(cdr | {"ended_at": "later"}), "invalid_field", "ended_at"),
        (
            "E.164 without +",
            k2,
            _json(received | {"caller_phone_number": "447700900123"}),
            "invalid_field",
            "caller_phone_number",
        ),
        (
            "E.164 with letters",
            k2,
            _json(dial_started | {"user_phone_number": "+1555CALLME"}),
            "invalid_field",
            "user_phone_number",
        ),
        (
            "E.164 too long",
            ko,
            _json(placed | {"to_number": "+1" + "5" * 15}),
            "invalid_field",
            "to_number",
        ),
        (
            "negative billable_seconds",
            kn,
            _json(dial_ended | {"billable_seconds": -5}),
            "invalid_field",
            "billable_seconds",
        ),
        ("negative cdr duration", kc, _json(cdr | {"duration": -1}), "invalid_field", "duration"),
        (
            "negative cost",
            kl,
            _json(cost | {"cost_usd_cents": -0.01}),
            "invalid_field",
            "cost_usd_cents",
        ),
        (
            "negative cost string",
            kl,
            _json(cost | {"cost_usd_cents": "-3"}),
            "invalid_field",
            "cost_usd_cents",
        ),
        ("negative cdr cost", kc, _json(cdr | {"cost": "-0.5"}), "invalid_field", "cost"),
        (
            "cost not a decimal",
            kl,
            _json(cost | {"cost_usd_cents": "3 cents"}),
            "invalid_field",
            "cost_usd_cents",
        ),
        (
            "cost too large for the table",
            kl,
            _json(cost | {"cost_usd_cents": "1e20"}),
            "invalid_field",
            "cost_usd_cents",
        ),
        # -- size and key -----------------------------------------------------------------
        ("2 MB source", k2, _json(received | {"source": "s" * TWO_MB}), "invalid_field", "source"),
        ("key is another call", kn, _json(received), "key_mismatch", "call_id"),
        (
            "no key",
            None,
            _json(b.dial("ringing", CALL_2ND, f"{CALL_2ND}-1", 1.6)),
            "key_mismatch",
            "call_id",
        ),
    ]


def expected_payload(value: bytes) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii")


def test_corpus_table_matches_the_decoder() -> None:
    """The expected (code, field) table, checked against the decoder alone (fast)."""
    entries = corpus()
    assert len({v for _, _, v, _, _ in entries}) == len(entries)  # payloads identify entries
    for name, key, value, code, field in entries:
        result = decode(key, value)
        assert isinstance(result, Rejection), name
        assert (result.code, result.field) == (code, field), name


def test_bad_input_is_dead_lettered_and_valid_calls_are_exact(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    calls = valid_calls()
    good = [e for call in calls for e in call]
    bad = corpus()
    rnd = random.Random(7)
    messages: list[tuple[bytes | None, bytes]] = [b.encode(e) for e in good]
    rnd.shuffle(messages)
    for _, key, value, _, _ in bad:  # interleave the bad ones at random places
        messages.insert(rnd.randrange(len(messages) + 1), (key, value))
    # a second wave after all of it: the worker still consumes
    wave2 = [b.cost(CALL_2ND, f"{CALL_2ND}-2", 900, "9.99"), b.received("bi-after", 1000)]

    async def scenario() -> tuple[Any, list[dict[str, Any]], list[Any]]:
        async with running_worker(settings) as run:
            await produce(settings, messages)
            await run.drained()
            await produce(settings, [b.encode(e) for e in wave2])
            await run.drained()
            assert not run.task.done()
            tables = read_tables(run.worker.store)
            rejected = run.query(
                "SELECT topic, `partition`, `offset`, key, error_code, error_field, "
                "error_message, payload FROM rejected_event FINAL"
            )
        dlq = await read_dlq(settings, expected=len(bad))
        return tables, rejected, dlq

    tables, rejected, dlq = asyncio.run(scenario())

    want = {expected_payload(v): (k, code, field) for _, k, v, code, field in bad}
    name_of = {expected_payload(v): name for name, _, v, _, _ in bad}

    # rejected_event: exactly one row per bad message, with its exact code and field
    assert len(rejected) == len(bad)
    got_rows = {r["payload"]: (r["key"], r["error_code"], r["error_field"]) for r in rejected}
    for payload, (key, code, field) in want.items():
        assert got_rows.get(payload) == (key.decode() if key else None, code, field), name_of[
            payload
        ]
    assert all(r["topic"] == settings.topic and r["error_message"] for r in rejected)

    # DLQ topic: the same, with the original payload and where it came from
    letters = [orjson.loads(m.value) for m in dlq]
    assert len(letters) == len(bad)
    for letter in letters:
        payload = letter["payload"]
        key, code, field = want[payload]
        assert (letter["error"]["code"], letter["error"]["field"]) == (code, field)
        assert letter["source"]["key"] == (key.decode() if key else None)
        assert letter["source"]["topic"] == settings.topic
        assert letter["payload_encoding"] == ("base64" if code == "not_utf8" else "utf-8")
        assert letter["error"]["message"]
    where = Counter((d["source"]["partition"], d["source"]["offset"]) for d in letters)
    assert where == Counter((r["partition"], r["offset"]) for r in rejected)
    big = [d for d in letters if d["error"]["field"] == "source"]
    assert len(big) == 1 and len(big[0]["payload"]) > TWO_MB

    # the valid events around the bad ones: exactly their rows, every column but ingested_at
    calls[0].append(wave2[0])
    calls.append([wave2[1]])
    assert tables == expected_tables(by_call([e for call in calls for e in call]))
