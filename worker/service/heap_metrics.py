"""/metrics of the worker's live heap, read at each scrape: what tells a leak from memory the
allocators keep.

A worker's VmRSS follows the largest backlog it has worked through: the allocators keep what
its full batches needed (pymalloc's arenas, free pages in glibc's heaps) and use it again for
the next one. A leak instead shows in what is in use: Python's allocated blocks and glibc's
bytes in use, which an idle worker should hold flat however many events it has handled
(`benchmarks.soak`'s rest points compare them; README "RSS over a long run").
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from worker.service.allocator import HeapUsage, heap_usage

BLOCKS = "ringlog_python_allocated_blocks"
BLOCKS_HELP = "Memory blocks Python has allocated (its objects and their buffers)"
HEAP = "ringlog_malloc_heap_bytes"
HEAP_HELP = (
    "glibc malloc, by state: in_use (heap blocks in use), free (free inside its heaps, kept "
    "resident until reused or handed back after a collection), mmapped (large blocks, in use)"
)


class HeapCollector:
    """A Prometheus collector of `BLOCKS` and `HEAP` (the latter only where glibc is)."""

    def __init__(
        self,
        registry: CollectorRegistry,
        blocks: Callable[[], int] = sys.getallocatedblocks,
        usage: Callable[[], HeapUsage | None] = heap_usage,
    ) -> None:
        self._blocks = blocks
        self._usage = usage
        registry.register(self)

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily(BLOCKS, BLOCKS_HELP, value=self._blocks())
        usage = self._usage()
        if usage is not None:
            heap = GaugeMetricFamily(HEAP, HEAP_HELP, labels=["state"])
            heap.add_metric(["in_use"], usage.in_use)
            heap.add_metric(["free"], usage.free)
            heap.add_metric(["mmapped"], usage.mmapped)
            yield heap

    def describe(self) -> Iterable[Metric]:
        """The names the registry checks, without reading the heap."""
        yield GaugeMetricFamily(BLOCKS, BLOCKS_HELP)
        yield GaugeMetricFamily(HEAP, HEAP_HELP, labels=["state"])
