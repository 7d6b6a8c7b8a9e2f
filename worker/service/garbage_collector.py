"""Cyclic garbage collected on a clock, so that it cannot pile up in a worker that runs for
weeks.

`worker.service.process_tuning.tune_gc` sets the young generation's threshold to 500,000 so
that a batch's objects are not scanned over and over. But CPython counts that threshold in
tracked objects allocated minus those freed, and a worker frees nearly everything it
allocates: its count stayed between 200k and 430k for a whole 10M-event soak (2026-12-06),
so no collection ran at all after start-up. Meanwhile each insert and commit left a reference
cycle behind (tenacity's retry state, about 26 tracked objects, some 3 a second), and nothing
freed them: at the end of that soak 2,772 of them waited, with 17,686 functions and 18,131
cells, against 1,973 and 566 at start (README "RSS over a long run (2026-12-06, fourth
session)").

`GarbageCollector.run` collects the young generations every `every_s` seconds (their
objects are the batches in flight and the calls cached since the last collection: ten
collections took 98 ms each on average, 264 ms at most, 2026-12-06) and everything, the call
cache included, every `full_every`-th time. Garbage then lives at most one interval in the
young generations, at most `full_every` intervals in the old one.

After each collection, `release` (`worker.service.allocator.release_free_heap`, in a thread of
its own) hands the pages glibc's heaps hold free back to the kernel: once a backlog is worked
off, an idle worker gives back what glibc kept of it (18 MiB in the case measured). pymalloc's
arenas do not go back this way (README "RSS over a long run (2026-12-06, fifth session)").
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Final

log = logging.getLogger("ringlog.gc")

EVERY_S: Final = 30.0
FULL_EVERY: Final = 20  # with EVERY_S, a full collection every 10 minutes
YOUNG: Final = 1  # generations 0 and 1: what survives moves to the oldest
OLDEST: Final = 2


class GarbageCollector:
    """Runs `collect` (gc.collect) on a clock: the young generations each time, all of them
    every `full_every`-th time; then `release`, if given, off the event loop's thread."""

    def __init__(
        self,
        every_s: float = EVERY_S,
        full_every: int = FULL_EVERY,
        collect: Callable[[int], int] = gc.collect,
        release: Callable[[], object] | None = None,
    ) -> None:
        if every_s <= 0 or full_every < 1:
            raise ValueError("every_s must be > 0 and full_every >= 1")
        self.every_s = every_s
        self.full_every = full_every
        self._collect = collect
        self._release = release
        self.collections = 0

    def collect_once(self) -> int:
        """One collection (the next in the cycle); the number of unreachable objects found."""
        self.collections += 1
        generation = OLDEST if self.collections % self.full_every == 0 else YOUNG
        started = time.perf_counter()
        found = self._collect(generation)
        log.debug(
            "collected generation %d: %d unreachable objects in %.3fs",
            generation,
            found,
            time.perf_counter() - started,
        )
        return found

    async def run(self) -> None:
        """Collect (and release) every `every_s` seconds until cancelled."""
        while True:
            await asyncio.sleep(self.every_s)
            self.collect_once()
            if self._release is not None:
                await asyncio.to_thread(self._release)
