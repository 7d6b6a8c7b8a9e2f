"""Python's cyclic garbage collector on a clock instead of on allocation counts.

CPython collects its youngest generation every N allocations (`gc.set_threshold`), and each
collection traverses every container object still alive. The worker allocates about 50
objects per event and keeps each batch alive for two batch times (prepared while the one
before is written), so nearly every object is traversed once or twice before refcounting frees
it: at a threshold of 500k allocations, 9-10% of the prepare's CPU (decode and plan, the
generator's traffic, 2026-12-03; none at all with the collector off).

Refcounting frees everything but reference cycles, and the hot path makes next to none, so
`tune_gc` switches the automatic collector off and `CycleCollector` runs a full collection
every `interval` seconds on the event loop: cyclic garbage (an exception's traceback, a
library's closure) lives at most that long. A full collection takes milliseconds to a few tens
of them (the call cache rests as bytes, which the collector never traverses).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time

log = logging.getLogger("ringlog.gc")

COLLECT_EVERY_SECONDS = 30.0


def tune_gc() -> None:
    """Objects alive after start-up (modules, schemas) are never traversed again, and the
    automatic collector is off: `CycleCollector` collects on a clock (see the module doc)."""
    gc.freeze()
    gc.disable()


def restore_gc() -> None:
    """The automatic collector back on (a worker stopped; the process goes on)."""
    gc.enable()


class CycleCollector:
    """Runs `gc.collect()` every `interval` seconds until stopped."""

    def __init__(self, interval: float = COLLECT_EVERY_SECONDS) -> None:
        self.interval = interval
        self.collections = 0

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval)
            if not stop.is_set():
                self.collect()

    def collect(self) -> int:
        """One full collection; the number of unreachable objects it found."""
        started = time.perf_counter()
        found = gc.collect()
        self.collections += 1
        log.debug(
            "garbage collection: %d unreachable objects in %.1f ms",
            found,
            (time.perf_counter() - started) * 1000,
        )
        return found
