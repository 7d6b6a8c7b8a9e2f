"""The pipeline's `Consumer` port on aiokafka: a group member with manual commits.

Translates aiokafka's errors into the port's (`CommitRejected` when a rebalance took the
partitions, `BrokerUnavailable` when Kafka does not answer) and runs the pipeline's rebalance
callbacks from aiokafka's listener, inside the rebalance.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiokafka
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from worker.adapters.kafka.connection import KafkaConnection
from worker.adapters.kafka.topics import ensure_topic
from worker.pipeline.ports import BrokerUnavailable, CommitRejected, Rebalanced, TopicPartition

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
BROKER_TIMEOUT_SECONDS = 10.0


def _ours(tps: Iterable[Any]) -> set[TopicPartition]:
    return {TopicPartition(tp.topic, tp.partition) for tp in tps}


def _theirs(tp: TopicPartition) -> aiokafka.TopicPartition:
    return aiokafka.TopicPartition(tp.topic, tp.partition)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, on_revoked: Rebalanced, on_assigned: Rebalanced) -> None:
        self._on_revoked = on_revoked
        self._on_assigned = on_assigned

    async def on_partitions_revoked(self, revoked: set[Any]) -> None:
        await self._on_revoked(_ours(revoked))

    async def on_partitions_assigned(self, assigned: set[Any]) -> None:
        await self._on_assigned(_ours(assigned))


class KafkaConsumer:
    """`worker.pipeline.ports.Consumer` over `AIOKafkaConsumer`."""

    def __init__(
        self, connection: KafkaConnection, *, group_id: str, topic: str, dlq_topic: str
    ) -> None:
        self._connection = connection
        self._topics = (topic, dlq_topic)
        self._consumer = AIOKafkaConsumer(
            **connection.client_options(),
            group_id=group_id,
            enable_auto_commit=False,  # offsets are committed only by the consume loop
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=MAX_MESSAGE_BYTES,
            fetch_max_bytes=64 * 1024 * 1024,
            max_poll_interval_ms=600_000,  # a long ClickHouse outage must not evict us
        )

    async def start(self) -> None:
        # A missing topic would leave the group with no partitions until the next metadata
        # refresh (minutes): create it (never alter it) before subscribing.
        for topic in self._topics:
            await ensure_topic(
                self._connection.brokers,
                topic,
                alter_existing=False,
                client_options=self._connection.client_options(),
            )
        await self._consumer.start()

    async def stop(self) -> None:
        await self._consumer.stop()

    def subscribe(self, topic: str, on_revoked: Rebalanced, on_assigned: Rebalanced) -> None:
        self._consumer.subscribe([topic], listener=_Listener(on_revoked, on_assigned))

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Any]]:
        records = await self._consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        return {TopicPartition(tp.topic, tp.partition): msgs for tp, msgs in records.items()}

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        try:
            await self._consumer.commit({_theirs(tp): off for tp, off in offsets.items()})
        except (CommitFailedError, IllegalStateError) as exc:
            raise CommitRejected(str(exc)) from exc
        except KafkaError as exc:
            raise BrokerUnavailable(f"commit: {exc!r}") from exc

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._consumer.seek(_theirs(tp), offset)

    async def position(self, tp: TopicPartition) -> int:
        try:
            return int(
                await asyncio.wait_for(self._consumer.position(_theirs(tp)), BROKER_TIMEOUT_SECONDS)
            )
        except (KafkaError, TimeoutError, AssertionError) as exc:
            # AssertionError: aiokafka asserts the partition is still assigned, and a
            # rebalance may have taken it meanwhile
            raise BrokerUnavailable(f"position of {tp}: {exc!r}") from exc

    def assignment(self) -> set[TopicPartition]:
        return _ours(self._consumer.assignment())

    def highwater(self, tp: TopicPartition) -> int | None:
        try:
            value = self._consumer.highwater(_theirs(tp))
        except AssertionError:
            # aiokafka asserts the partition is assigned, and a rebalance may have taken it
            return None
        return None if value is None else int(value)

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        ends = await self._consumer.end_offsets([_theirs(tp) for tp in tps])
        return {TopicPartition(tp.topic, tp.partition): int(off) for tp, off in ends.items()}

    async def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        starts = await self._consumer.beginning_offsets([_theirs(tp) for tp in tps])
        return {TopicPartition(tp.topic, tp.partition): int(off) for tp, off in starts.items()}

    async def committed(self, tp: TopicPartition) -> int | None:
        value = await self._consumer.committed(_theirs(tp))
        return None if value is None else int(value)
