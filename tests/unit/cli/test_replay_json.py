"""`ringlog replay --json` without Kafka (the replay itself replaced): one JSON object on
stdout and nothing else, the exit codes of the plain output."""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson
import pytest
from typer.testing import CliRunner

import worker.cli.replay as replay_cli
from worker.cli.main import app
from worker.core.decode import Rejection
from worker.pipeline.ports import BrokerUnavailable
from worker.service.replay import ReplaySummary
from worker.service.settings import Settings

ENV = {"RINGLOG_TOPIC": "events", "RINGLOG_DLQ_TOPIC": "events.dlq"}
TOO_LARGE = Rejection("message_too_large", "the event is 4194305 bytes as a Kafka record")
INVALID = Rejection("invalid_field", "occurred_at must be an RFC 3339 time", "occurred_at")


def acknowledged(summary: ReplaySummary) -> None:
    """What a replay of 10 lines leaves in its summary."""
    summary.lines, summary.blank, summary.produced, summary.refused = 10, 1, 7, 2
    summary.size = 12345
    summary.reasons = {"message_too_large": 1, "invalid_field": 1}
    summary.examples = [(3, TOO_LARGE), (8, INVALID)]


EXPECTED: dict[str, Any] = {
    "source": "-",
    "topic": "events",
    "dlq_topic": "events.dlq",
    "lines": 10,
    "blank": 1,
    "produced": 7,
    "refused": 2,
    "bytes": 12345,
    "reasons": {"invalid_field": 1, "message_too_large": 1},
    "examples": [
        {"line": 3, "code": "message_too_large", "message": TOO_LARGE.message, "field": None},
        {"line": 8, "code": "invalid_field", "message": INVALID.message, "field": "occurred_at"},
    ],
}


def test_summary_json_is_exact() -> None:
    summary = ReplaySummary()
    acknowledged(summary)
    settings = Settings(topic="events", dlq_topic="events.dlq")

    assert replay_cli.summary_json(summary, settings, "-", 2.0) == {
        **EXPECTED,
        "seconds": 2.0,
        "events_per_second": 3.5,
    }
    empty = replay_cli.summary_json(ReplaySummary(), settings, "-", 0.0)
    assert (empty["seconds"], empty["events_per_second"], empty["examples"]) == (0.0, 0.0, [])


def json_on_stdout(stdout: str) -> dict[str, Any]:
    assert stdout.endswith("\n") and stdout.count("\n") == 1, stdout  # one line, no more
    data: dict[str, Any] = orjson.loads(stdout)
    seconds = data.pop("seconds")
    rate = data.pop("events_per_second")
    assert isinstance(seconds, float) and isinstance(rate, float)
    return data


def test_json_summary_alone_on_stdout(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake(
        settings: Settings, source: str, stream: BinaryIO, total: int | None, s: ReplaySummary
    ) -> ReplaySummary:
        acknowledged(s)
        return s

    monkeypatch.setattr(replay_cli, "_replay", fake)

    result = CliRunner().invoke(app, ["replay", "--json", "-"], env=ENV, input=b"")

    assert result.exit_code == 0, result.output
    assert json_on_stdout(result.stdout) == EXPECTED
    assert result.stderr == ""


def test_json_after_a_kafka_failure_keeps_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake(
        settings: Settings, source: str, stream: BinaryIO, total: int | None, s: ReplaySummary
    ) -> ReplaySummary:
        acknowledged(s)  # acknowledged before Kafka went away
        raise BrokerUnavailable("producing to events: KafkaConnectionError()")

    monkeypatch.setattr(replay_cli, "_replay", fake)

    result = CliRunner().invoke(app, ["replay", "--json", "-"], env=ENV, input=b"")

    assert result.exit_code == 1
    assert json_on_stdout(result.stdout) == EXPECTED
    assert result.stderr == (
        "Kafka unavailable: producing to events: KafkaConnectionError()\n"
        "Rerun the replay: the worker drops what was already produced.\n"
    )
