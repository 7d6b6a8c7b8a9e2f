"""Prepares a batch: the pure planner's decode, the reload of uncached calls from
`call_event` (the only I/O), then the plan. Runs while the previous batch is being written."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from worker.core.batch_plan import BatchPlanner, Plan
from worker.core.call_state import CallCache, CallKey
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import Message, Store
from worker.pipeline.retry import OutageRetry, ThreadAttempts


def now_utc() -> datetime:
    return datetime.now(UTC)


# PLANNED AHEAD pays when the reload finds stored events for few of the uncached calls (a
# running worker's uncached calls are new ones). Right after a restart or a rebalance nearly
# all of them have some, and a plan made ahead would be made twice for those calls: while the
# latest reload found stored events for this share of its calls or more, the plan waits for it.
AHEAD_BELOW_FOUND_SHARE = 0.5


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
        # The share of the latest reload's calls it found stored events of (PLANNED AHEAD).
        self.found_share = 0.0

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
        may yield to the loop (the consume loop's release does, between slices).

        PLANNED AHEAD: while the reload query runs, the plan is made with the uncached calls
        taken as new (`BatchPlanner.plan_ahead`); once it returns, the calls it found stored
        events of are planned again (`BatchPlanner.complete`). The loop's thread had only
        `meanwhile` to do while it waited (40-90 ms of a ~450 ms batch with the embedded store,
        benchmarks.timeline; a ClickHouse server's round trip on top). Not while the reloads
        find stored events for most calls (AHEAD_BELOW_FOUND_SHARE): then it plans after.
        """
        decoded = self.planner.decode(messages)
        if not decoded.missing:
            await meanwhile()
            plan = self.planner.plan(decoded, [], self.clock(), keep=keep)
        else:
            # Submitted now, so the plan and `meanwhile` overlap the query.
            attempts = ThreadAttempts(
                functools.partial(self.store.load_call_events, decoded.missing)
            )
            loading = asyncio.ensure_future(self.retry("loading call state", attempts))
            ahead = None
            try:
                if self.found_share < AHEAD_BELOW_FOUND_SHARE:
                    ahead = self.planner.plan_ahead(decoded, self.clock(), keep=keep)
                await meanwhile()
            finally:
                stored = await loading
            reloaded = [(project, call, payload) for project, call, payload, *_ in stored]
            found = {(project, call) for project, call, _ in reloaded}
            self.found_share = len(found) / len(decoded.missing)
            if ahead is not None:
                plan = self.planner.complete(ahead, reloaded)
            else:
                plan = self.planner.plan(decoded, reloaded, self.clock(), keep=keep)
        self.metrics.cached_calls.set(len(self.planner.cache))
        return plan

    def rest(self) -> int:
        """Idle: pack the calls the last batch left unpacked (see BatchPlanner.plan)."""
        return self.planner.rest()

    def forget_partitions(self, partitions: set[int]) -> int:
        """Forget the calls of `partitions` (revoked, or rewound to be read again)."""
        return self.planner.forget_partitions(partitions)
