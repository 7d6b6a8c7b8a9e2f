"""glibc malloc tuned for a worker that runs for weeks: a fixed mmap threshold, free heap
pages handed back, and what its heaps hold (`heap_usage`, for /metrics).

By default glibc serves a block of 128 KiB or more with its own mmap, but each time such a
block is freed it raises that threshold to the block's size (up to 32 MiB) and the heap's trim
threshold to twice that. A worker frees large blocks all the time: aiokafka's fetch
responses, a batch's lists, dicts and rows, the JSON bodies of the inserts. After the first
few, every such block is carved from the heaps instead (the main one, and the arena of each
thread that builds an insert body), between the call cache's long-lived packed calls, and the
heaps only grow: a long run measured the worker's RSS rising about 10-13 MiB per million
events after its call cache was full, all of it free memory in glibc's heaps (its live Python
objects and the bytes in use in those heaps did not grow; README "RSS over a long run").

`pin_mmap_threshold` sets the threshold back to glibc's default, fixed (mallopt turns the
dynamic adjustment off), so large blocks go back to the kernel when freed. An operator's own
`MALLOC_MMAP_THRESHOLD_` is left as glibc applied it; elsewhere than glibc nothing is done.

`release_free_heap` hands back what is left: free pages inside the heaps, which glibc itself
only returns from a heap's top. A backlog (a stall of the store, a restart) makes the worker
hold several full batches at once; the heaps grow for them, and once they are freed the pages
stay free but resident between the long-lived blocks, so each larger backlog raised the RSS
for good while the bytes in use did not move. Measured in a `--rate 4000` soak with the
producer paused so the worker went idle (2026-12-06, gdb's `malloc_info`): after a catch-up,
37 MiB free in the heaps; `malloc_trim(0)` took the worker's VmRSS from 286 to 268 MiB. A busy
worker's batches take such pages again at once: a steady-rate soak's floor was no lower with
it (README "RSS over a long run (2026-12-06, fifth session)").
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import cast

log = logging.getLogger("ringlog.allocator")

M_MMAP_THRESHOLD = -3  # glibc's <malloc.h>
MMAP_THRESHOLD = 128 * 1024  # glibc's default, which it would otherwise raise up to 32 MiB
ENV_OVERRIDE = "MALLOC_MMAP_THRESHOLD_"  # glibc's tunable: the operator's choice wins


def pin_mmap_threshold(
    threshold: int = MMAP_THRESHOLD, environ: Mapping[str, str] = os.environ
) -> bool:
    """Fix glibc's mmap threshold at `threshold` bytes for this process; True if it was set
    (False: not glibc, or `MALLOC_MMAP_THRESHOLD_` set by the operator)."""
    if ENV_OVERRIDE in environ:
        return False
    libc = _glibc()
    if libc is None:
        return False
    done = bool(libc.mallopt(M_MMAP_THRESHOLD, threshold))
    if done:
        log.debug("glibc mmap threshold fixed at %d bytes", threshold)
    return done


def release_free_heap() -> bool:
    """Hand the free pages inside glibc's heaps back to the kernel (`malloc_trim(0)`); True
    if any were. It locks each heap in turn (about 20 ms for a few hundred MiB), so the worker
    calls it off the event loop's thread (`worker.service.garbage_collector`)."""
    libc = _glibc()
    return libc is not None and bool(libc.malloc_trim(0))


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library if it is glibc (another libc's mallopt and malloc_trim differ)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") else None


@dataclass(frozen=True)
class HeapUsage:
    """What glibc's allocator holds (its `mallinfo2`, summed over every heap). pymalloc's
    arenas (Python's small objects) are mapped by Python itself and are not in it."""

    in_use: int  # bytes of heap blocks in use (uordblks)
    free: int  # bytes free inside the heaps, resident until reused or released (fordblks)
    mmapped: int  # bytes of blocks mapped one by one, all in use (hblkhd)


class _MallInfo2(ctypes.Structure):
    _fields_ = [  # glibc's <malloc.h>, in order
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def heap_usage() -> HeapUsage | None:
    """glibc's heap usage now (None elsewhere, or before glibc 2.33). It locks each heap in
    turn and walks its free lists (2 us in a fresh process, longer the more free pieces a heap
    holds), once per scrape."""
    mallinfo2 = _mallinfo2()
    if mallinfo2 is None:
        return None
    info: _MallInfo2 = mallinfo2()
    return HeapUsage(in_use=info.uordblks, free=info.fordblks, mmapped=info.hblkhd)


@functools.cache
def _mallinfo2() -> Callable[[], _MallInfo2] | None:
    libc = _glibc()
    if libc is None or not hasattr(libc, "mallinfo2"):
        return None
    function = libc.mallinfo2
    function.restype = _MallInfo2
    function.argtypes = []
    return cast(Callable[[], _MallInfo2], function)
