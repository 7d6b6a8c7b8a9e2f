"""Produces records to one topic byte for byte and at volume (`ringlog replay`).

Records go out as aiokafka record batches built here, one per partition, rather than one
`send()` each: on the 2-core development machine that queues 100k events about twice as fast
(the per-message path awaits the accumulator for every record). The partition is the one
Kafka's default partitioner picks for the key (murmur2, as aiokafka's and the Java client's),
so a replayed event lands on the partition of the call's live events. Every batch is
acknowledged by all in-sync replicas (acks=all) and the producer is idempotent, so a retry
inside the client never doubles a record.

A record Kafka would refuse for its size (`fits` is False for the topic's max.message.bytes)
must not be sent: the broker refuses the whole record batch it travels in, and every record of
that batch fails with it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, Final

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import murmur2
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from worker.adapters.kafka.connection import KafkaConnection
from worker.adapters.kafka.topics import MAX_MESSAGE_BYTES
from worker.pipeline.ports import BrokerUnavailable

# Batches this large amortize a produce request per partition; a record larger than this
# still goes, alone in its batch.
BATCH_BYTES: Final = 1024 * 1024
LINGER_MS: Final = 10
METADATA_TIMEOUT_S: Final = 60.0


class Acks:
    """The delivery of the records queued by one `BulkPublisher.send`."""

    def __init__(self, topic: str, futures: list[asyncio.Future[Any]], records: int) -> None:
        self.topic = topic
        self.records = records
        self._futures = futures

    async def wait(self) -> int:
        """Returns the number of records once every in-sync replica has them."""
        try:
            await asyncio.gather(*self._futures)
        except KafkaError as exc:
            raise BrokerUnavailable(f"producing to {self.topic}: {exc!r}") from exc
        return self.records


class BulkPublisher:
    def __init__(self, connection: KafkaConnection, topic: str) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            **connection.client_options(),
            acks="all",
            enable_idempotence=True,
            linger_ms=LINGER_MS,
            max_batch_size=BATCH_BYTES,
            # The topics' max.message.bytes (topics.py), so client and topic agree on one limit.
            max_request_size=MAX_MESSAGE_BYTES,
        )
        self._partitions: list[int] = []

    async def start(self) -> None:
        try:
            await self._producer.start()
            # Also creates the topic where the brokers auto-create topics (as a first send).
            found = await asyncio.wait_for(
                self._producer.partitions_for(self.topic), METADATA_TIMEOUT_S
            )
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"connecting to produce to {self.topic}: {exc!r}") from exc
        self._partitions = sorted(found)

    async def stop(self) -> None:
        # Also after a failed start: aiokafka's stop is idempotent and safe before start.
        await self._producer.stop()

    async def send(self, records: Sequence[tuple[bytes, bytes]]) -> Acks:
        """Queue (key, value) records; returns once they are handed to the sender, with the
        handle that waits for their acknowledgement (so the caller can prepare the next
        records meanwhile)."""
        partition_of = _partitioner(tuple(self._partitions))
        builders: dict[int, Any] = {}
        futures: list[asyncio.Future[Any]] = []
        try:
            for key, value in records:
                partition = partition_of(key)
                builder = builders.get(partition)
                if builder is None:
                    builder = builders[partition] = self._producer.create_batch()
                if builder.append(key=key, value=value, timestamp=None) is None:  # full
                    futures.append(await self._submit(builder, partition))
                    builder = builders[partition] = self._producer.create_batch()
                    builder.append(key=key, value=value, timestamp=None)
            for partition, builder in builders.items():
                futures.append(await self._submit(builder, partition))
        except KafkaError as exc:
            raise BrokerUnavailable(f"producing to {self.topic}: {exc!r}") from exc
        return Acks(self.topic, futures, len(records))

    async def _submit(self, builder: Any, partition: int) -> asyncio.Future[Any]:
        builder.close()
        future: asyncio.Future[Any] = await self._producer.send_batch(
            builder, self.topic, partition=partition
        )
        return future


def record_bytes(key: bytes | None, value: bytes) -> int:
    """The size Kafka judges `value` by when it travels alone: its record batch, headers and
    record overhead included (aiokafka's own upper bound, the one its producer checks)."""
    return int(DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, []))


def fits(key: bytes | None, value: bytes, limit: int = MAX_MESSAGE_BYTES) -> bool:
    """Whether a topic whose max.message.bytes is `limit` (by default the one topics are
    created with, which is also this producer's own limit) accepts the record."""
    return record_bytes(key, value) <= limit


@lru_cache(maxsize=8)
def _partitioner(partitions: tuple[int, ...]) -> Callable[[bytes], int]:
    """key -> partition as Kafka's default partitioner computes it; memoized per key since an
    archive holds each call's events close together and murmur2 is pure Python here."""

    @lru_cache(maxsize=65536)
    def partition_of(key: bytes) -> int:
        return partitions[(int(murmur2(key)) & 0x7FFFFFFF) % len(partitions)]

    return partition_of
