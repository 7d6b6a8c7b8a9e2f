"""Fuzzing the decoder: whatever bytes arrive, `decode` answers, and answers precisely.

Invariants checked on every input:

* `decode` never raises; it returns a ValidEvent or a Rejection whose code is one of
  `worker.core.decode.ERROR_CODES`;
* a rejection's `field`, when set, names the input: a key of the JSON object (or a dotted
  path into it) for every code but `missing_field`, whose field is absent (or null);
* a valid event is keyed by its call_id, and the rows the pure core builds from it (with the
  other events of its call) fit the ClickHouse column types, so the insert cannot fail
  permanently and stall the worker.

The example counts are modest for CI; a long run:

    RINGLOG_FUZZ_EXAMPLES=200000 pytest tests/unit/core/test_decode_fuzz.py -q
"""

from __future__ import annotations

import json
import os
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.events import EVENT_TYPES
from schemas.tables import OUTBOUND_RELATION_IDS, TABLES_BY_NAME
from tests.support import builders as b
from worker.core.correlation import build_call_rows
from worker.core.decode import (
    ERROR_CODES,
    MISSING_FIELD,
    Rejection,
    ValidEvent,
    decode,
    payload_digest,
)

EXAMPLES = int(os.environ.get("RINGLOG_FUZZ_EXAMPLES", "400"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
CALL = "fz-call"
RATES = b.test_rates()
UUID_A = "23ec7c0c-5a3a-401c-ab11-f5e05646aa7a"


def base_events() -> list[dict[str, Any]]:
    """One valid event of every type for CALL, with (nearly) every optional field set."""
    dial = f"{CALL}-1"
    relations = dict.fromkeys(OUTBOUND_RELATION_IDS, UUID_A)
    return [
        b.received(CALL, 0, sequence=0),
        b.dial_started(CALL, dial, 1, escalation_rule_order=1, repeat_count=0),
        b.dial("ringing", CALL, dial, 2),
        b.dial("answered", CALL, dial, 3),
        b.dial(
            "ended", CALL, dial, 64, outcome="completed", status_message="ok", billable_seconds=61
        ),
        b.ended(CALL, 65, "completed", status_message="bye"),
        b.event(
            "outbound_call.placed",
            CALL,
            0,
            to_number="+4915550333",
            from_number="+15550100",
            call_data={"m": [1, {"x": None}]},
            **relations,
        ),
        b.event("outbound_call.answered", CALL, 2),
        b.event("outbound_call.ended", CALL, 40, status="Success", billable_seconds=38),
        b.cost(CALL, dial, 70, "3.14159", billable_seconds=60),
        b.event(
            "cdr.recorded",
            CALL,
            80,
            cdr_id="cdr-1",
            caller="101",
            caller_domain="pbx.example",
            caller_display_name="Desk",
            callee="+4915550444",
            callee_domain="",
            callee_display_name="Out",
            started_at=b.at(0),
            rang_at=b.at(1),
            answered_at="",
            ended_at=b.at(30),
            sip_call_id="sip-1",
            direction="OUTBOUND_CALL",
            end_reason="CALLER_DISCONNECTED",
            reroute_reason="x",
            status_code=200,
            destination="d",
            outbound_caller_id="o",
            did_cid="c",
            trunk="t",
            duration=45,
            cost="0.75",
            billed_account="a",
            service_number="s",
            user_data="u",
        ),
    ]


BASE = base_events()
assert all(isinstance(decode(*b.encode(e)), ValidEvent) for e in BASE)

# -- strategies ---------------------------------------------------------------------------

HUGE_NUMBERS = [
    2**31,
    2**32,
    2**53 + 1,
    2**63 - 1,
    2**63,
    2**64 - 1,
    -(2**63),
    -1,
    10**30,
    1e308,
    -0.0,
    1.5,
    1e-300,
]
WEIRD_STRINGS = [
    "",
    " ",
    "\x00",
    "\u202e",
    "\ufeff1",
    "null",
    "NaN",
    "Infinity",
    "-1",
    "1e400",
    "1e30",
    "١٢٣",
    "1_000",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2024-05-01T08:00:00",
    "2024-05-01T25:00:00Z",
    "2024-02-30T08:00:00Z",
    "1900-01-01T00:00:00Z",
    "2300-01-01T00:00:00Z",
    "x" * 200,
    "+1" + "5" * 20,
    "incoming_call.received",
    UUID_A.upper(),
    "{" + UUID_A + "}",
]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40),
    st.sampled_from(HUGE_NUMBERS),
    st.sampled_from(WEIRD_STRINGS),
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.dictionaries(st.text(max_size=12), children, max_size=4),
    ),
    max_leaves=12,
)


def retyped(value: Any) -> list[Any]:
    return [str(value), [value], {"v": value}, 1, 1.0, True, "", None]


@st.composite
def mutated_events(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid event with 1..4 random mutations, and the original."""
    original = draw(st.sampled_from(BASE))
    ev = dict(original)
    for _ in range(draw(st.integers(1, 4))):
        keys = sorted(ev)
        op = draw(st.sampled_from(["drop", "replace", "retype", "unicode", "huge", "nest", "add"]))
        if op == "add" or not keys:
            ev[draw(st.text(max_size=12))] = draw(json_values)
            continue
        key = draw(st.sampled_from(keys))
        if op == "drop":
            del ev[key]
        elif op == "replace":
            ev[key] = draw(json_values)
        elif op == "retype":
            ev[key] = draw(st.sampled_from(retyped(ev[key])))
        elif op == "unicode":
            ev[key] = draw(st.text(min_size=0, max_size=150))
        elif op == "huge":
            ev[key] = draw(st.sampled_from(HUGE_NUMBERS + [str(n) for n in HUGE_NUMBERS]))
        else:
            ev[key] = {"nested": [ev[key], {"deeper": [ev[key]]}]}
    return ev, original


def encode_any(value: Any) -> bytes:
    """JSON text of any value (stdlib json: integers beyond 64 bits, lone surrogates)."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value).encode("utf-8")


# -- invariants ---------------------------------------------------------------------------


def resolve(data: Any, path: str) -> tuple[bool, Any]:
    """Follow a dotted path (dict keys, list indices) into data: (found, value)."""
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and re.fullmatch(r"\d+", part) and int(part) < len(current):
            current = current[int(part)]
        else:
            return False, None
    return True, current


UINT32 = (0, 2**32 - 1)
RANGES = {
    "UInt32": UINT32,
    "Int32": (-(2**31), 2**31 - 1),
    "Int64": (-(2**63), 2**63 - 1),
    "UInt64": (0, 2**64 - 1),
}
DECIMAL_MAX = Decimal(10) ** 14


def assert_rows_fit(valid: list[ValidEvent]) -> None:
    rows = build_call_rows(valid, RATES)
    for table, table_rows in rows.tables().items():
        types = dict(TABLES_BY_NAME[table].columns)
        for row in table_rows:
            for column, value in row.items():
                ch_type = types[column].replace("Nullable(", "").rstrip(")")
                if value is None:
                    continue
                if ch_type in RANGES:
                    lo, hi = RANGES[ch_type]
                    assert isinstance(value, int) and lo <= value <= hi, (table, column, value)
                elif ch_type.startswith("Decimal"):
                    assert isinstance(value, Decimal) and abs(value) < DECIMAL_MAX, (
                        table,
                        column,
                        value,
                    )
                elif ch_type.startswith("DateTime64"):
                    assert isinstance(value, datetime) and 1900 <= value.year <= 2299


def check(key: bytes | None, value: bytes) -> ValidEvent | Rejection:
    """Decode, and check the invariants of the module docstring."""
    result = decode(key, value)  # must not raise
    assert isinstance(result, ValidEvent | Rejection)
    if isinstance(result, Rejection):
        assert result.code in ERROR_CODES, result
        assert result.message, result
        if result.field is not None:
            try:
                data = orjson.loads(value)
            except orjson.JSONDecodeError:
                pytest.fail(f"field {result.field!r} set for a payload that is not JSON")
            assert isinstance(data, dict), result
            found, present = resolve(data, result.field)
            if result.code == MISSING_FIELD:
                assert not found or present is None, result
            else:
                assert found, (result, data)
    else:
        assert result.event.type in EVENT_TYPES
        assert key == result.event.call_id.encode("utf-8")
        assert result.digest == payload_digest(value)
        value.decode("utf-8")  # valid UTF-8: call_event.payload is this text
    return result


# -- tests --------------------------------------------------------------------------------


@FUZZ
@given(key=st.one_of(st.none(), st.binary(max_size=20)), value=st.binary(max_size=300))
def test_arbitrary_bytes(key: bytes | None, value: bytes) -> None:
    check(key, value)


@FUZZ
@given(value=json_values, key=st.one_of(st.none(), st.just(CALL.encode())))
def test_arbitrary_json_values(value: Any, key: bytes | None) -> None:
    check(key, encode_any(value))


@FUZZ
@given(
    mutated=mutated_events(),
    key_choice=st.sampled_from(["call_id", "call_id", "call_id", "other", "none"]),
)
def test_mutated_valid_events(
    mutated: tuple[dict[str, Any], dict[str, Any]], key_choice: str
) -> None:
    ev, original = mutated
    call_id = ev.get("call_id")
    if key_choice == "call_id" and isinstance(call_id, str):
        key: bytes | None = call_id.encode("utf-8", "surrogatepass")
    elif key_choice == "none":
        key = None
    else:
        key = b"someone-else"
    result = check(key, encode_any(ev))
    if isinstance(result, ValidEvent) and result.event.call_id == CALL:
        # the accepted event, with the rest of its call: the rows must fit their columns
        others = [b.valid(e) for e in BASE if e["event_id"] != original["event_id"]]
        assert_rows_fit([*others, result])


@FUZZ
@given(
    ev=st.sampled_from(BASE),
    position=st.integers(min_value=0),
    junk=st.binary(min_size=1, max_size=4),
)
def test_byte_level_corruption_of_valid_events(
    ev: dict[str, Any], position: int, junk: bytes
) -> None:
    key, value = b.encode(ev)
    at = position % (len(value) + 1)
    check(key, value[:at] + junk + value[at:])


# -- regressions found by the fuzzer ------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        # datetime.astimezone raised OverflowError out of the decoder (year 1 / 9999 + offset)
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at"),
        ({"occurred_at": "9999-12-31T23:59:59-01:00"}, "occurred_at"),
        # valid by type, but the rows could not be stored (permanent insert error: the worker
        # would stop on the batch forever) or the costing raised decimal.InvalidOperation
        ({"occurred_at": "1900-01-01T00:00:00Z"}, "occurred_at"),
        ({"occurred_at": "2300-01-01T00:00:00Z"}, "occurred_at"),
        ({"sequence": 2**64 - 1}, "sequence"),
    ],
)
def test_regression_out_of_range_envelope(changes: dict[str, Any], field: str) -> None:
    ev = {**BASE[0], **changes}
    result = decode(*b.encode(ev))
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == ("invalid_field", field)


@pytest.mark.parametrize(
    ("index", "changes", "field"),
    [
        (9, {"cost_usd_cents": "1e25"}, "cost_usd_cents"),  # InvalidOperation in round_cents
        (9, {"cost_usd_cents": "1e15"}, "cost_usd_cents"),  # > Decimal(18, 4)
        (8, {"billable_seconds": 2**40}, "billable_seconds"),  # > UInt32 duration
        (10, {"status_code": 2**40}, "status_code"),  # > Int32
        (10, {"duration": 2**64 - 1}, "duration"),  # > Int64
        (10, {"started_at": "1900-01-01T00:00:00Z"}, "started_at"),  # span > UInt32 seconds
        (1, {"escalation_rule_order": 2**40}, "escalation_rule_order"),  # > UInt32
        (1, {"repeat_count": 2**32}, "repeat_count"),
    ],
)
def test_regression_values_the_tables_cannot_hold(
    index: int, changes: dict[str, Any], field: str
) -> None:
    ev = {**BASE[index], **changes}
    result = decode(*b.encode(ev))
    assert isinstance(result, Rejection), result
    assert (result.code, result.field) == ("invalid_field", field)


@pytest.mark.parametrize("text", ["1_000", "١٢", "1 000", "0x10", "1.2.3", "NaN", "Infinity"])
def test_regression_money_text_is_an_ascii_decimal(text: str) -> None:
    # Decimal() accepted "1_000" (1000) and non-ASCII digits ("١٢" = 12) as money
    result = decode(*b.encode({**BASE[9], "cost_usd_cents": text}))
    assert isinstance(result, Rejection)
    assert (result.code, result.field) == ("invalid_field", "cost_usd_cents")


@pytest.mark.parametrize(
    ("text", "want"), [("3", "3"), (" 0.10 ", "0.10"), ("1e2", "100"), (".5", "0.5"), ("7.", "7")]
)
def test_money_text_still_accepted(text: str, want: str) -> None:
    result = decode(*b.encode({**BASE[9], "cost_usd_cents": text}))
    assert isinstance(result, ValidEvent)
    assert result.event.cost_usd_cents == Decimal(want)  # type: ignore[attr-defined]


def test_largest_accepted_values_still_fit_the_tables() -> None:
    biggest = [dict(e) for e in BASE]
    biggest[4]["billable_seconds"] = 2**31 - 1
    biggest[8]["billable_seconds"] = 2**31 - 1
    biggest[9]["cost_usd_cents"] = "999999999999.9999"
    biggest[10].update(status_code=2**31 - 1, duration=2**31 - 1, cost=None)
    biggest[1].update(escalation_rule_order=2**32 - 1, repeat_count=2**32 - 1)
    biggest[0]["sequence"] = 2**63 - 1
    biggest[5]["occurred_at"] = "2105-12-31T23:59:59.999Z"
    biggest[0]["occurred_at"] = "1970-01-01T00:00:00Z"
    assert_rows_fit([b.valid(ev) for ev in biggest])
