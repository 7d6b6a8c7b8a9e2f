"""How the worker's process is tuned at start: the garbage collector, the GIL's switch
interval and the C allocator. Each knob is set once, before the first batch, by
`tune_process` (`worker.service.lifecycle.build_worker`); `benchmarks/stages.py` calls the
same function so its figures are the worker's.

The worker runs on two threads that both need the GIL: the event loop's (fetch, decode,
plan: nearly all of it under the GIL) and the writer's (the inserts: mostly in ClickHouse,
without the GIL, with short Python steps between). Measured on the benchmark's batches
(2026-12-04, 20k events, the embedded store), per batch: the writer's inserts took 0.28-0.47 s
of which ClickHouse's queries took about 0.17 s; the rest was waiting for the GIL (each of
its 30-40 returns from I/O waited up to the 5 ms switch interval behind the event loop's
thread) and page faults (see `tune_malloc`). Both tuned: 0.18-0.21 s, under the loop's
0.33-0.40 s.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import platform
import sys
from typing import Final

log = logging.getLogger("ringlog.worker")

GIL_SWITCH_INTERVAL_S: Final = 0.0005
"""How long a thread that wants the GIL waits before asking its holder to let go (CPython's
default: 5 ms). The writer's thread asks after each insert step that released it; at 5 ms a
batch's inserts spent about 0.1 s just waiting, with the event loop's thread running Python
the whole time, and the writer was the slower of the two. Shorter hands the writer the GIL
sooner but takes it from the loop's thread more often, which is now the bottleneck. Measured
with `python -m benchmarks.timeline` (2026-12-04, alternating, 200k events): 0.5 ms (b)
38.8-43.8k events/s (4 runs, the loop's prepare 324-366 ms per batch), 1 ms 39.8-42.3k (2),
2 ms 37.9-47.9k (6, mean 44.8k; prepare 290-365 ms, the inserts 230-254 ms), 3 ms 38.9-39.9k
(2; the inserts 309-315 ms, longer than the prepare), 5 ms the inserts 317-375 ms. But the
worker as shipped (`benchmarks.ingest`, its own process) did not confirm 2 ms: six
alternating pairs gave 42.4-49.1k events/s (mean 44.4k) at 0.5 ms, 35.7-46.6k (mean 42.6k) at
2 ms. So 0.5 ms, the interval the writer's waits were measured with."""

# mallopt(3) parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD: Final = -1
_M_TOP_PAD: Final = -2
_M_MMAP_THRESHOLD: Final = -3

MALLOC_TRIM_THRESHOLD: Final = 128 * 1024 * 1024
"""Free memory at the top of a heap that glibc keeps instead of handing back to the kernel:
several batches' worth of the large buffers (128 MiB faulted no more than 512 MiB did)."""
MALLOC_TOP_PAD: Final = 64 * 1024 * 1024
"""How much more than asked glibc takes from the kernel when a heap grows."""
MALLOC_MMAP_THRESHOLD: Final = 32 * 1024 * 1024
"""Allocations from this size on get pages of their own (where glibc's own moving threshold
stops: its default at most)."""


def tune_gc() -> None:
    """Collect young objects less often: the worker allocates ~50 objects per event and keeps
    a large call cache, so CPython's default (a collection every 700 allocations, scanning
    ever more survivors) cost ~40% of decode time in the benchmark. Measured: decode 17.3 ->
    10.7 us/event at 50k allocations; 500k (about one batch) spares the scans of most of a
    batch's objects, which refcounting frees first: total 35.9-36.6 -> 32.5-34.4 us/event
    (`python -m benchmarks.stages`). Only cyclic garbage waits for a collection, and the hot
    path makes next to none; memory is still bounded by RINGLOG_CACHE_MAX_CALLS."""
    gc.freeze()  # objects alive after start-up (modules, schemas) are never scanned again
    gc.set_threshold(500_000, 20, 100)


def tune_gil() -> None:
    """Hand the GIL over sooner (GIL_SWITCH_INTERVAL_S)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def tune_malloc() -> bool:
    """Keep freed memory in the process (glibc only; elsewhere nothing changes): False if not
    applied.

    Every batch allocates and frees the same large buffers (the call_event block, about 10 MB
    for 20k events, twice; the messages; the rows). With glibc's defaults the freed tops of
    its heaps go back to the kernel, so the next batch touches fresh pages again: 7-8k page
    faults per batch on the writer's thread alone, each 2-20 us in a process whose other
    threads (ClickHouse's) map and unmap memory all the time. Measured on the benchmark:
    building the call_event block took 12-114 ms per batch, 4-8 ms with these settings (and
    no faults). The cost is memory kept between batches: up to MALLOC_TRIM_THRESHOLD per
    heap of RSS that the defaults would have handed back (with 512 MiB, `benchmarks.memory`
    found 274-284 MiB that `malloc_trim` could still give back, against 83-124 MiB)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # pragma: no cover - glibc always has it
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    applied = [
        mallopt(_M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD),
        mallopt(_M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD),
        mallopt(_M_TOP_PAD, MALLOC_TOP_PAD),
    ]
    return all(status == 1 for status in applied)


def tune_process() -> None:
    """All of the above, once at start."""
    tune_gc()
    tune_gil()
    if not tune_malloc():
        log.info("the C allocator is not glibc's: its defaults are kept")
