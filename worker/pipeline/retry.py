"""Retry of transient failures (the store or the broker unavailable): forever, with capped
exponential backoff and full jitter, through tenacity.

The delay before retry n (1-based) is uniform in [0, min(cap, base * 2 ** (n - 1))] ("full
jitter"), so many workers that lost the same server do not come back in lockstep. Failures
not in `retry_on` propagate at once; cancellation is never retried.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_random_exponential

from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import StoreUnavailable

log = logging.getLogger("ringlog.retry")
T = TypeVar("T")

OnRetry = Callable[[int, BaseException, float], None]
"""Called before sleeping: (attempt number that failed, its exception, delay in seconds)."""


async def retry_forever(
    attempt: Callable[[], Awaitable[T]],
    *,
    retry_on: tuple[type[BaseException], ...],
    on_retry: OnRetry | None = None,
    base: float = 0.2,
    cap: float = 30.0,
) -> T:
    """Await `attempt()` (a fresh awaitable per try) until it succeeds."""

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            error = state.outcome.exception()
            assert error is not None  # only failed attempts are retried
            on_retry(state.attempt_number, error, state.next_action.sleep)

    retrying = AsyncRetrying(
        retry=retry_if_exception_type(retry_on),
        wait=wait_random_exponential(multiplier=base, max=cap),
        before_sleep=before_sleep,
        reraise=True,
    )

    async def once() -> T:
        # tenacity awaits only coroutine functions; `attempt` may be a plain lambda
        return await attempt()

    result: T = await retrying(once)
    return result


class OutageRetry:
    """The pipeline's one retry policy for store and broker outages: forever, with backoff;
    it counts consecutive failures (for /health) and logs and counts every failed attempt."""

    # Failures that mean "not reachable right now": anything else is a bug or bad config.
    TRANSIENT: tuple[type[BaseException], ...] = (StoreUnavailable, OSError, ConnectionError)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics
        self.consecutive_failures = 0

    async def __call__(
        self,
        doing: str | Callable[[], str],
        attempt: Callable[[], Awaitable[T]],
        table: str | Callable[[], str] | None = None,
    ) -> T:
        """`doing` and `table` name what failed in the log; callables are asked at each
        failure (an attempt that does several steps names the step that failed)."""

        def on_retry(failures: int, exc: BaseException, delay: float) -> None:
            self.consecutive_failures += 1
            self.metrics.insert_failures.inc()
            log.error(
                "%s failed (attempt %d), retrying in %.1fs: %s",
                doing() if callable(doing) else doing,
                failures,
                delay,
                exc,
                extra={
                    "error_code": "store_unavailable",
                    "table": table() if callable(table) else table,
                    "attempt": failures,
                },
            )

        value = await retry_forever(attempt, retry_on=self.TRANSIENT, on_retry=on_retry)
        self.consecutive_failures = 0
        return value


class ThreadAttempts(Generic[T]):
    """Attempts of a blocking call in a worker thread, for `OutageRetry`: the first submitted
    at once, as `asyncio.to_thread` would run it (the default executor, the caller's
    context), not when a task around it first runs, which on the event loop's thread can be a
    synchronous step later; each later attempt starts afresh."""

    def __init__(self, call: Callable[[], T]) -> None:
        self._call = call
        first = asyncio.get_running_loop().run_in_executor(
            None, functools.partial(contextvars.copy_context().run, call)
        )
        # Given up before a retry awaits it (a stop, a rebalance): no unretrieved error.
        first.add_done_callback(lambda done: done.cancelled() or done.exception())
        self._first: asyncio.Future[T] | None = first

    def __call__(self) -> Awaitable[T]:
        first, self._first = self._first, None
        return first if first is not None else asyncio.to_thread(self._call)
