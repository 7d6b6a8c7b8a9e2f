"""The aiokafka adapter of the pipeline's `Consumer` port, where it needs no broker."""

from __future__ import annotations

import asyncio

from worker.adapters.kafka.connection import KafkaConnection
from worker.adapters.kafka.consumer import KafkaConsumer
from worker.pipeline.ports import TopicPartition


def test_the_highwater_of_a_partition_not_assigned_is_unknown() -> None:
    """aiokafka asserts the partition is assigned; a rebalance can take one from a batch in
    the making, and the consume loop asks about its partitions (the backlog's end): the port
    answers None, not AssertionError (a CI run saw the worker crash on it)."""

    async def ask() -> int | None:
        consumer = KafkaConsumer(
            KafkaConnection("127.0.0.1:1"), group_id="g", topic="calls", dlq_topic="calls.dlq"
        )
        try:
            return consumer.highwater(TopicPartition("calls", 0))
        finally:
            await consumer.stop()

    assert asyncio.run(ask()) is None
