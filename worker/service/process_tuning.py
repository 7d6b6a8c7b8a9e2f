"""How the worker's process is tuned at start: the garbage collector and the GIL's switch
interval. Each knob is set once, before the first batch, by `tune_process`
(`worker.service.lifecycle.build_worker`); `benchmarks/stages.py` calls the same function so
its figures are the worker's.

The worker runs on two threads that both need the GIL: the event loop's (fetch, decode,
plan: nearly all of it under the GIL) and the writer's (the inserts: mostly in ClickHouse,
without the GIL, with short Python steps between). Measured on the benchmark's batches
(2026-12-04, 20k events, the embedded store), per batch: the writer's inserts took 0.28-0.47 s
of which ClickHouse's queries took about 0.17 s; the rest was waiting for the GIL (each of
its 30-40 returns from I/O waited up to the 5 ms switch interval behind the event loop's
thread) and page faults. Tuned: 0.18-0.21 s, under the loop's 0.33-0.40 s.

The C allocator is not tuned here: `worker.service.allocator` pins glibc's mmap threshold at
its default before the app is built, so a batch's large blocks go back to the kernel. Keeping
them instead (a 32 MiB mmap threshold, 128 MiB trim threshold, 64 MiB top pad: 2026-12-04)
saved page faults, 3-4% of throughput (four alternating `benchmarks.ingest` pairs, 2026-12-05:
61.9-64.2k against 59.1-62.3k events/s, 1 us less process CPU per message), but the worker's
RSS then grew for good: `python -m benchmarks.soak --events 3000000 --rss-every 15
--remove-store --store-process`, two runs each, 18.7 and 60.6 MiB per million events in the
second half (floor 451-509 MiB at the end) against -4.2 and -9.2 without (floor 327-328 MiB).
A worker that runs for weeks must stay flat.
"""

from __future__ import annotations

import gc
import sys
from typing import Final

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


def tune_gc() -> None:
    """Collect young objects less often: the worker allocates ~50 objects per event and keeps
    a large call cache, so CPython's default (a collection every 700 allocations, scanning
    ever more survivors) cost ~40% of decode time in the benchmark. Measured: decode 17.3 ->
    10.7 us/event at 50k allocations; 500k (about one batch) spares the scans of most of a
    batch's objects, which refcounting frees first: total 35.9-36.6 -> 32.5-34.4 us/event
    (`python -m benchmarks.stages`). The threshold counts allocations minus frees, which a
    worker nearly balances, so it is seldom reached: `worker.service.garbage_collector`
    collects on a clock instead, and cyclic garbage does not pile up."""
    gc.freeze()  # objects alive after start-up (modules, schemas) are never scanned again
    gc.set_threshold(500_000, 20, 100)


def tune_gil() -> None:
    """Hand the GIL over sooner (GIL_SWITCH_INTERVAL_S)."""
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def tune_process() -> None:
    """All of the above, once at start."""
    tune_gc()
    tune_gil()
