"""Prepares a batch: the pure planner's decode, the reload of uncached calls from
`call_event` (the only I/O), then the plan. Runs while the previous batch is being written."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from worker.core.batch_plan import BatchPlanner, Plan, StoredEvent
from worker.core.call_state import CallCache, CallKey
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import Message, Store
from worker.pipeline.retry import OutageRetry


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

    async def prepare(self, messages: Sequence[Message], keep: set[CallKey]) -> Plan:
        """Decode, reload uncached calls, plan. `keep`: the calls of the batch in flight,
        which stay cached until it is durable, so a reload from call_event never misses
        events that are still on their way there."""
        decoded = self.planner.decode(messages)
        reloaded: list[StoredEvent] = []
        if decoded.missing:
            missing = decoded.missing
            stored = await self.retry(
                "loading call state",
                lambda: asyncio.to_thread(self.store.load_call_events, missing),
            )
            reloaded = [(project, call, payload) for project, call, payload, *_ in stored]
        plan = self.planner.plan(decoded, reloaded, self.clock(), keep=keep)
        self.metrics.cached_calls.set(len(self.planner.cache))
        return plan

    def rest(self) -> int:
        """Idle: pack the calls the last batch left unpacked (see BatchPlanner.plan)."""
        return self.planner.rest()

    def forget_partitions(self, partitions: set[int]) -> int:
        """Forget the calls of `partitions` (revoked, or rewound to be read again)."""
        return self.planner.forget_partitions(partitions)
