"""Blocking store calls handed to a worker thread at once, not when the caller next yields.

The consume loop's thread spends most of its time in synchronous steps (decoding and planning
a batch: about half a second). A coroutine or task that would start a thread only runs when
that step yields, so the store call waits for it. `start_in_thread` submits the call before
returning; `first_then_again` lets `OutageRetry` await that first attempt and start a fresh
call for each retry.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def start_in_thread(call: Callable[[], T]) -> asyncio.Future[T]:
    """`asyncio.to_thread(call)` (the loop's default executor, the caller's context), but the
    thread has the call when this returns."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, call))
    # A result nobody awaits any more (a batch given up by a rebalance) leaves no "exception
    # was never retrieved" behind; an awaited one still raises there.
    future.add_done_callback(_retrieved)
    return future


def first_then_again(
    first: Awaitable[T], again: Callable[[], Awaitable[T]]
) -> Callable[[], Awaitable[T]]:
    """An attempt factory for `OutageRetry`: `first` (already started) the first time, then a
    fresh `again()` for each retry."""
    pending = [first]

    def attempt() -> Awaitable[T]:
        return pending.pop() if pending else again()

    return attempt


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
