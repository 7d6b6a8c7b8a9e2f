"""benchmarks/hot_path.py on a small traffic: every stage measured, and the unpack stage over
every distinct valid event of the traffic (each rests packed in its call once planned)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from benchmarks.hot_path import main
from devtools.planner_load import as_records
from devtools.traffic import generate_events
from worker.core.batch_plan import BatchPlanner
from worker.core.rates import load_rate_plan
from worker.core.valid_event import ValidEvent


def test_every_stage_is_measured_and_unpack_reads_every_distinct_event(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["--events", "1500", "--batch", "500", "--passes", "2", "--seed", "3", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(out["best_us"]) == {"baseline", "decode", "decode+plan", "unpack"}
    for stage, best in out["best_us"].items():
        assert 0 < best <= out["median_us"][stage]
    records = as_records(generate_events(1500, seed=3, invalid_share=0.02))
    decoded = BatchPlanner(load_rate_plan(None), timedelta(hours=4), 10_000)
    event_ids = {
        (key, ev.values["event_id"])
        for key, items in decoded.decode(records).by_call.items()
        for _, ev, _ in items
        if isinstance(ev, ValidEvent)
    }
    assert out["unpacked_events"] == len(event_ids) > 1000
