"""The process settings the worker applies at start (`worker.service.process_tuning`)."""

from __future__ import annotations

import gc
import platform
import sys
from collections.abc import Iterator

import pytest

from worker.service import process_tuning
from worker.service.process_tuning import GIL_SWITCH_INTERVAL_S, tune_process


@pytest.fixture
def restored() -> Iterator[None]:
    """The test process's own GIL and GC settings back afterwards (the allocator's stay)."""
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


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_glibc_accepts_every_allocator_setting() -> None:
    # mallopt answers 0 for a parameter or value it refuses.
    assert process_tuning.tune_malloc() is True


def test_another_allocator_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(platform, "libc_ver", lambda: ("musl", "1.2"))
    assert process_tuning.tune_malloc() is False
