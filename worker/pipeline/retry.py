"""Capped exponential backoff with full jitter, for transient failures (StoreUnavailable).

    with_retry(lambda: store.insert(...), forever=True, retry_on=(StoreUnavailable,))
    await async_with_retry(lambda: asyncio.to_thread(store.insert, ...), forever=True)

Delay before retry n (1-based) is uniform in [0, min(cap, base * 2 ** (n - 1))] ("full
jitter"), so many workers that lost the same server do not come back in lockstep.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

OnRetry = Callable[[int, BaseException, float], None]
"""Called before sleeping: (attempt number that failed, its exception, delay in seconds)."""


def backoff_delay(
    attempt: int, *, base: float = 0.2, cap: float = 30.0, jitter: bool = True
) -> float:
    """Delay before retrying after failed attempt number `attempt` (1-based)."""
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    # Bound the exponent so huge attempt counts cannot overflow the float.
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 64))
    return random.uniform(0.0, ceiling) if jitter else ceiling


def _check(attempts: int | None, forever: bool) -> None:
    if forever and attempts is not None:
        raise ValueError("give either attempts or forever=True, not both")
    if not forever and (attempts is None or attempts < 1):
        raise ValueError("attempts must be >= 1 (or pass forever=True)")


def with_retry(
    fn: Callable[[], T],
    *,
    attempts: int | None = None,
    forever: bool = False,
    base: float = 0.2,
    cap: float = 30.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    on_retry: OnRetry | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call `fn` until it returns; retry exceptions in `retry_on` with backoff.

    With `attempts=n`, the last exception is re-raised after n failed calls. Exceptions not in
    `retry_on` propagate at once.
    """
    _check(attempts, forever)
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except retry_on as exc:
            if not forever and attempts is not None and attempt >= attempts:
                raise
            delay = backoff_delay(attempt, base=base, cap=cap)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            sleep(delay)


async def async_with_retry(
    fn: Callable[[], Awaitable[T]],
    *,
    attempts: int | None = None,
    forever: bool = False,
    base: float = 0.2,
    cap: float = 30.0,
    retry_on: tuple[type[BaseException], ...] = (Exception,),
    on_retry: OnRetry | None = None,
) -> T:
    """Async twin of `with_retry`: `fn` returns a fresh awaitable per attempt.

    Cancellation (asyncio.CancelledError, a BaseException) is never retried.
    """
    _check(attempts, forever)
    attempt = 0
    while True:
        attempt += 1
        try:
            return await fn()
        except retry_on as exc:
            if not forever and attempts is not None and attempt >= attempts:
                raise
            delay = backoff_delay(attempt, base=base, cap=cap)
            if on_retry is not None:
                on_retry(attempt, exc, delay)
            await asyncio.sleep(delay)
