"""Validation of `incoming_call.item_amended` and `incoming_call.item_deleted` (DESIGN.md
section 2): each rejection with its exact code, field and message."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import orjson
import pytest

from schemas.events import AMENDABLE_FIELDS, ItemAmended, ItemDeleted
from tests.support import builders as b
from tests.support.sample_vector import AMENDMENTS_DIR, load_expected, sample_messages
from worker.core.decode import Rejection, ValidEvent, decode


def amended(**changes: Any) -> dict[str, Any]:
    """A valid amendment (it sets the status) with `changes`; `...` removes a field."""
    ev = b.amended("c1", "d1", 0, status="Busy")
    ev.update(changes)
    return {k: v for k, v in ev.items() if v is not ...}


def rejected(ev: dict[str, Any]) -> tuple[str, str | None, str]:
    result = decode(b"c1", orjson.dumps(ev))
    assert isinstance(result, Rejection), result
    return result.code, result.field, result.message


NONE_OF_THEM = (
    "incoming_call.item_amended needs at least one of: status, status_message, is_answered, "
    "call_cost_usd_cents, user_id, user_phone_number, escalation_rule_id"
)


@pytest.mark.parametrize(
    ("ev", "code", "field", "message"),
    [
        (amended(status=...), "missing_field", None, NONE_OF_THEM),
        (amended(status=None), "missing_field", None, NONE_OF_THEM),  # null = absent
        (amended(dial_id=...), "missing_field", "dial_id", "dial_id is required"),
        (amended(dial_id=""), "invalid_field", "dial_id", "dial_id length must be 1..128, got 0"),
        (
            amended(status="Answered"),
            "invalid_field",
            "status",
            "status must be one of Ringing, Connected, Completed, NoAnswer, Busy, Failed, "
            "CallerHungUp",
        ),
        (amended(status="Initiated"), "invalid_field", "status", None),  # a parent status
        (amended(is_answered="true"), "invalid_field", "is_answered", None),
        (amended(is_answered=1), "invalid_field", "is_answered", None),
        (
            amended(call_cost_usd_cents="-0.25"),
            "invalid_field",
            "call_cost_usd_cents",
            "call_cost_usd_cents must be >= 0",
        ),
        (
            amended(call_cost_usd_cents="1_000"),
            "invalid_field",
            "call_cost_usd_cents",
            "call_cost_usd_cents must be a decimal",
        ),
        (
            amended(call_cost_usd_cents=True),
            "invalid_field",
            "call_cost_usd_cents",
            "call_cost_usd_cents must be a decimal",
        ),
        (
            amended(call_cost_usd_cents="1000000000000"),
            "invalid_field",
            "call_cost_usd_cents",
            "call_cost_usd_cents must be < 1000000000000",
        ),
        (amended(user_id="bob"), "invalid_field", "user_id", "user_id must be a UUID"),
        (
            amended(status=..., escalation_rule_id="r1"),
            "invalid_field",
            "escalation_rule_id",
            "escalation_rule_id must be a UUID",
        ),
        (
            amended(status=..., user_phone_number="0044"),
            "invalid_field",
            "user_phone_number",
            None,
        ),
        (amended(status=..., status_message=5), "invalid_field", "status_message", None),
        (b.deleted("c1", "d1", 0) | {"dial_id": None}, "missing_field", "dial_id", None),
        (b.deleted("c1", "d1", 0) | {"dial_id": 7}, "invalid_field", "dial_id", None),
    ],
)
def test_bad_amendments_and_deletions_are_rejected(
    ev: dict[str, Any], code: str, field: str | None, message: str | None
) -> None:
    got_code, got_field, got_message = rejected(ev)
    assert (got_code, got_field) == (code, field)
    if message is not None:
        assert got_message == message
    if field == "is_answered":
        assert got_message == "is_answered must be a JSON boolean"


@pytest.mark.parametrize("name", AMENDABLE_FIELDS)
def test_any_single_amendable_field_is_enough(name: str) -> None:
    value: Any = {
        "status": "Busy",
        "status_message": "",
        "is_answered": False,
        "call_cost_usd_cents": 0,
        "user_id": b.BOB,
        "user_phone_number": "+15550222",
        "escalation_rule_id": b.RULE,
    }[name]
    ev = b.event("incoming_call.item_amended", "c1", 0, dial_id="d1", **{name: value})
    decoded = decode(b"c1", orjson.dumps(ev))
    assert isinstance(decoded, ValidEvent), decoded
    assert isinstance(decoded.event, ItemAmended)
    assert getattr(decoded.event, name) == value
    others = [other for other in AMENDABLE_FIELDS if other != name]
    assert all(getattr(decoded.event, other) is None for other in others)


def test_amended_cost_takes_a_number_or_a_string_exactly() -> None:
    for raw, want in ((0.6929, "0.6929"), ("2.5294", "2.5294"), (4, "4")):
        decoded = b.valid(amended(status=..., call_cost_usd_cents=raw))
        assert isinstance(decoded.event, ItemAmended)
        assert decoded.event.call_cost_usd_cents == Decimal(want)


def test_deletion_needs_only_its_dial_id() -> None:
    decoded = b.valid(b.deleted("c1", "d1", 0))
    assert isinstance(decoded.event, ItemDeleted)
    assert decoded.event.dial_id == "d1"


@pytest.mark.skipif(not AMENDMENTS_DIR.exists(), reason="shared example vector not present")
def test_amendments_vector_rejections_match_code_and_field() -> None:
    expected = {r["line"]: r for r in load_expected(AMENDMENTS_DIR)["rejected"]}
    seen = {}
    for line, (key, value) in enumerate(sample_messages(AMENDMENTS_DIR)):
        result = decode(key, value)
        if isinstance(result, Rejection):
            seen[line] = (result.code, result.field)
    assert seen == {line: (r["code"], r["field"]) for line, r in expected.items()}
