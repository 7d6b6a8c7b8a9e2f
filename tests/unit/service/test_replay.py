"""`Replayer` without Kafka: which lines are produced, the exact dead letters (a line Kafka
would refuse for its size included, with its bounded payload) and the exact summary."""

from __future__ import annotations

import asyncio
import base64
import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest

from tests.support import builders as b
from worker.adapters.kafka.bulk_publisher import Acks, BulkPublisher, record_bytes
from worker.adapters.kafka.dead_letters import DeadLetterProducer
from worker.adapters.kafka.topics import MAX_MESSAGE_BYTES, LimitUnknown
from worker.core.decode import Rejection
from worker.service.replay import MESSAGE_TOO_LARGE, Replayer, ReplaySummary
from worker.service.settings import Settings

SOURCE = "archive.jsonl"
RFC3339_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


class FakePublisher(BulkPublisher):
    """Records what would be produced; every batch is acknowledged at once."""

    def __init__(self) -> None:
        self.topic = "events"
        self.sent: list[tuple[bytes, bytes]] = []

    async def send(self, records: Sequence[tuple[bytes, bytes]]) -> Acks:
        self.sent.extend(records)
        return Acks(self.topic, [], len(records))


class FakeDeadLetters(DeadLetterProducer):
    def __init__(self) -> None:
        self.topic = "events.dlq"
        self.sent: list[tuple[bytes | None, bytes]] = []

    async def send(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.sent.extend(records)


def replay(
    lines: list[bytes], limits: Mapping[str, int | LimitUnknown] | None = None
) -> tuple[ReplaySummary, list[tuple[bytes, bytes]], list[Any]]:
    """(summary, produced records, dead letters as (key, decoded envelope)); with `limits`,
    the topics' max.message.bytes as the brokers would describe them ("events", "events.dlq")
    are read first, as `Replayer.start` does."""

    async def run() -> tuple[ReplaySummary, FakePublisher, FakeDeadLetters, int]:
        replayer = Replayer(Settings(), SOURCE)  # aiokafka's clients need a running loop
        await replayer.stop()  # its real producers, never started: closed, then replaced
        events, dead = FakePublisher(), FakeDeadLetters()
        replayer.events, replayer.dead_letters = events, dead
        if limits is not None:

            async def described(topics: Sequence[str]) -> Mapping[str, int | LimitUnknown]:
                assert list(topics) == ["events", "events.dlq"]
                return limits

            replayer.topic_limits = described
            await replayer.read_limits()
        await replayer.replay(lines)
        return replayer.summary, events, dead, replayer.dead_letter_limit

    summary, events, dead, dead_letter_limit = asyncio.run(run())
    for key, letter in dead.sent:
        assert record_bytes(key, letter) <= dead_letter_limit  # every dead letter fits Kafka
    return summary, events.sent, [(key, orjson.loads(letter)) for key, letter in dead.sent]


def without_clock(envelope: dict[str, Any]) -> dict[str, Any]:
    assert RFC3339_MS_Z.fullmatch(envelope["rejected_at"]), envelope["rejected_at"]
    return {k: v for k, v in envelope.items() if k != "rejected_at"}


def padded(event: dict[str, Any], record: int) -> bytes:
    """`event` with an extra field (ignored by the contract) that makes it exactly `record`
    bytes as a Kafka record keyed by its call_id."""
    key = event["call_id"].encode()
    n = record - record_bytes(key, orjson.dumps(dict(event, note="")))
    while record_bytes(key, value := orjson.dumps(dict(event, note="x" * n))) > record:
        n -= 1  # the record's length prefix grows with the value
    assert record_bytes(key, value) == record
    return value


def test_a_line_too_large_for_kafka_is_dead_lettered_and_the_rest_goes_through() -> None:
    events = b.caller_hangs_up("call-big")
    key = b"call-big"
    first, *rest = [orjson.dumps(e) for e in events]
    at_limit = padded(dict(events[0], event_id="at-limit"), MAX_MESSAGE_BYTES)
    too_large = padded(dict(events[0], event_id="too-large"), MAX_MESSAGE_BYTES + 1)
    lines = [first, at_limit, too_large + b"\r", b"", *rest]
    lines = [line + b"\n" for line in lines]

    summary, produced, dead = replay(lines)

    assert produced == [(key, first), (key, at_limit), *((key, r) for r in rest)]
    why = Rejection(
        MESSAGE_TOO_LARGE,
        f"the event is {MAX_MESSAGE_BYTES + 1} bytes as a Kafka record, above the topic's "
        f"limit of {MAX_MESSAGE_BYTES} bytes (max.message.bytes)",
    )
    assert summary == ReplaySummary(
        lines=len(lines),
        blank=1,
        produced=len(events) + 1,
        refused=1,
        size=sum(len(line) for line in lines),
        reasons={MESSAGE_TOO_LARGE: 1},
        examples=[(3, why)],
    )
    [(dead_key, envelope)] = dead
    assert dead_key == key
    payload = envelope["payload"]
    assert without_clock(envelope) == {
        "error": {"code": MESSAGE_TOO_LARGE, "message": why.message, "field": None},
        "source": {"replay": SOURCE, "line": 3, "key": "call-big"},
        "payload": too_large[: len(payload)].decode(),  # a prefix of the line, no terminator
        "payload_encoding": "utf-8",
        "payload_bytes": len(too_large),
        "payload_truncated": True,
    }
    # The longest prefix that fits: one more byte of the line would not.
    longer = dict(envelope, payload=too_large[: len(payload) + 1].decode())
    assert record_bytes(key, orjson.dumps(longer)) > MAX_MESSAGE_BYTES


def test_a_refused_line_keeps_its_whole_text_when_it_fits() -> None:
    event = b.caller_hangs_up("call-small")[0]
    invalid = orjson.dumps(dict(event, occurred_at="yesterday"))
    lines = [invalid + b"\n", b"\xff not utf-8"]

    summary, produced, dead = replay(lines)

    assert produced == []
    assert [(key, without_clock(envelope)) for key, envelope in dead] == [
        (
            b"call-small",
            {
                "error": {
                    "code": "invalid_field",
                    "message": dead[0][1]["error"]["message"],  # the decoder's own words
                    "field": "occurred_at",
                },
                "source": {"replay": SOURCE, "line": 1, "key": "call-small"},
                "payload": invalid.decode(),
                "payload_encoding": "utf-8",
                "payload_bytes": len(invalid),
                "payload_truncated": False,
            },
        ),
        (
            None,
            {
                "error": {
                    "code": "not_utf8",
                    "message": "payload is not UTF-8: invalid start byte",
                    "field": None,
                },
                "source": {"replay": SOURCE, "line": 2, "key": None},
                "payload": base64.b64encode(b"\xff not utf-8").decode(),
                "payload_encoding": "base64",
                "payload_bytes": 11,
                "payload_truncated": False,
            },
        ),
    ]
    assert dead[0][1]["error"]["message"].startswith("occurred_at")
    assert (summary.refused, summary.reasons) == (2, {"invalid_field": 1, "not_utf8": 1})
    assert [number for number, _ in summary.examples] == [1, 2]


def test_an_oversized_line_that_is_not_utf8_keeps_a_base64_prefix() -> None:
    value = b"\xff" * (MAX_MESSAGE_BYTES + 10)  # the decoder's reason comes first

    summary, produced, dead = replay([value])

    assert produced == []
    [(key, envelope)] = dead
    payload = base64.b64decode(envelope["payload"])
    assert key is None
    assert without_clock(envelope) == {
        "error": {
            "code": "not_utf8",
            "message": "payload is not UTF-8: invalid start byte",
            "field": None,
        },
        "source": {"replay": SOURCE, "line": 1, "key": None},
        "payload": base64.b64encode(value[: len(payload)]).decode(),
        "payload_encoding": "base64",
        "payload_bytes": len(value),
        "payload_truncated": True,
    }
    longer = dict(envelope, payload=base64.b64encode(value[: len(payload) + 3]).decode())
    assert record_bytes(None, orjson.dumps(longer)) > MAX_MESSAGE_BYTES
    assert summary.reasons == {"not_utf8": 1}


def test_escapes_count_against_the_room_of_a_truncated_payload() -> None:
    # A control character takes 6 bytes in a JSON string (\u0001): the prefix is cut by its
    # escaped size, not by its length.
    value = b"\x01" * MAX_MESSAGE_BYTES

    _, produced, dead = replay([value])

    assert produced == []
    [(key, envelope)] = dead
    kept = len(envelope["payload"])
    assert (key, envelope["error"]["code"], envelope["payload_truncated"]) == (
        None,
        "invalid_json",
        True,
    )
    assert envelope["payload"] == "\x01" * kept
    longer = dict(envelope, payload="\x01" * (kept + 1))
    assert record_bytes(None, orjson.dumps(longer)) > MAX_MESSAGE_BYTES
    assert kept < MAX_MESSAGE_BYTES // 6  # each one escaped to 6 bytes


def test_a_call_id_too_large_to_key_a_dead_letter_leaves_it_unkeyed() -> None:
    event = b.caller_hangs_up("call-x")[0]
    value = orjson.dumps(dict(event, call_id="c" * MAX_MESSAGE_BYTES))

    summary, _, dead = replay([value])

    [(key, envelope)] = dead
    assert (key, envelope["source"]["key"], envelope["payload_truncated"]) == (None, None, True)
    assert (envelope["error"]["code"], envelope["error"]["field"]) == ("invalid_field", "call_id")
    assert summary.refused == 1


def test_a_truncated_payload_never_cuts_a_character_in_two() -> None:
    value = "é".encode() * MAX_MESSAGE_BYTES  # not JSON; two bytes a character

    _, _, dead = replay([value])

    [(_, envelope)] = dead
    kept = len(envelope["payload"])
    assert envelope["payload"] == "é" * kept
    longer = dict(envelope, payload="é" * (kept + 1))
    assert record_bytes(None, orjson.dumps(longer)) > MAX_MESSAGE_BYTES


ONE_MIB = 1024 * 1024


def too_large(size: int, limit: int) -> Rejection:
    return Rejection(
        MESSAGE_TOO_LARGE,
        f"the event is {size} bytes as a Kafka record, above the topic's limit of {limit} "
        "bytes (max.message.bytes)",
    )


def test_a_line_above_the_input_topics_own_lower_limit_is_dead_lettered_whole() -> None:
    # The input topic was made with max.message.bytes = 1 MiB; the DLQ topic takes 4 MiB.
    events = b.caller_hangs_up("call-1mib")
    key = b"call-1mib"
    first, *rest = [orjson.dumps(e) for e in events]
    at_limit = padded(dict(events[0], event_id="at-limit"), ONE_MIB)
    over = padded(dict(events[0], event_id="over"), ONE_MIB + 1)
    lines = [first, at_limit, over, *rest]

    summary, produced, dead = replay(lines, {"events": ONE_MIB, "events.dlq": MAX_MESSAGE_BYTES})

    assert produced == [(key, first), (key, at_limit), *((key, r) for r in rest)]
    why = too_large(ONE_MIB + 1, ONE_MIB)
    assert summary == ReplaySummary(
        lines=len(lines),
        blank=0,
        produced=len(events) + 1,
        refused=1,
        size=sum(len(line) for line in lines),
        reasons={MESSAGE_TOO_LARGE: 1},
        examples=[(3, why)],
    )
    assert [(k, without_clock(envelope)) for k, envelope in dead] == [
        (
            key,
            {
                "error": {"code": MESSAGE_TOO_LARGE, "message": why.message, "field": None},
                "source": {"replay": SOURCE, "line": 3, "key": "call-1mib"},
                "payload": over.decode(),  # the DLQ topic takes it whole
                "payload_encoding": "utf-8",
                "payload_bytes": len(over),
                "payload_truncated": False,
            },
        )
    ]


def test_a_dead_letter_keeps_the_longest_prefix_the_dead_letter_topics_limit_takes() -> None:
    dlq_limit = 64 * 1024
    event = b.caller_hangs_up("call-dlq")[0]
    invalid = orjson.dumps(dict(event, occurred_at="yesterday", note="n" * dlq_limit))

    summary, produced, dead = replay([invalid], {"events": ONE_MIB, "events.dlq": dlq_limit})

    assert (produced, summary.refused, summary.reasons) == ([], 1, {"invalid_field": 1})
    [(key, envelope)] = dead
    payload = envelope["payload"]
    assert (
        without_clock(envelope)
        == {
            "error": {
                "code": "invalid_field",
                "message": envelope["error"]["message"],  # the decoder's own words
                "field": "occurred_at",
            },
            "source": {"replay": SOURCE, "line": 1, "key": "call-dlq"},
            "payload": invalid[: len(payload)].decode(),
            "payload_encoding": "utf-8",
            "payload_bytes": len(invalid),
            "payload_truncated": True,
        }
    )
    assert key == b"call-dlq"
    assert record_bytes(key, orjson.dumps(envelope)) <= dlq_limit
    longer = dict(envelope, payload=invalid[: len(payload) + 1].decode())
    assert record_bytes(key, orjson.dumps(longer)) > dlq_limit  # one byte more would not fit


def test_a_topic_limit_above_ringlogs_own_is_capped_at_it() -> None:
    # The producer's max request size is MAX_MESSAGE_BYTES: a larger topic limit cannot be used.
    event = b.caller_hangs_up("call-cap")[0]
    over = padded(dict(event, event_id="over"), MAX_MESSAGE_BYTES + 1)
    huge = 64 * MAX_MESSAGE_BYTES

    summary, produced, dead = replay([over], {"events": huge, "events.dlq": huge})

    assert produced == []
    assert summary.examples == [(1, too_large(MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES))]
    [(_, envelope)] = dead
    assert envelope["payload_truncated"] is True  # cut to MAX_MESSAGE_BYTES, not to `huge`


def test_a_limit_that_cannot_be_read_falls_back_to_ringlogs_own_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = b.caller_hangs_up("call-denied")[0]
    first = orjson.dumps(event)
    between = padded(dict(event, event_id="between"), ONE_MIB + 1)  # under 4 MiB: produced
    over = padded(dict(event, event_id="over"), MAX_MESSAGE_BYTES + 1)
    denied = LimitUnknown("describing the configs of topic 'events': TopicAuthorizationFailedError")

    with caplog.at_level(logging.WARNING, logger="worker.service.replay"):
        summary, produced, dead = replay(
            [first, between, over], {"events": denied, "events.dlq": ONE_MIB}
        )

    assert produced == [(b"call-denied", first), (b"call-denied", between)]
    assert summary.examples == [(3, too_large(MAX_MESSAGE_BYTES + 1, MAX_MESSAGE_BYTES))]
    [(_, envelope)] = dead
    assert envelope["payload_truncated"] is True  # the DLQ's limit was read: 1 MiB
    assert record_bytes(b"call-denied", orjson.dumps(envelope)) <= ONE_MIB
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "WARNING",
            "could not read the max.message.bytes of topic events (describing the configs "
            "of topic 'events': TopicAuthorizationFailedError): assuming 4194304 bytes, the "
            "limit of the topics ringlog creates; if the topic's own limit is lower, Kafka "
            "refuses a larger record and the replay fails",
        )
    ]
