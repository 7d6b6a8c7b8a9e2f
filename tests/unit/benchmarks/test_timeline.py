"""Pure parts of benchmarks/timeline.py: the spans it records and the steady means it prints
(no Kafka, no worker)."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest

from benchmarks.timeline import (
    SPANS_ENV,
    Recorder,
    Span,
    load_spans,
    report,
    save_spans,
    spans_to_file_if_asked,
    steady_means,
)
from tests.support import builders as b
from worker.core.batch_plan import BatchPlanner


def span(stage: str, start: float, wall: float, cpu: float = 0.0, faults: int = 0) -> Span:
    return Span(stage, "MainThread", start, start + wall, cpu, faults, "")


def test_the_steady_means_leave_out_the_warm_up_and_the_checks_after_the_last_commit() -> None:
    spans = [
        span("fetch", 0.0, 0.1),
        span("decode", 0.1, 0.9, cpu=0.8, faults=9000),  # warm-up batch 1
        span("fetch", 1.0, 0.1),
        span("decode", 1.1, 0.7, cpu=0.6, faults=5000),  # warm-up batch 2
        span("fetch", 2.0, 0.05),
        span("decode", 2.1, 0.2, cpu=0.15, faults=10),
        span("commit", 2.4, 0.01),
        span("fetch", 3.0, 0.03),
        span("decode", 3.1, 0.3, cpu=0.25, faults=30),
        span("commit", 3.5, 0.01),
        span("chq", 4.0, 0.5),  # the benchmark's own count queries
    ]
    means = steady_means(spans)

    assert means["fetch"] == pytest.approx((2, 0.04, 0.0, 0.0))
    assert means["decode"] == pytest.approx((2, 0.25, 0.2, 20.0))
    assert "chq" not in means
    lines = report(spans).splitlines()
    assert lines[2].split() == ["fetch", "2", "40.0", "0.0", "0"]
    assert lines[3].split() == ["decode", "2", "250.0", "200.0", "20"]


def test_a_span_is_timed_on_the_thread_that_ran_it() -> None:
    rec = Recorder()

    def work() -> None:
        with rec.span("insert", "call_event:3"):
            sum(range(200_000))  # CPU on this thread
            time.sleep(0.05)  # waiting: wall, not CPU

    thread = threading.Thread(target=work, name="writer")
    thread.start()
    thread.join()

    (only,) = rec.spans
    assert (only.stage, only.thread, only.note) == ("insert", "writer", "call_event:3")
    assert only.wall >= 0.05
    assert 0 < only.cpu < only.wall


def test_spans_go_through_a_file_and_back_unchanged(tmp_path: Path) -> None:
    spans = [span("decode", 1.5, 0.25, cpu=0.2, faults=7), span("chq", 2.0, 0.01)]
    path = str(tmp_path / "spans.jsonl")
    save_spans(spans, path)

    assert load_spans(path) == spans


def test_the_worker_child_times_its_stages_only_when_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planner = BatchPlanner(b.test_rates(), timedelta(hours=1), 10)
    original = BatchPlanner.decode
    path = tmp_path / "spans.jsonl"

    with spans_to_file_if_asked():  # not asked: nothing wrapped, nothing written
        assert BatchPlanner.decode is original
    assert not path.exists()

    monkeypatch.setenv(SPANS_ENV, str(path))
    with spans_to_file_if_asked():
        assert BatchPlanner.decode is not original
        planner.decode([])
    assert BatchPlanner.decode is original  # unwrapped after the run
    assert [s.stage for s in load_spans(str(path))] == ["decode"]
