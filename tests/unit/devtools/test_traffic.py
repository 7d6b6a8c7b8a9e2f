"""Pure tests of the traffic generator (no Kafka): determinism, contract shape, mix, order."""

from __future__ import annotations

import itertools
import re
import uuid
from collections import Counter, defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from devtools.traffic import (
    CDR_DIRECTIONS,
    EVENT_TYPES,
    INVALID_CASES,
    Message,
    generate_calls,
    generate_events,
)

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3,6}(Z|[+-]\d{2}:\d{2})$")
E164 = re.compile(r"^\+[1-9]\d{1,14}$")
PHONE_FIELDS = (
    "caller_phone_number",
    "routing_phone_number",
    "user_phone_number",
    "to_number",
    "from_number",
)


def _utc_ms(ts: str) -> int:
    return int(datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.fixture(scope="module")
def sample() -> list[Message]:
    return list(generate_calls(600, seed=11))


@pytest.fixture(scope="module")
def valid_events(sample: list[Message]) -> list[tuple[Message, dict[str, Any]]]:
    return [(m, orjson.loads(m.value)) for m in sample if m.valid]


def test_same_seed_same_bytes() -> None:
    a = list(generate_calls(150, seed=5))
    b = list(generate_calls(150, seed=5))
    assert a == b
    c = list(generate_calls(150, seed=6))
    assert [m.value for m in a] != [m.value for m in c]


def test_generate_events_reaches_about_n() -> None:
    msgs = list(generate_events(3_000, seed=3))
    assert 3_000 <= len(msgs) < 3_300
    assert msgs == list(generate_events(3_000, seed=3))


def test_invalid_share_roughly_respected() -> None:
    msgs = list(generate_calls(1_500, seed=2, invalid_share=0.05))
    share = sum(not m.valid for m in msgs) / len(msgs)
    assert 0.035 < share < 0.065
    assert all(m.valid for m in generate_calls(300, seed=2, invalid_share=0.0))


def test_invalid_messages_have_keys_and_cover_the_cases() -> None:
    msgs = list(generate_calls(4_000, seed=4, invalid_share=0.05, oversized=1))
    invalid = [m for m in msgs if not m.valid]
    assert all(m.key for m in invalid)
    assert all(m.case in INVALID_CASES for m in invalid)
    seen = {m.case for m in invalid}
    missing = set(INVALID_CASES) - seen
    assert len(missing) <= 5, missing
    for case in ("not_utf8", "json_array", "json_scalar", "key_mismatch", "unknown_type",
                 "schema_version_2", "bad_uuid_project_id", "timestamp_without_offset",
                 "timestamp_epoch_number", "e164_no_plus", "negative_cost",
                 "negative_billable_seconds_dial", "oversized_source"):  # fmt: skip
        assert case in seen, case
    for m in invalid:
        if m.case == "key_mismatch":
            assert m.key != m.call_id.encode()
            assert orjson.loads(m.value)["call_id"] == m.call_id
        if m.case in ("not_utf8", "binary_garbage"):
            with pytest.raises(UnicodeDecodeError):
                m.value.decode("utf-8")
        if m.case == "oversized_source":
            assert len(m.value) > 2 * 1024 * 1024


def test_valid_messages_follow_the_envelope(
    valid_events: list[tuple[Message, dict[str, Any]]],
) -> None:
    projects: set[str] = set()
    for m, e in valid_events:
        assert isinstance(e, dict)
        assert m.key == e["call_id"].encode("utf-8") == m.call_id.encode("utf-8")
        assert isinstance(e["event_id"], str) and 1 <= len(e["event_id"]) <= 128
        assert e["type"] in EVENT_TYPES
        assert RFC3339.match(e["occurred_at"]), e["occurred_at"]
        assert str(uuid.UUID(e["project_id"])) == e["project_id"]
        projects.add(e["project_id"])
        assert 1 <= len(e["call_id"]) <= 128
        assert e.get("schema_version", 1) == 1
        seq = e.get("sequence")
        assert seq is None or (isinstance(seq, int) and seq >= 0)
        assert e.get("source") is None or len(e["source"]) <= 64
        for name in PHONE_FIELDS:
            if name in e:
                assert E164.match(e[name]), (name, e[name])
        for name in ("billable_seconds", "duration"):
            if e.get(name) is not None:
                assert isinstance(e[name], int) and e[name] >= 0
        if "cost_usd_cents" in e:
            assert float(e["cost_usd_cents"]) >= 0
        if e["type"] == "outbound_call.placed":
            assert isinstance(e["call_data"], dict)
    assert len(projects) == 3


def test_event_ids_unique_and_sequence_increases_with_time(
    valid_events: list[tuple[Message, dict[str, Any]]],
) -> None:
    by_id: dict[tuple[str, str], bytes] = {}
    per_call: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for m, e in valid_events:
        k = (e["call_id"], e["event_id"])
        if k in by_id:
            assert by_id[k] == m.value  # a repeated event_id is an exact duplicate
            continue
        by_id[k] = m.value
        if e.get("sequence") is not None:
            per_call[e["call_id"]].append((_utc_ms(e["occurred_at"]), e["sequence"]))
    for events in per_call.values():
        seqs = [s for _, s in sorted(events)]
        assert len(set(seqs)) == len(seqs)
        assert seqs == sorted(seqs)


def test_duplicates_exist_and_are_byte_identical(sample: list[Message]) -> None:
    counts = Counter(m.value for m in sample if m.valid)
    dup = sum(c - 1 for c in counts.values())
    assert 0.06 < dup / len(counts) < 0.14
    keys: dict[bytes, bytes | None] = {}
    for m in sample:
        if m.valid:
            assert keys.setdefault(m.value, m.key) == m.key
    assert not any(
        m.valid and counts[m.value] > 1 for m in generate_calls(200, seed=1, duplicate_share=0)
    )


def test_covers_the_contract(valid_events: list[tuple[Message, dict[str, Any]]]) -> None:
    events = [e for _, e in valid_events]
    assert {e["type"] for e in events} == set(EVENT_TYPES)
    of = defaultdict(list)
    for e in events:
        of[e["type"]].append(e)
    assert {e["outcome"] for e in of["incoming_call.dial_ended"]} == {
        "completed", "no_answer", "busy", "failed", "canceled"
    }  # fmt: skip
    assert {e["outcome"] for e in of["incoming_call.ended"]} == {
        "completed", "no_answer", "busy", "failed", "caller_hung_up"
    }  # fmt: skip
    assert {e["status"] for e in of["outbound_call.ended"]} == {
        "Success", "Error", "Low Balance", "Missed Call", "Busy"
    }  # fmt: skip
    cdrs = of["cdr.recorded"]
    assert {e["direction"] for e in cdrs} == set(CDR_DIRECTIONS)
    assert any("cost" in e for e in cdrs) and any("cost" not in e for e in cdrs)
    assert any(e.get("answered_at") == "" for e in cdrs)
    costs = of["call.cost_reported"]
    assert any(isinstance(e["cost_usd_cents"], str) for e in costs)
    assert any(isinstance(e["cost_usd_cents"], int | float) for e in costs)
    assert any(e["leg_id"] == e["call_id"] for e in costs)
    assert any(e["leg_id"] != e["call_id"] for e in costs)
    started = of["incoming_call.dial_started"]
    assert max(e.get("repeat_count", 0) for e in started) >= 1
    assert max(e.get("escalation_rule_order", 1) for e in started) >= 3
    stamps = [e["occurred_at"] for e in events]
    assert any(s.endswith("Z") for s in stamps)
    assert any(s.endswith("+00:00") for s in stamps)
    assert any(s.endswith("-05:00") for s in stamps)
    assert any(len(s.split(".")[1]) > 9 for s in stamps)  # microseconds + offset
    assert any("sequence" not in e for e in events)
    # a few calls are left open: no end event
    calls: dict[str, set[str]] = defaultdict(set)
    for e in events:
        calls[e["call_id"]].add(e["type"])
    opened = [t for t in calls.values() if "incoming_call.received" in t]
    assert any("incoming_call.ended" not in t for t in opened)
    assert sum("incoming_call.ended" in t for t in opened) > 0.9 * len(opened)


def test_mix_of_calls(valid_events: list[tuple[Message, dict[str, Any]]]) -> None:
    kinds: dict[str, str] = {}
    for _, e in valid_events:
        prefix = e["type"].split(".")[0]
        if prefix != "call":
            kinds[e["call_id"]] = prefix
    mix = Counter(kinds.values())
    total = sum(mix.values())
    assert 0.48 < mix["incoming_call"] / total < 0.66
    assert 0.24 < mix["outbound_call"] / total < 0.40
    assert 0.06 < mix["cdr"] / total < 0.16


def test_arrival_is_roughly_time_ordered_and_calls_overlap(sample: list[Message]) -> None:
    first: list[tuple[str, int, str]] = []  # (call_id, occurred, type) of first copies
    seen: set[bytes] = set()
    lateness: list[int] = []
    newest = 0
    for m in sample:
        if not m.valid:
            continue
        e = orjson.loads(m.value)
        t = _utc_ms(e["occurred_at"])
        newest = max(newest, t)
        if m.value in seen:
            assert newest - t < 15 * 60_000  # a re-send comes at most minutes later
            continue
        seen.add(m.value)
        lateness.append(newest - t)
        first.append((m.call_id, t, e["type"]))
    lateness.sort()
    assert lateness[len(lateness) * 95 // 100] < 15_000
    assert lateness[-1] < 3 * 60_000
    # events of one call sit together in time (cost reports come within the hour)
    span: dict[str, list[int]] = defaultdict(list)
    for cid, t, typ in first:
        if typ != "call.cost_reported":
            span[cid].append(t)
    assert all(max(ts) - min(ts) < 2 * 3600_000 for ts in span.values())
    # calls interleave (overlap in time) rather than arrive one after the other
    switches = sum(1 for a, b in itertools.pairwise(first) if a[0] != b[0])
    assert switches > 3 * len(span)
    # and some call's events arrive out of their time order
    by_call: dict[str, list[int]] = defaultdict(list)
    for cid, t, _ in first:
        by_call[cid].append(t)
    assert any(ts != sorted(ts) for ts in by_call.values())


def test_no_shuffle_keeps_each_call_in_time_order() -> None:
    by_call: dict[str, list[int]] = defaultdict(list)
    seen: set[bytes] = set()
    for m in generate_calls(300, seed=8, shuffle_within_call=False):
        if m.valid and m.value not in seen:
            seen.add(m.value)
            by_call[m.call_id].append(_utc_ms(orjson.loads(m.value)["occurred_at"]))
    assert all(ts == sorted(ts) for ts in by_call.values())


def test_fast_enough() -> None:
    import time

    t0 = time.perf_counter()
    n = sum(1 for _ in generate_events(20_000, oversized=0))
    assert n >= 20_000
    assert time.perf_counter() - t0 < 2.5  # ~100k msg/s on a 2-core machine


def test_the_decoder_agrees_with_the_valid_flag() -> None:
    """Generator and `worker.core.decode` read the same contract: every valid message is accepted,
    every invalid one rejected."""
    decode_mod = pytest.importorskip("worker.core.decode")
    disagreements = []
    for m in generate_calls(800, seed=13, invalid_share=0.05):
        result = decode_mod.decode(m.key, m.value)
        rejected = isinstance(result, decode_mod.Rejection)
        if rejected == m.valid:
            disagreements.append((m.case, m.value[:200], result))
    assert disagreements == []


def test_jsonl_round_trip(tmp_path: Path) -> None:
    from devtools.producer import read_jsonl

    msgs = list(generate_calls(300, seed=9, invalid_share=0.1))
    assert not any(b"\n" in m.value for m in msgs)
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(m.value + b"\n" for m in msgs))
    back = list(read_jsonl(path))
    assert [m.value for m in back] == [m.value for m in msgs]
    for orig, read in zip(msgs, back, strict=True):
        if orig.valid:
            assert read.key == orig.key
        elif read.key is not None:
            assert read.key == read.call_id.encode()
    keys = tmp_path / "keys.txt"
    keys.write_bytes(b"".join((m.key or b"") + b"\n" for m in msgs))
    assert [m.key for m in read_jsonl(path, keys)] == [m.key for m in msgs]
