"""Kafka adapters: the batch consume loop (fetch -> Ingestor.process -> commit) and the
dead-letter producer. All Kafka I/O of the worker lives here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from worker.config import Settings
from worker.ingest import Ingestor, Plan
from worker.producer import ensure_topic

log = logging.getLogger("ringlog.consumer")

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every client (credentials never logged)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_brokers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


class DeadLetterProducer:
    """Produces dead letters to the DLQ topic and waits for acks=all before returning."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.dlq_topic
        self._producer = AIOKafkaProducer(
            **kafka_client_options(settings),
            acks="all",
            max_request_size=MAX_MESSAGE_BYTES,
            linger_ms=5,
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        futures = [
            await self._producer.send(self.topic, value=value, key=key) for key, value in records
        ]
        await asyncio.gather(*futures)


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, loop: ConsumeLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.loop.on_revoked({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("assigned partitions %s", sorted(tp.partition for tp in assigned))


class ConsumeLoop:
    """Fetch a batch, hand it to the Ingestor, commit its offsets after it is durable."""

    def __init__(self, settings: Settings, ingestor: Ingestor) -> None:
        self.settings = settings
        self.ingestor = ingestor
        self.consumer = AIOKafkaConsumer(
            **kafka_client_options(settings),
            group_id=settings.group_id,
            enable_auto_commit=False,  # offsets are committed only in `_commit`
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=64 * 1024 * 1024,
            max_poll_interval_ms=600_000,  # a long ClickHouse outage must not evict us
        )
        self._revoked: set[int] = set()
        self.committed: dict[TopicPartition, int] = {}
        self.last_commit = 0.0
        self.batches = 0
        self.running = False
        self.fatal: BaseException | None = None
        self._gauges_at = 0.0
        self._inflight: asyncio.Task[None] | None = None

    async def on_revoked(self, partitions: set[int]) -> None:
        # Finish and commit the batch in flight before the partitions move: the new owner
        # then starts exactly where this worker's durable work ends.
        await self._drain()
        self._revoked |= partitions
        self.ingestor.forget_partitions(partitions)

    async def start(self) -> None:
        # A missing topic would leave the group with no partitions until the next metadata
        # refresh (minutes): create it (never alter it) before subscribing.
        options = kafka_client_options(self.settings)
        for topic in (self.settings.topic, self.settings.dlq_topic):
            await ensure_topic(
                self.settings.kafka_brokers, topic, alter_existing=False, client_options=options
            )
        await self.consumer.start()
        self.consumer.subscribe([self.settings.topic], listener=_Rebalance(self))

    async def stop(self) -> None:
        await self.consumer.stop()

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and prepare batch N+1 while batch N is written; commit strictly in order.

        At most one batch is in flight, so memory and uncommitted work stay bounded (this is
        the backpressure), and a commit never covers a batch whose writes are not durable.
        """
        self.running = True
        try:
            while not stop.is_set():
                batch = await self._fetch(stop)
                if not batch:
                    await self._reap()
                    self._update_lag()
                    continue
                plan = await self.ingestor.prepare(batch)
                await self._drain()
                self._inflight = asyncio.create_task(self._write_and_commit(plan, batch))
            await self._drain()
        finally:
            self.running = False
            if self._inflight is not None and not self._inflight.done():
                self._inflight.cancel()

    async def _write_and_commit(self, plan: Plan, batch: list[Any]) -> None:
        await self.ingestor.write(plan)
        await self._commit(batch)  # the only commit: after the batch is durable
        self.batches += 1
        self._update_lag()

    async def _drain(self) -> None:
        """Wait for the batch in flight (re-raising a fatal error from its writes)."""
        task, self._inflight = self._inflight, None
        if task is not None:
            await task

    async def _reap(self) -> None:
        if self._inflight is not None and self._inflight.done():
            await self._drain()

    async def _fetch(self, stop: asyncio.Event) -> list[Any]:
        """Fill a batch bounded by size and time; drop what a rebalance took away."""
        self._revoked = set()
        max_events = self.settings.batch_max_events
        deadline = time.monotonic() + self.settings.batch_max_seconds
        batch: list[Any] = []
        while len(batch) < max_events and not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            records = await self.consumer.getmany(
                timeout_ms=int(remaining * 1000), max_records=max_events - len(batch)
            )
            for tp_records in records.values():
                batch.extend(tp_records)
            if not records and batch:
                break  # nothing more buffered: flush what we have rather than wait
        if self._revoked:
            # Those partitions now belong to another worker, which resumes from our last
            # commit; processing them here too would only race it.
            batch = [m for m in batch if m.partition not in self._revoked]
        return batch

    async def _commit(self, batch: Sequence[Any]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for msg in batch:
            tp = TopicPartition(msg.topic, msg.partition)
            offsets[tp] = max(offsets.get(tp, 0), msg.offset + 1)
        assigned = self.consumer.assignment()
        offsets = {tp: off for tp, off in offsets.items() if tp in assigned}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A rebalance took the partitions: the new owner replays from the previous
            # commit; the rows we wrote are idempotent, so nothing is lost or doubled.
            log.warning("commit skipped after rebalance: %s", exc)
            return
        except KafkaError as exc:
            log.error("commit failed, the batch will be replayed after restart: %s", exc)
            return
        self.committed.update(offsets)
        self.last_commit = time.time()
        self.ingestor.metrics.last_commit.set(self.last_commit)

    def _update_lag(self) -> None:
        metrics = self.ingestor.metrics
        for tp in self.consumer.assignment():
            end = self.consumer.highwater(tp)
            if end is None:
                continue
            committed = self.committed.get(tp)
            if committed is None:
                continue
            metrics.consumer_lag.labels(tp.topic, str(tp.partition)).set(max(0, end - committed))
        if self.ingestor.newest_written is not None:
            lag = time.time() - self.ingestor.newest_written.timestamp()
            metrics.event_lag.set(max(0.0, lag))
        now = time.monotonic()
        if now - self._gauges_at >= 1.0:  # open_count walks the cache: once a second is plenty
            self._gauges_at = now
            metrics.open_calls.set(self.ingestor.cache.open_count())
