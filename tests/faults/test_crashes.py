"""kill -9 the worker at random moments while traffic flows; restart; exact rows at the end."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from devtools.fault_harness import Setup, crash_run

pytestmark = pytest.mark.kafka


def test_kill_9_three_times_over_500_calls(kafka_bootstrap: str, tmp_path: Path) -> None:
    setup = Setup(
        kafka_bootstrap,
        f"chdb://{tmp_path / 'store'}",
        extra_env={"RINGLOG_BATCH_MAX_EVENTS": "300"},
    )
    result = asyncio.run(crash_run(setup, calls=500, kills=3, seed=5, log_dir=tmp_path))
    assert result["starts"] == 4
    assert {k: v for k, v in result.items() if k not in ("starts", "messages")} == {
        "lost": 0,
        "unexpected": 0,
        "doubled": 0,
        "wrong": 0,
        "call_event_lost": 0,
        "call_event_doubled": 0,
        "rejected_lost": 0,
    }
