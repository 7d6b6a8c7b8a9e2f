"""The dead-letter producer: invalid events to the DLQ topic, acknowledged by all replicas."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.adapters.kafka.connection import kafka_client_options
from worker.service.settings import Settings

MAX_MESSAGE_BYTES = 8 * 1024 * 1024


class DeadLetterUnavailable(ConnectionError):
    """The DLQ topic could not take the dead letters (broker down, timeout)."""


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
        try:
            futures = [
                await self._producer.send(self.topic, value=value, key=key)
                for key, value in records
            ]
            await asyncio.gather(*futures)
        except KafkaError as exc:
            # Transient for the ingestor: it retries with backoff, like a ClickHouse outage.
            raise DeadLetterUnavailable(f"producing to {self.topic}: {exc!r}") from exc
