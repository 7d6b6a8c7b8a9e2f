"""Harness for pipeline tests: a real worker (in this process) on real Kafka and chDB."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from devtools.producer import ensure_topic
from tests.support.builders import RATES_FILE
from worker.service.faust_host import start_in_background
from worker.service.lifecycle import Worker
from worker.service.settings import Settings


def fresh_settings(bootstrap: str, chdb_url: str, **overrides: Any) -> Settings:
    name = f"t-{uuid.uuid4().hex[:10]}"
    values: dict[str, Any] = {
        "kafka_brokers": bootstrap,
        "topic": name,
        "dlq_topic": f"{name}.dlq",
        "group_id": name,
        "clickhouse_url": chdb_url,
        "database": name.replace("-", "_"),
        "rates_file": RATES_FILE,
        "http_port": 0,
        "batch_max_seconds": 0.2,
    }
    values.update(overrides)
    return Settings(**values)


async def produce(settings: Settings, messages: Sequence[tuple[bytes | None, bytes]]) -> None:
    await ensure_topic(settings.kafka_brokers, settings.topic, partitions=3)
    await ensure_topic(settings.kafka_brokers, settings.dlq_topic, partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_brokers, acks="all", max_request_size=8 * 1024 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(settings.topic, value=v, key=k) for k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@dataclass
class Running:
    worker: Worker
    stop: asyncio.Event
    task: asyncio.Task[None]

    async def drained(self, limit_s: float = 60.0) -> None:
        """Wait until every message on the topic is committed (so durable in ClickHouse)."""
        consumer = self.worker.loop.consumer
        topic = self.worker.settings.topic
        deadline = time.monotonic() + limit_s
        while True:
            if self.task.done():
                self.task.result()
                raise AssertionError("worker stopped")
            tps = sorted(tp for tp in consumer.assignment() if tp.topic == topic)
            ends = await consumer.end_offsets(tps) if tps else {}
            committed = self.worker.loop.committed
            if ends and all(committed.get(tp, 0) >= end for tp, end in ends.items()):
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"not drained: ends={ends} committed={committed}")
            await asyncio.sleep(0.1)

    def query(self, sql: str) -> list[dict[str, Any]]:
        columns, rows = self.worker.store.query(sql)
        return [dict(zip(columns, row, strict=True)) for row in rows]


@asynccontextmanager
async def running_worker(settings: Settings) -> AsyncIterator[Running]:
    await ensure_topic(settings.kafka_brokers, settings.topic, partitions=3)
    await ensure_topic(settings.kafka_brokers, settings.dlq_topic, partitions=1)
    worker, stop, task = await start_in_background(settings)
    try:
        yield Running(worker, stop, task)
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


async def read_dlq(settings: Settings, expected: int, limit_s: float = 30.0) -> list[Any]:
    consumer = AIOKafkaConsumer(
        settings.dlq_topic,
        bootstrap_servers=settings.kafka_brokers,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + limit_s
        while len(out) < expected and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out
