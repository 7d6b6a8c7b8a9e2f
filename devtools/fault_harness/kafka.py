"""Kafka for a run: produce every message, the group's committed and the topic's end offsets,
`wait_drained`, and LocalBroker (a private broker a test may stop and start)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devtools.fault_harness.setup import ROOT, Setup
from devtools.fault_harness.worker_process import free_port
from devtools.producer import produce


async def produce_all(setup: Setup, generated: Sequence[Any], rate: float | None) -> None:
    """Produce and require every message acknowledged."""
    if not generated:
        return
    stats = await produce(
        generated, brokers=setup.brokers, topic=setup.topic, rate=rate, progress=False
    )
    assert stats.failed == 0, stats.errors


async def committed_and_end(setup: Setup) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offsets and the topic's end offsets, straight from Kafka."""
    admin = AIOKafkaAdminClient(bootstrap_servers=setup.brokers)
    consumer = AIOKafkaConsumer(bootstrap_servers=setup.brokers)
    await admin.start()
    await consumer.start()
    try:
        offsets = await admin.list_consumer_group_offsets(setup.name)
        committed = {
            tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == setup.topic
        }
        described = await admin.describe_topics([setup.topic])
        parts = {p["partition"] for d in described for p in d.get("partitions", [])}
        ends = await consumer.end_offsets([TopicPartition(setup.topic, p) for p in parts])
        return committed, {tp.partition: off for tp, off in ends.items()}
    finally:
        await consumer.stop()
        await admin.close()


async def wait_drained(setup: Setup, limit_s: float = 180) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        committed, ends = await committed_and_end(setup)
        if ends and all(committed.get(p, 0) >= end for p, end in ends.items()):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not drained: committed={committed} ends={ends}")
        await asyncio.sleep(0.3)


@dataclass
class LocalBroker:
    """A private single-node broker (deploy/kafka.sh with its own home and ports), so a test
    can stop and start it without touching the shared broker on 9092."""

    home: Path
    port: int = field(default_factory=free_port)
    controller_port: int = 0
    # More deploy/kafka.sh settings, e.g. {"RINGLOG_KAFKA_SASL_SSL": "1"}.
    extra_env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        while not self.controller_port or self.controller_port == self.port:
            self.controller_port = free_port()

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _run(self, *args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ)
        env.update(
            {
                "RINGLOG_KAFKA_PORT": str(self.port),
                "RINGLOG_KAFKA_CONTROLLER_PORT": str(self.controller_port),
                "RINGLOG_KAFKA_HOME": str(self.home),
                "RINGLOG_KAFKA_PURGE": "0",
                **self.extra_env,
            }
        )
        return subprocess.run(
            ["bash", str(ROOT / "deploy" / "kafka.sh"), *args],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def up(self) -> str:
        proc = self._run("up")
        if proc.returncode != 0:
            raise AssertionError(f"kafka.sh up failed:\n{proc.stdout}\n{proc.stderr}")
        return self.bootstrap

    def down(self, purge: bool = False) -> None:
        proc = self._run("down", *(["--purge"] if purge else []), timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"kafka.sh down failed:\n{proc.stdout}\n{proc.stderr}")

    def running(self) -> bool:
        return self._run("status", timeout=30).returncode == 0
