"""The dead-letter producer: invalid events to the DLQ topic, acknowledged by all replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.adapters.kafka.connection import KafkaConnection
from worker.adapters.kafka.partitioner import KeyPartitioner
from worker.pipeline.ports import DeadLetterUnavailable

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
DLQ_BATCH_BYTES = 512 * 1024


class DeadLetterProducer:
    """`worker.pipeline.ports.DeadLetterSink`: produces dead letters to the DLQ topic and
    returns only once all replicas acknowledged them (acks=all)."""

    def __init__(self, connection: KafkaConnection, topic: str) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            **connection.client_options(),
            acks="all",
            max_request_size=MAX_MESSAGE_BYTES,
            # A batch's dead letters go out together (2% invalid of 20k events: about 400 KB).
            # At aiokafka's 16 KB each full record batch waited for the sender to drain it, a
            # turn of the event loop the decode and plan hold up for a tenth of a second or
            # more. Under the broker's default 1 MB message.max.bytes, which a DLQ topic made
            # by an operator may keep.
            max_batch_size=DLQ_BATCH_BYTES,
            # No linger: a batch's dead letters are all handed over in one step of the loop
            # (aiokafka's send does not yield while its batch has room), so the sender finds
            # them together at its next turn, which the consume loop gives it right away
            # (WRITE_FIRST_TURNS). A linger sent them only at the loop's next yield after it.
            linger_ms=0,
            partitioner=KeyPartitioner(),  # aiokafka's placement, its murmur2 native
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def send(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        try:
            futures = [
                await self._producer.send(self.topic, value=value, key=key)
                for key, value in records
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            # Transient for the pipeline: it retries with backoff, like a ClickHouse outage.
            raise DeadLetterUnavailable(f"producing to {self.topic}: {exc!r}") from exc
