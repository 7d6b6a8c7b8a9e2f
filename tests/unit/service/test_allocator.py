"""worker.service.allocator: glibc's mmap threshold stays fixed once pinned."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from worker.service.allocator import ENV_OVERRIDE, pin_mmap_threshold


def _glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL("libc.so.6"), "gnu_get_libc_version")
    except OSError:
        return False


# What each child script starts with: glibc's malloc and free, callable with raw addresses.
_LIBC = """
import ctypes
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
"""


def _in_a_child(script: str, *args: str) -> str:
    """Run `script` after _LIBC in a fresh interpreter (its allocator untouched by this
    process's tuning, no MALLOC_* tunables from the caller's environment); its stdout."""
    env = {"PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", _LIBC + script, *args],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return out.stdout


# In a child process (pinning changes the process's allocator for good): frees an 8 MiB block
# (served by mmap), then prints whether a 1 MiB block is served by mmap (IS_MMAPPED, bit 2 of
# the chunk's size field, just before the pointer).
_PROBE = """
import sys
from worker.service.allocator import pin_mmap_threshold
if sys.argv[1] in ("pin", "worker"):
    assert pin_mmap_threshold()
if sys.argv[1] == "worker":  # then the rest of the worker's start-up tuning
    from worker.service.process_tuning import tune_process
    tune_process()
libc.free(libc.malloc(8 << 20))
block = libc.malloc(1 << 20)
size_field = ctypes.c_size_t.from_address(block - ctypes.sizeof(ctypes.c_size_t)).value
print(bool(size_field & 2))
libc.free(block)
"""


def _one_mib_block_mmapped(mode: str) -> bool:
    return _in_a_child(_PROBE, mode).strip() == "True"


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_pinned_threshold_is_not_raised_by_a_freed_large_block() -> None:
    # glibc's default: the freed 8 MiB block raised the threshold, the 1 MiB block comes
    # from the heap, where it stays part of the heap after it is freed
    assert _one_mib_block_mmapped("default") is False
    # pinned: still served by mmap, handed back to the kernel when freed
    assert _one_mib_block_mmapped("pin") is True


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_the_workers_start_up_tuning_keeps_the_pinned_threshold() -> None:
    """Nothing the worker tunes after the pin raises the threshold again: keeping large
    blocks in the heaps saved page faults but made a long run's RSS grow for good
    (worker.service.process_tuning's docstring has the soak figures)."""
    assert _one_mib_block_mmapped("worker") is True


def test_the_operators_tunable_wins() -> None:
    assert pin_mmap_threshold(environ={ENV_OVERRIDE: "65536"}) is False


# In a child process: 64 MiB of heap blocks (under the mmap threshold) below one that stays,
# all but that one freed: glibc keeps the free pages resident (it trims only a heap's top).
# Prints the VmRSS drop (KiB) over release_free_heap, and what it returned.
_HOLES = """
from worker.service.allocator import release_free_heap
def rss():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))
blocks = [libc.malloc(1024) for _ in range(64 * 1024)]
for block in blocks:
    ctypes.memset(block, 1, 1024)
keep = libc.malloc(1024)
for block in blocks:
    libc.free(block)
before = rss()
released = release_free_heap()
print(before - rss(), released)
"""


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_free_pages_inside_the_heap_go_back_to_the_kernel() -> None:
    dropped_kib, released = _in_a_child(_HOLES).split()
    assert released == "True"
    assert int(dropped_kib) > 48 * 1024  # most of the 64 MiB freed


# In a child process: glibc's heap usage while 64 MiB of heap blocks and one 4 MiB block
# (mapped on its own) are held, and after they are freed, as "in_use free mmapped" lines.
_USAGE = """
from worker.service.allocator import heap_usage, pin_mmap_threshold
def show():
    u = heap_usage()
    print(u.in_use, u.free, u.mmapped)
pin_mmap_threshold()
blocks = [libc.malloc(1024) for _ in range(64 * 1024)]
keep = libc.malloc(1024)
large = libc.malloc(4 << 20)
show()
for block in blocks:
    libc.free(block)
libc.free(large)
show()
"""


@pytest.mark.skipif(not _glibc(), reason="glibc only")
def test_heap_usage_counts_blocks_in_use_free_and_mapped() -> None:
    held, freed = ([int(n) for n in line.split()] for line in _in_a_child(_USAGE).splitlines())
    mib = 1 << 20
    assert held[0] - freed[0] >= 64 * mib  # in use: the 64 MiB of blocks (and their headers)
    assert freed[1] - held[1] >= 64 * mib  # then free inside the heap (one block keeps it)
    assert held[2] - freed[2] >= 4 * mib  # the large block, mapped on its own, handed back
