"""`ringlog replay FILE|-` against the local broker: what lands on the topic and on the DLQ,
byte for byte, and the summary's figures."""

from __future__ import annotations

import asyncio
import re
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner

from devtools.kafka_local import topic_end_offsets
from tests.support import builders as b
from worker.adapters.kafka.bulk_publisher import record_bytes
from worker.adapters.kafka.topics import MAX_MESSAGE_BYTES, ensure_topic
from worker.cli.main import app

pytestmark = pytest.mark.kafka

SUMMARY = re.compile(
    r"read (\d+) lines, produced (\d+) events, refused (\d+) lines, skipped (\d+) blank lines"
)


def read_topic(brokers: str, topic: str) -> list[Any]:
    """Every record of `topic`, partition by partition, in offset order (no group)."""

    async def read() -> list[Any]:
        ends = await topic_end_offsets(brokers, topic)
        consumer = AIOKafkaConsumer(bootstrap_servers=brokers, enable_auto_commit=False)
        await consumer.start()
        try:
            tps = [TopicPartition(topic, p) for p in sorted(ends)]
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            out: list[Any] = []
            while len(out) < sum(ends.values()):
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    out.extend(records)
            return sorted(out, key=lambda r: (r.partition, r.offset))
        finally:
            await consumer.stop()

    return asyncio.run(read())


def env_for(brokers: str) -> dict[str, str]:
    topic = f"t-replay-{uuid.uuid4().hex[:10]}"
    return {
        "RINGLOG_KAFKA_BROKERS": brokers,
        "RINGLOG_TOPIC": topic,
        "RINGLOG_DLQ_TOPIC": f"{topic}.dlq",
    }


def write_lines(tmp_path: Path, lines: list[bytes]) -> Path:
    """A JSON Lines file of `lines`, each ended by a newline."""
    path = tmp_path / "archive.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def summary_of(output: str) -> tuple[int, ...]:
    found = SUMMARY.search(output)
    assert found is not None, output
    return tuple(int(n) for n in found.groups())


def test_replay_publishes_valid_lines_and_dead_letters_the_rest(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    call = b.answered_on_second_attempt(f"call-replay-{uuid.uuid4().hex[:6]}")
    other = b.nobody_answers(f"call-other-{uuid.uuid4().hex[:6]}")
    valid = [orjson.dumps(e) for e in call + other]
    invalid = dict(call[1], occurred_at="yesterday")  # the contract refuses it
    no_call_id = {k: v for k, v in other[0].items() if k != "call_id"}
    lines = [
        *valid[: len(call)],
        valid[0],  # a duplicate: published, the worker drops it
        orjson.dumps(invalid),
        b"",  # blank: skipped, counted
        b"<html>502 Bad Gateway</html>",  # not JSON
        orjson.dumps(no_call_id),  # nothing to key it by
        *valid[len(call) :],
    ]
    # One line with a CRLF terminator: the terminator is not part of the event.
    text = b"\n".join(lines[:-1]) + b"\n" + lines[-1] + b"\r\n"
    path = tmp_path / "archive.jsonl"
    path.write_bytes(text)
    env = env_for(kafka_bootstrap)

    result = CliRunner().invoke(app, ["replay", str(path)], env=env)

    assert result.exit_code == 0, result.output
    published = [*valid[: len(call)], valid[0], *valid[len(call) :]]
    assert summary_of(result.output) == (len(lines), len(published), 3, 1)
    assert "  invalid_field: 1" in result.output
    assert "  invalid_json: 1" in result.output
    assert "  missing_field: 1" in result.output
    number = len(call) + 2  # the invalid event's line
    assert f"  line {number}: invalid_field: occurred_at must be" in result.output

    records = read_topic(kafka_bootstrap, env["RINGLOG_TOPIC"])
    assert sorted(r.value for r in records) == sorted(published)  # exact bytes, each once
    for record in records:
        assert record.key == orjson.loads(record.value)["call_id"].encode()
    for events in (call, other):  # a call on one partition, in the file's order
        ids = {e["event_id"] for e in events}
        mine = [r for r in records if orjson.loads(r.value)["event_id"] in ids]
        assert len({r.partition for r in mine}) == 1
        in_order = [orjson.loads(r.value)["event_id"] for r in mine]
        expected = [e["event_id"] for e in events]
        if events is call:
            expected.append(events[0]["event_id"])  # the duplicate came after the call
        assert in_order == expected

    dead = read_topic(kafka_bootstrap, env["RINGLOG_DLQ_TOPIC"])
    letters = sorted((orjson.loads(r.value) for r in dead), key=lambda d: d["source"]["line"])
    expected_letters: list[tuple[Any, ...]] = [
        (number, "invalid_field", "occurred_at", call[1]["call_id"], orjson.dumps(invalid)),
        (number + 2, "invalid_json", None, None, lines[number + 1]),
        (number + 3, "missing_field", "call_id", None, orjson.dumps(no_call_id)),
    ]
    assert [
        (
            d["source"]["line"],
            d["error"]["code"],
            d["error"]["field"],
            d["source"]["key"],
            d["payload"].encode(),
        )
        for d in letters
    ] == expected_letters
    assert all(d["source"]["replay"] == str(path) for d in letters)
    assert all(d["payload_encoding"] == "utf-8" and d["rejected_at"] for d in letters)
    assert sorted(r.key for r in dead if r.key) == [call[1]["call_id"].encode()]


def test_replay_reads_stdin(kafka_bootstrap: str) -> None:
    events = b.caller_hangs_up(f"call-stdin-{uuid.uuid4().hex[:6]}")
    text = b"".join(orjson.dumps(e) + b"\n" for e in events) + b"\xff\xfe not utf-8\n"
    env = env_for(kafka_bootstrap)

    result = CliRunner().invoke(app, ["replay", "-"], env=env, input=text)

    assert result.exit_code == 0, result.output
    assert summary_of(result.output) == (len(events) + 1, len(events), 1, 0)
    assert "  not_utf8: 1" in result.output
    assert len(read_topic(kafka_bootstrap, env["RINGLOG_TOPIC"])) == len(events)
    [letter] = read_topic(kafka_bootstrap, env["RINGLOG_DLQ_TOPIC"])
    body = orjson.loads(letter.value)
    assert (body["source"]["replay"], body["payload_encoding"]) == ("-", "base64")


def test_replay_help_and_a_missing_file(tmp_path: Path) -> None:
    runner = CliRunner()
    shown = runner.invoke(app, ["replay", "--help"])
    assert shown.exit_code == 0
    assert "FILE|-" in shown.output and "--dlq-topic" in shown.output

    missing = tmp_path / "nowhere.jsonl"
    result = runner.invoke(app, ["replay", str(missing)])
    assert result.exit_code == 2
    assert f"no such file: {missing}" in result.output

    no_argument = runner.invoke(app, ["replay"])
    assert no_argument.exit_code == 2
    assert "Missing argument" in no_argument.output


def test_replay_dead_letters_a_line_too_large_for_kafka_and_prints_json(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """A valid event above the topics' max.message.bytes (as the local broker sets it too):
    dead-lettered with its line number and a prefix that fits, the rest produced, the
    summary as JSON alone on stdout."""
    call_id = f"call-big-{uuid.uuid4().hex[:6]}"
    events = b.caller_hangs_up(call_id)
    valid = [orjson.dumps(e) for e in events]
    big = orjson.dumps(dict(events[1], event_id="big", note="x" * MAX_MESSAGE_BYTES))
    # The largest event that goes: exactly MAX_MESSAGE_BYTES as a record (the broker agrees).
    pad = MAX_MESSAGE_BYTES - record_bytes(call_id.encode(), valid[2]) - len(',"note":""')
    largest = orjson.dumps(dict(events[2], note="y" * pad))
    pad -= record_bytes(call_id.encode(), largest) - MAX_MESSAGE_BYTES  # longer length prefixes
    largest = orjson.dumps(dict(events[2], note="y" * pad))
    assert record_bytes(call_id.encode(), largest) == MAX_MESSAGE_BYTES
    valid[2] = largest
    lines = [valid[0], big, b"", *valid[1:]]
    path = write_lines(tmp_path, lines)
    env = env_for(kafka_bootstrap)

    result = CliRunner().invoke(app, ["replay", "--json", str(path)], env=env)

    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1, result.stdout  # one JSON line, nothing else
    summary = orjson.loads(result.stdout)
    seconds, rate = summary.pop("seconds"), summary.pop("events_per_second")
    assert isinstance(seconds, float) and isinstance(rate, float)  # wall time: not asserted
    size = record_bytes(call_id.encode(), big)
    message = (
        f"the event is {size} bytes as a Kafka record, above the topic's limit of "
        f"{MAX_MESSAGE_BYTES} bytes (max.message.bytes)"
    )
    assert summary == {
        "source": str(path),
        "topic": env["RINGLOG_TOPIC"],
        "dlq_topic": env["RINGLOG_DLQ_TOPIC"],
        "lines": 7,
        "blank": 1,
        "produced": len(valid),
        "refused": 1,
        "bytes": sum(len(line) + 1 for line in lines),
        "reasons": {"message_too_large": 1},
        "examples": [{"line": 2, "code": "message_too_large", "message": message, "field": None}],
    }

    records = read_topic(kafka_bootstrap, env["RINGLOG_TOPIC"])
    assert [r.value for r in records] == valid  # one call: one partition, the file's order
    [letter] = read_topic(kafka_bootstrap, env["RINGLOG_DLQ_TOPIC"])
    assert len(letter.value) <= MAX_MESSAGE_BYTES  # it went through Kafka: it fit
    body = orjson.loads(letter.value)
    rejected_at = body.pop("rejected_at")
    payload = body["payload"]
    assert rejected_at.endswith("Z") and len(payload) > MAX_MESSAGE_BYTES - 1024
    assert (letter.key, body) == (
        call_id.encode(),
        {
            "error": {"code": "message_too_large", "message": message, "field": None},
            "source": {"replay": str(path), "line": 2, "key": call_id},
            "payload": big[: len(payload)].decode(),
            "payload_encoding": "utf-8",
            "payload_bytes": len(big),
            "payload_truncated": True,
        },
    )


ONE_MIB = 1024 * 1024


def create_topic(brokers: str, topic: str, max_message_bytes: int) -> None:
    """`topic` as an operator made it: a max.message.bytes of their own, below ringlog's."""
    asyncio.run(ensure_topic(brokers, topic, max_message_bytes=max_message_bytes))


def test_replay_refuses_a_line_above_the_input_topics_own_lower_limit(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The input topic exists with max.message.bytes = 1 MiB (below the 4 MiB ringlog gives
    its topics): a valid line of about 1.5 MiB is dead-lettered as message_too_large with its
    line number, by the topic's own limit, instead of being sent and failing the run."""
    call_id = f"call-1mib-{uuid.uuid4().hex[:6]}"
    events = b.caller_hangs_up(call_id)
    valid = [orjson.dumps(e) for e in events]
    big = orjson.dumps(dict(events[1], event_id="big", note="x" * (ONE_MIB * 3 // 2)))
    lines = [valid[0], big, *valid[1:]]
    path = write_lines(tmp_path, lines)
    env = env_for(kafka_bootstrap)
    create_topic(kafka_bootstrap, env["RINGLOG_TOPIC"], ONE_MIB)

    result = CliRunner().invoke(app, ["replay", "--json", str(path)], env=env)

    assert result.exit_code == 0, result.output
    summary = orjson.loads(result.stdout)
    del summary["seconds"], summary["events_per_second"]
    message = (
        f"the event is {record_bytes(call_id.encode(), big)} bytes as a Kafka record, above "
        f"the topic's limit of {ONE_MIB} bytes (max.message.bytes)"
    )
    assert summary == {
        "source": str(path),
        "topic": env["RINGLOG_TOPIC"],
        "dlq_topic": env["RINGLOG_DLQ_TOPIC"],
        "lines": len(lines),
        "blank": 0,
        "produced": len(valid),
        "refused": 1,
        "bytes": sum(len(line) + 1 for line in lines),
        "reasons": {"message_too_large": 1},
        "examples": [{"line": 2, "code": "message_too_large", "message": message, "field": None}],
    }
    assert "could not read" not in result.output  # the limit was read, not assumed

    records = read_topic(kafka_bootstrap, env["RINGLOG_TOPIC"])
    assert [r.value for r in records] == valid  # one call: one partition, the file's order
    [letter] = read_topic(kafka_bootstrap, env["RINGLOG_DLQ_TOPIC"])
    body = orjson.loads(letter.value)
    assert body.pop("rejected_at").endswith("Z")
    # The DLQ topic was auto-created with the broker's 4 MiB: the whole line fits in it.
    assert (letter.key, body) == (
        call_id.encode(),
        {
            "error": {"code": "message_too_large", "message": message, "field": None},
            "source": {"replay": str(path), "line": 2, "key": call_id},
            "payload": big.decode(),
            "payload_encoding": "utf-8",
            "payload_bytes": len(big),
            "payload_truncated": False,
        },
    )


def test_replay_cuts_a_dead_letter_to_the_dead_letter_topics_own_lower_limit(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The DLQ topic exists with max.message.bytes = 1 MiB: an invalid line of about 1.5 MiB
    is dead-lettered with the longest prefix that fits that limit, not the 4 MiB one (which
    Kafka would refuse, failing the run)."""
    call_id = f"call-dlq-{uuid.uuid4().hex[:6]}"
    events = b.caller_hangs_up(call_id)
    valid = [orjson.dumps(e) for e in events]
    invalid = orjson.dumps(dict(events[1], occurred_at="yesterday", note="y" * (ONE_MIB * 3 // 2)))
    lines = [valid[0], invalid, *valid[1:]]
    path = write_lines(tmp_path, lines)
    env = env_for(kafka_bootstrap)
    create_topic(kafka_bootstrap, env["RINGLOG_DLQ_TOPIC"], ONE_MIB)

    result = CliRunner().invoke(app, ["replay", str(path)], env=env)

    assert result.exit_code == 0, result.output
    assert summary_of(result.output) == (len(lines), len(valid), 1, 0)
    assert "  invalid_field: 1" in result.output
    assert [r.value for r in read_topic(kafka_bootstrap, env["RINGLOG_TOPIC"])] == valid
    [letter] = read_topic(kafka_bootstrap, env["RINGLOG_DLQ_TOPIC"])
    assert record_bytes(letter.key, letter.value) <= ONE_MIB
    body = orjson.loads(letter.value)
    payload = body["payload"]
    assert len(payload) > ONE_MIB - 1024  # the longest prefix that fits, not a stub
    assert (body["source"], body["error"]["code"], body["error"]["field"]) == (
        {"replay": str(path), "line": 2, "key": call_id},
        "invalid_field",
        "occurred_at",
    )
    assert (payload, body["payload_bytes"], body["payload_truncated"]) == (
        invalid[: len(payload)].decode(),
        len(invalid),
        True,
    )
