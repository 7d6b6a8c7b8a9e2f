"""The local Apache Kafka broker from deploy/kafka.sh: up, create a topic, produce, consume.

The broker is brought up idempotently and left running for other tests.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from devtools.kafka_local import kafka_status, kafka_up

pytestmark = pytest.mark.kafka

TWO_MB = 2 * 1024 * 1024
FOUR_MIB = 4 * 1024 * 1024


@pytest.fixture(scope="module")
def bootstrap() -> str:
    return kafka_up()


async def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name=topic, num_partitions=partitions, replication_factor=1)]
        )
        for _ in range(50):
            if topic in await admin.list_topics():
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"topic {topic} not listed after create")
    finally:
        await admin.close()


async def _consume(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0
) -> list[tuple[int, bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-kafka-local-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=FOUR_MIB,
        fetch_max_bytes=2 * FOUR_MIB,
    )
    await consumer.start()
    got: list[tuple[int, bytes | None, bytes | None]] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(got) < expected and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for tp, records in batches.items():
                got.extend((tp.partition, r.key, r.value) for r in records)
        await consumer.commit()
        # nothing beyond what was produced
        extra = await consumer.getmany(timeout_ms=500)
        got.extend((tp.partition, r.key, r.value) for tp, rs in extra.items() for r in rs)
    finally:
        await consumer.stop()
    return got


async def _roundtrip(bootstrap: str, topic: str) -> None:
    await _create_topic(bootstrap, topic, partitions=4)
    sent = [(f"call-{i % 3}".encode(), f'{{"n": {i}}}'.encode()) for i in range(10)]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in sent:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()

    got = await _consume(bootstrap, topic, expected=len(sent))

    assert len(got) == len(sent), got
    assert sorted((k, v) for _, k, v in got) == sorted(sent)
    # one key -> one partition, and per-key order is the send order
    for key in {k for k, _ in sent}:
        parts = {p for p, k, _ in got if k == key}
        assert len(parts) == 1, (key, parts)
        assert [v for _, k, v in got if k == key] == [v for k, v in sent if k == key]


async def _big_message(bootstrap: str, topic: str) -> None:
    payload = b"x" * TWO_MB
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=FOUR_MIB)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=payload, key=b"big")
    finally:
        await producer.stop()
    got = await _consume(bootstrap, topic, expected=1)
    assert len(got) == 1
    assert got[0][1] == b"big"
    assert got[0][2] == payload


def test_kafka_up_is_idempotent(bootstrap: str) -> None:
    assert bootstrap.startswith("127.0.0.1:")
    assert kafka_status()
    assert kafka_up() == bootstrap


def test_produce_consume_roundtrip(bootstrap: str) -> None:
    asyncio.run(_roundtrip(bootstrap, f"ringlog-test-{uuid.uuid4().hex[:12]}"))


def test_two_mb_message_fits(bootstrap: str) -> None:
    # auto-created topic (auto.create.topics.enable=true)
    asyncio.run(_big_message(bootstrap, f"ringlog-test-big-{uuid.uuid4().hex[:12]}"))
