"""Retries of transient failures: only the listed errors, forever, with capped jittered
backoff; anything else propagates at once."""

from __future__ import annotations

import asyncio

import pytest

from worker.pipeline.ports import StoreError, StoreUnavailable
from worker.pipeline.retry import retry_forever


def test_retries_listed_errors_until_success_with_capped_jittered_delays() -> None:
    calls = 0
    retries: list[tuple[int, str, float]] = []

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 6:
            raise StoreUnavailable(f"down {calls}")
        return "ok"

    got = asyncio.run(
        retry_forever(
            flaky,
            retry_on=(StoreUnavailable,),
            on_retry=lambda n, exc, delay: retries.append((n, str(exc), delay)),
            base=0.001,
            cap=0.004,
        )
    )
    assert got == "ok" and calls == 6
    assert [(n, msg) for n, msg, _ in retries] == [(i, f"down {i}") for i in range(1, 6)]
    # full jitter: delay n is within [0, min(cap, base * 2 ** (n - 1))]
    for n, _, delay in retries:
        assert 0.0 <= delay <= min(0.004, 0.001 * 2 ** (n - 1)) + 1e-9


def test_other_errors_propagate_at_once() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise StoreError("bad sql")

    with pytest.raises(StoreError, match="bad sql"):
        asyncio.run(retry_forever(broken, retry_on=(StoreUnavailable,), base=0.001))
    assert calls == 1


def test_cancellation_is_not_retried() -> None:
    async def scenario() -> int:
        attempts = 0

        async def hangs() -> None:
            nonlocal attempts
            attempts += 1
            await asyncio.sleep(60)

        task = asyncio.create_task(retry_forever(hangs, retry_on=(Exception,), base=0.001))
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return attempts

    assert asyncio.run(scenario()) == 1
