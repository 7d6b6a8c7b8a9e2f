"""The cyclic garbage collector on a clock (worker.service.cycle_collector): with the automatic
collector off, a reference cycle stays until `CycleCollector` collects, and then goes."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections.abc import Iterator

import pytest

from worker.service.cycle_collector import CycleCollector, restore_gc, tune_gc


class _Node:
    def __init__(self) -> None:
        self.me = self


@pytest.fixture
def automatic_gc_restored() -> Iterator[None]:
    yield
    gc.unfreeze()
    restore_gc()


def _cycle() -> weakref.ref[_Node]:
    """A reference cycle nothing else refers to: only a collection frees it."""
    return weakref.ref(_Node())


def test_tune_gc_switches_the_automatic_collector_off(automatic_gc_restored: None) -> None:
    tune_gc()
    assert not gc.isenabled()
    assert gc.get_freeze_count() > 0
    garbage = _cycle()
    # Far past every threshold: allocations alone collect nothing.
    kept: list[list[int]] = [[] for _ in range(200_000)]
    del kept
    assert garbage() is not None
    assert CycleCollector().collect() >= 1
    assert garbage() is None
    restore_gc()
    assert gc.isenabled()


def test_the_collector_runs_on_its_clock_until_stopped(automatic_gc_restored: None) -> None:
    gc.disable()
    asyncio.run(_collect_on_a_clock())


async def _collect_on_a_clock() -> None:
    collector = CycleCollector(interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(collector.run(stop))
    garbage = _cycle()
    for _ in range(100):
        if garbage() is None:
            break
        await asyncio.sleep(0.02)
    assert garbage() is None
    assert collector.collections >= 1
    stop.set()
    await asyncio.wait_for(task, 1.0)  # stops at once, not at the next tick
    ran = collector.collections
    await asyncio.sleep(0.15)
    assert collector.collections == ran
