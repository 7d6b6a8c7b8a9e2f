"""Prepares a batch: the pure planner's decode, the reload of uncached calls from
`call_event` (the only I/O), then the plan. Runs while the previous batch is being written."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from worker.core.batch_plan import BatchPlanner, Plan, StoredEvent
from worker.core.call_state import CallCache, CallKey
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import Message, Store
from worker.pipeline.retry import OutageRetry, ThreadAttempts


def now_utc() -> datetime:
    return datetime.now(UTC)


class BatchPreparer:
    def __init__(
        self,
        planner: BatchPlanner,
        store: Store,
        retry: OutageRetry,
        metrics: Metrics,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.planner = planner
        self.store = store
        self.retry = retry
        self.metrics = metrics
        self.clock = clock

    @property
    def cache(self) -> CallCache:
        return self.planner.cache

    async def prepare(
        self,
        messages: Sequence[Message],
        keep: set[CallKey],
        meanwhile: Callable[[], Awaitable[object]] = lambda: asyncio.sleep(0),
    ) -> Plan:
        """Decode, reload uncached calls, plan. `keep`: the calls of the batch in flight,
        which stay cached until it is durable, so a reload from call_event never misses
        events that are still on their way there. `meanwhile` runs on this thread while the
        reload query runs in another (right after the decode when nothing is reloaded); it
        may yield to the loop (the consume loop's release does, between slices)."""
        decoded = self.planner.decode(messages)
        reloaded: list[StoredEvent] = []
        if decoded.missing:
            # Submitted now, so `meanwhile` overlaps the query.
            attempts = ThreadAttempts(
                functools.partial(self.store.load_call_events, decoded.missing)
            )
            loading = asyncio.ensure_future(self.retry("loading call state", attempts))
            try:
                await meanwhile()
            finally:
                stored = await loading
            reloaded = [(project, call, payload) for project, call, payload, *_ in stored]
        else:
            await meanwhile()
        plan = self.planner.plan(decoded, reloaded, self.clock(), keep=keep)
        self.metrics.cached_calls.set(len(self.planner.cache))
        return plan

    def rest(self) -> int:
        """Idle: pack the calls the last batch left unpacked (see BatchPlanner.plan)."""
        return self.planner.rest()

    def forget_partitions(self, partitions: set[int]) -> int:
        """Forget the calls of `partitions` (revoked, or rewound to be read again)."""
        return self.planner.forget_partitions(partitions)
