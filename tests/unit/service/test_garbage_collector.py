"""worker.service.garbage_collector: cyclic garbage is freed on a clock, even with the
worker's GC thresholds, under which allocation counts alone would never collect it."""

from __future__ import annotations

import asyncio
import gc
import threading
import weakref
from collections.abc import Iterator

import pytest

from worker.service.garbage_collector import GarbageCollector
from worker.service.process_tuning import tune_gc


@pytest.fixture
def worker_thresholds() -> Iterator[None]:
    """The worker's GC settings, the test process's own back afterwards."""
    thresholds = gc.get_threshold()
    tune_gc()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()


class _Cycle:
    def __init__(self) -> None:
        self.me = self


def _garbage_cycle() -> weakref.ref[_Cycle]:
    """A reference cycle that nothing else refers to: only a collection frees it."""
    return weakref.ref(_Cycle())


def test_the_young_generations_each_time_everything_every_nth() -> None:
    asked: list[int] = []

    def collect(generation: int) -> int:
        asked.append(generation)
        return 0

    collector = GarbageCollector(every_s=1, full_every=3, collect=collect)
    for _ in range(7):
        collector.collect_once()
    assert asked == [1, 1, 2, 1, 1, 2, 1]


def test_a_cycle_is_freed_within_an_interval(worker_thresholds: None) -> None:
    async def scenario() -> tuple[bool, bool]:
        garbage = _garbage_cycle()
        collecting = asyncio.create_task(GarbageCollector(every_s=0.05).run())
        await asyncio.sleep(0.01)
        before = garbage() is not None  # not yet: refcounting alone never frees a cycle
        await asyncio.sleep(0.15)
        after = garbage() is not None
        collecting.cancel()
        return before, after

    assert asyncio.run(scenario()) == (True, False)


def test_a_cycle_that_reached_the_oldest_generation_is_freed_by_the_full_collection(
    worker_thresholds: None,
) -> None:
    collector = GarbageCollector(every_s=1, full_every=2)
    cycle = _Cycle()
    garbage = weakref.ref(cycle)
    collector.collect_once()  # young: the cycle, still referred to, moves to the oldest
    del cycle
    assert garbage() is not None  # garbage now, in the oldest generation
    collector.collect_once()  # the second: a full collection
    assert garbage() is None


def test_each_collection_is_followed_by_a_release_off_the_loops_thread() -> None:
    steps: list[tuple[str, int]] = []
    loop_thread = threading.get_ident()

    def collect(generation: int) -> int:
        steps.append(("collect", generation))
        return 0

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        two_released = asyncio.Event()

        def release() -> None:
            steps.append(("release", int(threading.get_ident() != loop_thread)))
            if len(steps) == 4:
                loop.call_soon_threadsafe(two_released.set)

        collector = GarbageCollector(every_s=0.02, full_every=2, collect=collect, release=release)
        collecting = asyncio.create_task(collector.run())
        await asyncio.wait_for(two_released.wait(), timeout=10)
        collecting.cancel()

    asyncio.run(scenario())
    # 1 in "release": it ran in another thread than the event loop's
    assert steps[:4] == [("collect", 1), ("release", 1), ("collect", 2), ("release", 1)]


def test_bad_intervals_are_refused() -> None:
    with pytest.raises(ValueError):
        GarbageCollector(every_s=0)
    with pytest.raises(ValueError):
        GarbageCollector(full_every=0)
