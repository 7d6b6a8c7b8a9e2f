"""FreeSWITCH mod_json_cdr: the project's fixtures (one CDR per leg) through the parser,
normalizer and core give exactly the hand-computed rows (provider_fixtures.py); order,
duplicate POSTs and broken CDRs change nothing or give a clear Unmapped."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import builders as b
from tests.unit.core.providers import provider_fixtures as pf
from worker.core.decode import Rejection, validate_object
from worker.core.providers import freeswitch as fs
from worker.core.providers.base import (
    INVALID_FIELD,
    MISSING_FIELD,
    NOT_PROVIDER_FORMAT,
    UNMAPPED_VALUE,
    Normalized,
    derived_user_id,
)

FIXTURES = pf.FIXTURES / "freeswitch"


def _call(n: int) -> str:
    return f"a1c3e0d2-000{n}-4b6e-9a01-000000000001"


def _leg(n: int, leg: int) -> str:
    return f"b1c3e0d2-000{n}-4b6e-9a01-00000000000{leg}"


def _msgs(**kw: str) -> dict[str, str | None]:
    return dict(kw)


OUTBOUND_UUID = "c1c3e0d2-0006-4b6e-9a01-000000000001"
# fixture directory -> the rows it must give (A-leg uuid = call_id, B-leg uuid = dial_id)
EXPECTED: dict[str, Callable[[], pf.Tables]] = {
    "hunt-alice-no-answer-bob-answers": lambda: pf.hunt_rows(
        _call(1),
        _leg(1, 2),
        _leg(1, 3),
        _msgs(call="SUCCESS", alice="NO_ANSWER", bob="NORMAL_CLEARING"),
    ),
    "nobody-answers": lambda: pf.nobody_answers_rows(
        _call(2),
        _leg(2, 2),
        _leg(2, 3),
        _msgs(call="NO_ANSWER", alice="NO_ANSWER", bob="NO_ANSWER"),
    ),
    "caller-hangs-up-while-ringing": lambda: pf.caller_hangs_up_rows(
        _call(3), _leg(3, 2), _msgs(call="ORIGINATOR_CANCEL", dial="ORIGINATOR_CANCEL")
    ),
    "busy": lambda: pf.busy_rows(_call(4), _leg(4, 2), _msgs(call="USER_BUSY", dial="USER_BUSY")),
    "failed-not-registered": lambda: pf.failed_rows(
        _call(5), _leg(5, 2), _msgs(call="USER_NOT_REGISTERED", dial="USER_NOT_REGISTERED")
    ),
    "outbound-notification": lambda: pf.outbound_rows(
        OUTBOUND_UUID, "NORMAL_CLEARING", {"freeswitch_uuid": OUTBOUND_UUID}
    ),
}


def bodies(name: str) -> list[bytes]:
    return [p.read_bytes() for p in sorted((FIXTURES / name).glob("*.json"))]


def normalize_all(posts: list[bytes]) -> Normalized:
    out = Normalized()
    for body in posts:
        out += fs.normalize_body(body, pf.CONTEXT)
    return out


def test_every_fixture_has_expected_rows() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_gives_the_hand_computed_rows(name: str) -> None:
    normalized = normalize_all(bodies(name))
    assert normalized.unmapped == ()
    assert pf.rows_by_call(normalized.events) == EXPECTED[name]()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_event_is_a_valid_contract_event(name: str) -> None:
    for event in normalize_all(bodies(name)).events:
        checked = validate_object(dict(event))
        assert not isinstance(checked, Rejection), (event, checked)
        assert event["source"] == "freeswitch"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_shuffled_and_retried_posts_give_the_same_rows(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(EXPECTED)))
    posts = bodies(name)
    retries = data.draw(st.lists(st.sampled_from(posts), max_size=2 * len(posts)))
    delivered = data.draw(st.permutations(posts + retries))
    assert pf.rows_by_call(normalize_all(list(delivered)).events) == EXPECTED[name]()


def _cdr(name: str = "hunt-alice-no-answer-bob-answers", leg: str = "b-leg-1002.json") -> Any:
    return json.loads((FIXTURES / name / leg).read_text())


def _with(cdr: Any, **variables: str | None) -> bytes:
    for key, value in variables.items():
        if value is None:
            cdr["variables"].pop(key, None)
        else:
            cdr["variables"][key] = value
    return json.dumps(cdr).encode()


def _without_direction() -> bytes:
    """An A leg as FreeSWITCH before 1.6 wrote it: no direction in variables or channel_data."""
    cdr = _cdr(leg="a-leg.json")
    cdr["channel_data"].pop("direction")
    return _with(cdr, direction=None)


def _unanswered_b_leg(cause: str) -> bytes:
    return _with(_cdr(leg="b-leg-1001.json"), hangup_cause=cause)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b'{"quality_percentage":nan}', NOT_PROVIDER_FORMAT),
        (b"<cdr><variables/></cdr>", NOT_PROVIDER_FORMAT),
        (b'"CHAN_START","1714550400.0"', NOT_PROVIDER_FORMAT),
        (b"[1, 2]", NOT_PROVIDER_FORMAT),
        (b'{"Event-Name": "CHANNEL_HANGUP"}', NOT_PROVIDER_FORMAT),
        (_with(_cdr(), uuid=None), MISSING_FIELD),
        (_with(_cdr(), end_uepoch=None), MISSING_FIELD),
        (_with(_cdr(), start_uepoch="1.7e15"), INVALID_FIELD),
        (_with(_cdr(), start_uepoch="0"), INVALID_FIELD),
        # clock jump inside one leg: answered before it started
        (_with(_cdr(), answer_uepoch="1714550300000000"), INVALID_FIELD),
        (_without_direction(), MISSING_FIELD),
    ],
)
def test_broken_cdrs_give_a_clear_unmapped_and_no_event(body: bytes, code: str) -> None:
    normalized = fs.normalize_body(body, pf.CONTEXT)
    assert normalized.events == ()
    assert [u.code for u in normalized.unmapped] == [code]
    assert normalized.unmapped[0].message


@pytest.mark.parametrize("cause", ["NORMAL_CLEARING", "MEDIA_TIMEOUT", "SOMETHING_NEW"])
def test_an_unknown_cause_of_an_unanswered_leg_is_dead_lettered_not_guessed(cause: str) -> None:
    normalized = fs.normalize_body(_unanswered_b_leg(cause), pf.CONTEXT)
    # The leg still starts (its item exists), but its end is not invented.
    assert [e["type"] for e in normalized.events] == ["incoming_call.dial_started"]
    assert [u.code for u in normalized.unmapped] == [UNMAPPED_VALUE]


def test_an_unknown_endpoint_gets_a_derived_user_but_needs_a_number() -> None:
    body = _with(_cdr(leg="b-leg-1001.json"))
    ctx = dataclasses.replace(pf.CONTEXT, user_for_endpoint={})
    started = fs.normalize_body(body, ctx).events[0]
    assert started["user_id"] == derived_user_id(b.PROJECT, "1001")
    no_phone = dataclasses.replace(pf.CONTEXT, phone_for_endpoint={})
    assert [u.code for u in fs.normalize_body(body, no_phone).unmapped] == [MISSING_FIELD]


def test_clock_skew_between_legs_never_gives_negative_durations() -> None:
    # Bob's B leg was written by a box 2 minutes behind the A leg's.
    posts = bodies("hunt-alice-no-answer-bob-answers")
    bob = _cdr()
    for key in ("start_uepoch", "answer_uepoch", "end_uepoch"):
        bob["variables"][key] = str(int(bob["variables"][key]) - 120_000_000)
    posts[-1] = json.dumps(bob).encode()
    tables = pf.rows_by_call(normalize_all(posts).events)
    for rows in tables.values():
        for row in rows:
            for column, value in row.items():
                if column.endswith("_seconds") and value is not None:
                    assert value >= 0, (column, row)
    assert tables["incoming_call_log"][0]["status"] == "Completed"


# -- the providers' own published CDRs (../shared/provider-samples), when present -----------

SAMPLES = pf.SHARED_SAMPLES / "freeswitch"
SAMPLE_CONTEXT = dataclasses.replace(
    pf.CONTEXT,
    default_policy_id=b.POLICY,
    phone_for_endpoint={"1294": "+85523901294", "0715100860": "+85515100860", "1234": "+15550123"},
)
# sample -> (event types, Unmapped codes)
SAMPLE_OUTCOMES: dict[str, tuple[list[str], list[str]]] = {
    # Somleng's A leg was placed by Somleng (outbound); its caller "715100860" is not E.164.
    "F01-somleng-leg-a-joined-by-leg-b.json": ([], [INVALID_FIELD]),
    # Joined by rayo (uuid_bridge), not originated: no `originator`, so its own outbound call.
    "F02-somleng-leg-b.json": (
        ["outbound_call.placed", "outbound_call.answered", "outbound_call.ended"],
        [],
    ),
    # 16 digits: not an E.164 number.
    "F03-somleng-outbound-unanswered.json": ([], [INVALID_FIELD]),
    "F04-somleng-inbound-answered.json": (
        ["incoming_call.received", "incoming_call.ended"],
        [],
    ),
    "F05-somleng-cdr-with-nan-AS-PUBLISHED-invalid.json": ([], [NOT_PROVIDER_FORMAT]),
    # 2018 FreeSWITCH: no direction anywhere in the CDR.
    "F06-cgrates-leg-a-inbound-bridged.json": ([], [MISSING_FIELD]),
}


def _sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/provider-samples is not here")
def test_every_shared_sample_has_an_expected_outcome() -> None:
    assert sorted(p.name for p in _sample_files()) == sorted(SAMPLE_OUTCOMES)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/provider-samples is not here")
@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: p.name)
def test_shared_samples_normalize_as_expected(path: Path) -> None:
    normalized = fs.normalize_body(path.read_bytes(), SAMPLE_CONTEXT)
    types, codes = SAMPLE_OUTCOMES[path.name]
    assert [e["type"] for e in normalized.events] == types
    assert [u.code for u in normalized.unmapped] == codes
    for event in normalized.events:
        assert not isinstance(validate_object(dict(event)), Rejection), event
    pf.rows_by_call(normalized.events)  # the core takes them


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/provider-samples is not here")
def test_shared_inbound_sample_rows() -> None:
    # F04: +85516234567 -> 1294, answered by an application at 0.86 s, 4.24 s in all,
    # NORMAL_UNSPECIFIED: Completed, no items; 4.24 s -> 5 s at 0.5 + 0.85 * 5 / 60.
    body = (SAMPLES / "F04-somleng-inbound-answered.json").read_bytes()
    (parent,) = pf.rows_by_call(fs.normalize_body(body, SAMPLE_CONTEXT).events)["incoming_call_log"]
    assert parent["status"] == "Completed"
    assert parent["call_duration_in_seconds"] == 5
    assert parent["incoming_call_cost_in_usd_cents"] == pf.D("0.5708")
    assert parent["dial_attempts"] == 0
