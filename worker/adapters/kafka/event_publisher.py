"""Publishes events to the input topic for the query API's writes (item amendments).

Each event is keyed by its `call_id` (every event of a call on one partition, DESIGN.md
section 2) and `publish` returns only once every in-sync replica has it (acks=all, idempotent
producer), so an API answer means the event is durable and the worker will apply it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from worker.adapters.kafka.connection import KafkaConnection
from worker.pipeline.ports import BrokerUnavailable

# An API request waits at most this long for Kafka before answering 503.
PUBLISH_TIMEOUT_SECONDS: Final = 10.0


class KafkaEventPublisher:
    def __init__(self, connection: KafkaConnection, topic: str) -> None:
        self.topic = topic
        self._producer = AIOKafkaProducer(
            **connection.client_options(),
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=int(PUBLISH_TIMEOUT_SECONDS * 1000),
        )
        self._started = False

    async def start(self) -> None:
        await self._producer.start()
        self._started = True

    async def stop(self) -> None:
        if self._started:
            self._started = False
            await self._producer.stop()

    async def publish_all(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Several events (key, event) at once; returns when Kafka has every one."""
        try:
            futures = [
                await self._producer.send(
                    self.topic, value=orjson.dumps(event), key=key.encode("utf-8")
                )
                for key, event in records
            ]
            await asyncio.wait_for(asyncio.gather(*futures), PUBLISH_TIMEOUT_SECONDS)
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"producing to {self.topic}: {exc!r}") from exc

    async def publish(self, key: str, event: Mapping[str, Any]) -> None:
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(
                    self.topic, value=orjson.dumps(event), key=key.encode("utf-8")
                ),
                PUBLISH_TIMEOUT_SECONDS,
            )
        except (KafkaError, TimeoutError) as exc:
            raise BrokerUnavailable(f"producing to {self.topic}: {exc!r}") from exc
