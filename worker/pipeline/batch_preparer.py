"""Prepares a batch: the pure planner's decode, the reload of uncached calls from
`call_event` (the only I/O, in a worker thread while the batch is planned), then the rest of
the plan. Runs while the previous batch is being written."""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime

from worker.core.batch_plan import BatchPlanner, Plan, Planning, StoredEvent
from worker.core.call_state import CallCache, CallKey
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import CallEventRow, Message, Store
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
        events that are still on their way there.

        THE RELOAD OVERLAPS THE PLANNING: its query goes to a worker thread before the
        planner merges and rebuilds the batch's calls (`start`), the uncached ones as if
        call_event held none of their events (their first events, nearly always: the reload
        then finds nothing). `finish` waits for the reload and plans again the calls it found
        events of, so the plan is the same either way."""
        decoded = self.planner.decode(messages)
        if not decoded.missing:
            planning = self.planner.start(decoded)
            return self._finish(planning, [], keep)
        missing = decoded.missing
        # As asyncio.to_thread (the default executor, this context), but submitted now.
        loop = asyncio.get_running_loop()
        pending = [
            loop.run_in_executor(
                None,
                functools.partial(
                    contextvars.copy_context().run, self.store.load_call_events, missing
                ),
            )
        ]
        # Not awaited if `start` raises: no unretrieved error left behind.
        pending[0].add_done_callback(lambda done: done.cancelled() or done.exception())
        planning = self.planner.start(decoded)

        def attempt() -> Awaitable[list[CallEventRow]]:
            # The first attempt is already running; each retry starts afresh.
            if pending:
                return pending.pop()
            return asyncio.to_thread(self.store.load_call_events, missing)

        stored = await self.retry("loading call state", attempt)
        reloaded = [(project, call, payload) for project, call, payload, *_ in stored]
        return self._finish(planning, reloaded, keep)

    def _finish(self, planning: Planning, reloaded: list[StoredEvent], keep: set[CallKey]) -> Plan:
        plan = self.planner.finish(planning, reloaded, self.clock(), keep=keep)
        self.metrics.cached_calls.set(len(self.planner.cache))
        return plan

    def rest(self) -> int:
        """Idle: pack the calls the last batch left unpacked (see BatchPlanner.plan)."""
        return self.planner.rest()

    def forget_partitions(self, partitions: set[int]) -> int:
        """Forget the calls of `partitions` (revoked, or rewound to be read again)."""
        return self.planner.forget_partitions(partitions)
