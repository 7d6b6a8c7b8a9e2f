"""The process settings the worker applies at start (`worker.service.process_tuning`)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator

import pytest

from worker.service.process_tuning import GIL_SWITCH_INTERVAL_S, tune_process


@pytest.fixture
def restored() -> Iterator[None]:
    """The test process's own GIL and GC settings back afterwards."""
    interval, thresholds = sys.getswitchinterval(), gc.get_threshold()
    yield
    sys.setswitchinterval(interval)
    gc.set_threshold(*thresholds)
    gc.unfreeze()


def test_the_worker_hands_the_gil_over_sooner_and_collects_less_often(restored: None) -> None:
    tune_process()

    assert sys.getswitchinterval() == pytest.approx(GIL_SWITCH_INTERVAL_S)
    assert GIL_SWITCH_INTERVAL_S < 0.005  # CPython's default
    assert gc.get_threshold() == (500_000, 20, 100)
