"""The consumer lag of this worker's partitions: log-end offset minus the group's committed
offset, refreshed from the broker by its own task and published as
`ringlog_consumer_lag_messages{topic,partition}`.

Its own task, not a step of the consume loop: while ClickHouse is down the loop sits in the
pipeline's retries, and the lag must keep growing in /metrics then (the alert rules and
`/health` read it). Fetched but uncommitted (not yet durable) work counts as lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping

from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import Consumer, TopicPartition

log = logging.getLogger("ringlog.lag")

# How often the broker is asked for log-end and committed offsets.
LAG_REFRESH_SECONDS = 5.0
BROKER_TIMEOUT_SECONDS = 10.0


class LagTracker:
    def __init__(self, consumer: Consumer, metrics: Metrics, topic: str) -> None:
        self.consumer = consumer
        self.metrics = metrics
        self.topic = topic
        # Per assigned partition, from the broker and from our own commits and fetches:
        # log-end offset, and the group's committed offset (the log start offset while the
        # group has none: auto_offset_reset=earliest starts there).
        self.end_offsets: dict[TopicPartition, int] = {}
        self.group_offsets: dict[TopicPartition, int] = {}
        self.refreshed_at = 0.0
        self._own_commits: dict[TopicPartition, int] = {}
        self._refresh_now = asyncio.Event()

    def per_partition(self) -> dict[TopicPartition, int]:
        """Lag of every assigned partition whose offsets are known."""
        lags: dict[TopicPartition, int] = {}
        for tp in self.consumer.assignment():
            end = self.end_offsets.get(tp)
            highwater = self.consumer.highwater(tp)
            if highwater is not None and (end is None or highwater > end):
                end = highwater
            committed = self.group_offsets.get(tp)
            if end is None or committed is None:
                continue
            lags[tp] = max(0, end - committed)
        return lags

    def committed(self, offsets: Mapping[TopicPartition, int]) -> None:
        """This worker committed `offsets`: no need to wait for the broker to say so."""
        for tp, offset in offsets.items():
            self._own_commits[tp] = max(self._own_commits.get(tp, 0), offset)
            self.group_offsets[tp] = max(self.group_offsets.get(tp, 0), offset)

    def forget(self, partitions: set[TopicPartition]) -> None:
        """Partitions that moved to another worker: their lag is that worker's to report."""
        for tp in partitions:
            self.end_offsets.pop(tp, None)
            self.group_offsets.pop(tp, None)
            self._own_commits.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.metrics.consumer_lag.remove(tp.topic, str(tp.partition))

    def refresh_soon(self) -> None:
        self._refresh_now.set()

    def publish(self) -> None:
        for tp, lag in self.per_partition().items():
            self.metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(lag)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh from the broker and publish every LAG_REFRESH_SECONDS until `stop`."""
        while not stop.is_set():
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker may be away for a while; keep trying
                log.warning(
                    "cannot refresh consumer lag from the broker: %r",
                    exc,
                    extra={"topic": self.topic, "error_code": "lag_refresh_failed"},
                )
            self.publish()
            self._refresh_now.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._refresh_now.wait(), LAG_REFRESH_SECONDS)

    async def refresh(self) -> None:
        """Log-end offsets and the group's committed offsets of the assigned partitions."""
        assigned = set(self.consumer.assignment())
        if not assigned:
            return
        tps = sorted(assigned)
        ends = await asyncio.wait_for(self.consumer.end_offsets(tps), BROKER_TIMEOUT_SECONDS)
        committed = await asyncio.wait_for(
            asyncio.gather(*(self.consumer.committed(tp) for tp in tps)), BROKER_TIMEOUT_SECONDS
        )
        missing = [tp for tp, offset in zip(tps, committed, strict=True) if offset is None]
        starts: dict[TopicPartition, int] = {}
        if missing:
            starts = await asyncio.wait_for(
                self.consumer.beginning_offsets(missing), BROKER_TIMEOUT_SECONDS
            )
        current = set(self.consumer.assignment())  # a rebalance may have run meanwhile
        for tp, offset in zip(tps, committed, strict=True):
            if tp not in current:
                continue
            self.end_offsets[tp] = int(ends[tp])
            group_offset = int(offset) if offset is not None else int(starts.get(tp, 0))
            # Our own commit may be newer than what the broker answered a moment ago.
            self.group_offsets[tp] = max(group_offset, self._own_commits.get(tp, group_offset))
        self.refreshed_at = time.time()
