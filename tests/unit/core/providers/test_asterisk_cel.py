"""Asterisk CEL: the project's fixtures through parser + normalizer + core give exactly the
hand-computed rows (provider_fixtures.py); order, duplicates, notation (CSV or AMI JSON) and
broken records change nothing or give a clear Unmapped."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import builders as b
from tests.unit.core.providers import provider_fixtures as pf
from worker.core.decode import Rejection, validate_object
from worker.core.providers import asterisk_cel as ast
from worker.core.providers.asterisk_cel_records import CelRecord, parse_line
from worker.core.providers.base import (
    INVALID_FIELD,
    MISSING_FIELD,
    NOT_PROVIDER_FORMAT,
    UNKNOWN_EVENT,
    UNMAPPED_VALUE,
    Normalized,
    Unmapped,
)

FIXTURES = pf.FIXTURES / "asterisk"
HUNT = "hunt-alice-no-answer-bob-answers"


def _msgs(**kw: str) -> dict[str, str | None]:
    return dict(kw)


# fixture file -> the rows it must give (linkedid = call_id, uniqueid = dial_id)
EXPECTED: dict[str, Callable[[], pf.Tables]] = {
    f"{HUNT}.csv": lambda: pf.hunt_rows(
        "1714550400.10",
        "1714550401.11",
        "1714550421.12",
        _msgs(
            call="dialstatus ANSWER, hangupcause 16 NORMAL_CLEARING",
            alice="hangupcause 19 NO_ANSWER",
            bob="hangupcause 16 NORMAL_CLEARING",
        ),
    ),
    "nobody-answers.csv": lambda: pf.nobody_answers_rows(
        "1714550400.20",
        "1714550401.21",
        "1714550421.22",
        _msgs(
            call="dialstatus NOANSWER, hangupcause 19 NO_ANSWER",
            alice="hangupcause 19 NO_ANSWER",
            bob="hangupcause 19 NO_ANSWER",
        ),
    ),
    "caller-hangs-up-while-ringing.csv": lambda: pf.caller_hangs_up_rows(
        "1714550400.30",
        "1714550401.31",
        _msgs(
            call="dialstatus CANCEL, hangupcause 16 NORMAL_CLEARING",
            dial="hangupcause 16 NORMAL_CLEARING",
        ),
    ),
    "busy.csv": lambda: pf.busy_rows(
        "1714550400.40",
        "1714550401.41",
        _msgs(call="dialstatus BUSY, hangupcause 17 USER_BUSY", dial="hangupcause 17 USER_BUSY"),
    ),
    "failed-congestion.csv": lambda: pf.failed_rows(
        "1714550400.50",
        "1714550401.51",
        _msgs(
            call="dialstatus CONGESTION, hangupcause 34 NORMAL_CIRCUIT_CONGESTION",
            dial="hangupcause 34 NORMAL_CIRCUIT_CONGESTION",
        ),
    ),
}


def lines(name: str) -> list[str]:
    return [line for line in (FIXTURES / name).read_text().splitlines() if line.strip()]


def normalize_lines(records: list[str], ctx: Any = pf.CONTEXT) -> Normalized:
    out = Normalized()
    for line in records:
        out += ast.normalize_line(line, ctx)
    return out


def test_every_fixture_file_has_expected_rows() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in FIXTURES.glob("*.csv"))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_gives_the_hand_computed_rows(name: str) -> None:
    normalized = ast.normalize_text((FIXTURES / name).read_text(), pf.CONTEXT)
    assert normalized.unmapped == ()
    assert pf.rows_by_call(normalized.events) == EXPECTED[name]()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_event_is_a_valid_contract_event(name: str) -> None:
    for event in ast.normalize_text((FIXTURES / name).read_text(), pf.CONTEXT).events:
        checked = validate_object(dict(event))
        assert not isinstance(checked, Rejection), (event, checked)
        assert event["source"] == "asterisk"


def test_ami_json_lines_in_local_time_are_the_same_events_as_the_csv() -> None:
    # The AMI copy writes dateformat times in Europe/Berlin (UTC+2 in May) and no offset.
    berlin = dataclasses.replace(pf.CONTEXT, time_zone=ZoneInfo("Europe/Berlin"))
    from_ami = ast.normalize_text((FIXTURES / f"{HUNT}.ami.jsonl").read_text(), berlin)
    from_csv = ast.normalize_text((FIXTURES / f"{HUNT}.csv").read_text(), pf.CONTEXT)
    assert from_ami.unmapped == ()
    assert from_ami.events == from_csv.events  # same instants, so the same event ids
    # Read as UTC (the default), the same text lands two hours late: the zone matters.
    as_utc = ast.normalize_text((FIXTURES / f"{HUNT}.ami.jsonl").read_text(), pf.CONTEXT)
    assert as_utc.events[0]["occurred_at"] == "2024-05-01T10:00:00.000000Z"


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_shuffled_and_duplicated_records_give_the_same_rows(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(sorted(EXPECTED)))
    records = lines(name)
    extra = data.draw(st.lists(st.sampled_from(records), max_size=len(records)))
    delivered = data.draw(st.permutations(records + extra))
    normalized = normalize_lines(list(delivered))
    assert pf.rows_by_call(normalized.events) == EXPECTED[name]()


def test_a_record_maps_the_same_every_time() -> None:
    # Stateless: a re-import of one record gives the very same event (same id).
    record = lines(f"{HUNT}.csv")[0]
    assert ast.normalize_line(record, pf.CONTEXT) == ast.normalize_line(record, pf.CONTEXT)


def _record(**changes: str) -> str:
    """The hunt's first record (the trunk's CHAN_START) with some columns changed."""
    parsed = parse_line(lines(f"{HUNT}.csv")[0])
    assert not isinstance(parsed, Unmapped)
    values = dataclasses.asdict(dataclasses.replace(parsed, **changes))
    return ",".join('"' + str(v).replace('"', '""') + '"' for v in values.values())


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ('{"Event": "Hangup", "Channel": "PJSIP/x"}', NOT_PROVIDER_FORMAT),
        ("<cdr><variables/></cdr>", NOT_PROVIDER_FORMAT),
        ('"CHAN_START","1714550400.0","only three columns"', NOT_PROVIDER_FORMAT),
        ("{not json", NOT_PROVIDER_FORMAT),
        (_record(eventtype="XIVO_INCALL"), UNKNOWN_EVENT),
        (_record(eventtime="yesterday"), INVALID_FIELD),
        (_record(eventtime="2024-13-45 99:00:00"), INVALID_FIELD),
        (_record(cid_num="anonymous"), INVALID_FIELD),
        (_record(cid_dnid="", exten="s"), INVALID_FIELD),
        (_record(cid_dnid="+15559999999", exten="+15559999999"), UNMAPPED_VALUE),
        (_record(uniqueid=""), MISSING_FIELD),
        (_record(eventtype="HANGUP"), MISSING_FIELD),
        (_record(eventtype="HANGUP", extra='{"hangupcause":21,"dialstatus":"TORTURE"}'), None),
        (
            _record(
                eventtype="HANGUP",
                extra='{"hangupcause":16,"hangupsource":"dialplan/builtin","dialstatus":""}',
            ),
            UNMAPPED_VALUE,
        ),
        (
            _record(eventtype="HANGUP", uniqueid="1714550401.99", channame="PJSIP/carol-1"),
            MISSING_FIELD,
        ),
        (
            _record(
                eventtype="HANGUP",
                uniqueid="1714550401.99",
                channame="PJSIP/alice-1",
                extra='{"hangupcause":0,"hangupsource":"","dialstatus":""}',
            ),
            UNMAPPED_VALUE,
        ),
        (
            _record(eventtype="CHAN_START", uniqueid="1714550401.99", channame="PJSIP/carol-1"),
            MISSING_FIELD,
        ),
    ],
)
def test_broken_records_give_a_clear_unmapped(line: str, code: str | None) -> None:
    normalized = ast.normalize_line(line, pf.CONTEXT)
    assert normalized.events == ()
    assert len(normalized.unmapped) == 1
    unmapped = normalized.unmapped[0]
    assert unmapped.code == (code or UNMAPPED_VALUE)
    assert unmapped.message


def test_records_ringlog_does_not_use_are_skipped_silently() -> None:
    for name in ("CHAN_END", "LINKEDID_END", "BRIDGE_ENTER", "APP_START", "USER_DEFINED"):
        assert ast.normalize_line(_record(eventtype=name), pf.CONTEXT) == Normalized()
    # Local channel halves are dialplan plumbing, not a user's leg.
    local = _record(uniqueid="1714550401.98", channame="Local/100@default-00000001;2")
    assert ast.normalize_line(local, pf.CONTEXT) == Normalized()


def test_a_time_with_an_offset_wins_over_the_context_zone() -> None:
    line = _record(eventtime="2024-05-01 04:00:00.250-04")
    (event,) = ast.normalize_line(line, pf.CONTEXT).events
    assert event["occurred_at"] == "2024-05-01T08:00:00.250000Z"


def test_clock_skew_between_legs_never_gives_negative_durations() -> None:
    # Bob's channel lives on a box whose clock is 2 minutes behind: his records say he was
    # dialled before the call arrived. The rows still build; nothing is negative.
    records = []
    for line in lines(f"{HUNT}.csv"):
        parsed = parse_line(line)
        assert not isinstance(parsed, Unmapped)
        if parsed.channame.startswith("PJSIP/bob"):
            skewed = f"{float(parsed.eventtime) - 120:.6f}"
            line = _with_time(parsed, skewed)
        records.append(line)
    tables = pf.rows_by_call(normalize_lines(records).events)
    for rows in tables.values():
        for row in rows:
            for column, value in row.items():
                if column.endswith("_seconds") and value is not None:
                    assert value >= 0, (column, row)
    (parent,) = tables["incoming_call_log"]
    assert parent["status"] == "Completed"
    assert parent["ended_at"] == datetime(2024, 5, 1, 8, 1, 32, 600000, tzinfo=UTC)


def _with_time(record: CelRecord, eventtime: str) -> str:
    values = dataclasses.asdict(dataclasses.replace(record, eventtime=eventtime))
    return ",".join('"' + str(v).replace('"', '""') + '"' for v in values.values())


# -- the providers' own published records (../shared/provider-samples), when present --------

SAMPLES = pf.SHARED_SAMPLES / "asterisk"
SAMPLE_CONTEXT = dataclasses.replace(
    pf.CONTEXT,
    default_policy_id=b.POLICY,
    # Wazo's PBX wrote local time at UTC-04:00 (SOURCES.md): the importer must be told.
    time_zone=ZoneInfo("America/New_York"),
    phone_for_endpoint={
        "100": "+15550100",
        "1603": "+15551603",
        "91800": "+15551800",
        "14201": "+15554201",
        "42307": "+15552307",
        "PJSIP/cul113qn": "+15550113",
        "CELTestChannel/Bob": "+15550111",
        "CELTestChannel/Charlie": "+4915550222",
    },
)
# sample -> (event types in file order, Unmapped codes in file order)
SAMPLE_OUTCOMES: dict[str, tuple[list[str], list[str]]] = {
    # Asterisk 10 self-test: empty caller ID; the only callees are Local halves (skipped).
    "A01-asterisk-testsuite-CELMaster1.csv": (["incoming_call.ended"], [INVALID_FIELD]),
    "A02-wazo-incoming-answered-2022-07-21.cel_custom.csv": (
        [
            "incoming_call.received",
            "incoming_call.dial_started",
            "incoming_call.dial_answered",
            "incoming_call.dial_ended",
            "incoming_call.ended",
        ],
        [UNKNOWN_EVENT, UNKNOWN_EVENT],  # Wazo's user-defined XIVO_/WAZO_ events
    ),
    "A03-wazo-incoming-noanswer-2022-07-07.cel_custom.csv": (
        [
            "incoming_call.received",
            "incoming_call.dial_started",
            "incoming_call.dial_ended",
            "incoming_call.ended",
        ],
        [UNKNOWN_EVENT, UNKNOWN_EVENT, UNKNOWN_EVENT],
    ),
    # The psql table had no extra column: the HANGUP's outcome is unknown.
    "A04-wazo-incoming-caller-hangup-before-dial-2024-09-24.cel_custom.csv": (
        ["incoming_call.received"],
        [MISSING_FIELD],
    ),
    "A05-dial-busy-from-test_cel.c.cel_custom.csv": (
        [
            "incoming_call.received",
            "incoming_call.dial_started",
            "incoming_call.ended",
            "incoming_call.dial_ended",
        ],
        [],
    ),
    "A06-hunt-bob-noanswer-charlie-answers-from-test_cel.c.cel_custom.csv": (
        [
            "incoming_call.received",
            "incoming_call.dial_started",
            "incoming_call.dial_ended",
            "incoming_call.dial_started",
            "incoming_call.dial_answered",
            "incoming_call.dial_ended",
            "incoming_call.ended",
        ],
        [],
    ),
    "A07-dial-congestion-from-test_cel.c.cel_custom.csv": (
        [
            "incoming_call.received",
            "incoming_call.dial_started",
            "incoming_call.ended",
            "incoming_call.dial_ended",
        ],
        [],
    ),
    "A08-dial-caller-cancel-from-test_cel.c.cel_custom.csv": (
        [
            "incoming_call.received",
            "incoming_call.dial_started",
            "incoming_call.dial_ended",
            "incoming_call.ended",
        ],
        [],
    ),
}
# sample -> (parent status, item statuses by start)
SAMPLE_STATUSES = {
    "A02-wazo-incoming-answered-2022-07-21.cel_custom.csv": ("Completed", ["Completed"]),
    "A03-wazo-incoming-noanswer-2022-07-07.cel_custom.csv": ("NoAnswer", ["NoAnswer"]),
    "A05-dial-busy-from-test_cel.c.cel_custom.csv": ("Busy", ["Busy"]),
    "A06-hunt-bob-noanswer-charlie-answers-from-test_cel.c.cel_custom.csv": (
        "Completed",
        ["NoAnswer", "Completed"],
    ),
    "A07-dial-congestion-from-test_cel.c.cel_custom.csv": ("Failed", ["Failed"]),
    "A08-dial-caller-cancel-from-test_cel.c.cel_custom.csv": ("CallerHungUp", ["CallerHungUp"]),
}


def _sample_files() -> list[Path]:
    return sorted(SAMPLES.rglob("*.csv")) if SAMPLES.is_dir() else []


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/provider-samples is not here")
def test_every_shared_sample_has_an_expected_outcome() -> None:
    assert sorted(p.name for p in _sample_files()) == sorted(SAMPLE_OUTCOMES)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="../shared/provider-samples is not here")
@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: p.name)
def test_shared_samples_normalize_as_expected(path: Path) -> None:
    normalized = ast.normalize_text(path.read_text(), SAMPLE_CONTEXT)
    types, codes = SAMPLE_OUTCOMES[path.name]
    assert [e["type"] for e in normalized.events] == types
    assert [u.code for u in normalized.unmapped] == codes
    for event in normalized.events:
        assert not isinstance(validate_object(dict(event)), Rejection), event
    if path.name in SAMPLE_STATUSES:
        tables = pf.rows_by_call(normalized.events)
        (parent,) = tables["incoming_call_log"]
        items = sorted(tables["incoming_call_log_item"], key=lambda r: r["started_at"])
        assert (parent["status"], [i["status"] for i in items]) == SAMPLE_STATUSES[path.name]
