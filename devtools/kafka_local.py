"""Thin wrapper around ``deploy/kafka.sh``: a local single-node Apache Kafka (KRaft) broker.

The script resolves the broker's jars from Maven Central with the machine's Maven (cached under
``~/.cache/ringlog/kafka/<version>``) and runs them with the machine's Java 17+. All
``RINGLOG_KAFKA_*`` environment variables are passed through to it (see the script's header).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "KafkaLocalError",
    "kafka_down",
    "kafka_status",
    "kafka_up",
    "script_path",
]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 9092

# Cold start = Maven fetch + storage format + broker start; the script itself waits up to
# RINGLOG_KAFKA_START_TIMEOUT (60 s) for the broker, so leave room for the fetch on top.
_UP_TIMEOUT_S = 900.0
_DOWN_TIMEOUT_S = 120.0
_STATUS_TIMEOUT_S = 30.0


class KafkaLocalError(RuntimeError):
    """``deploy/kafka.sh`` failed; the message carries the script's output."""

    def __init__(self, message: str, output: str = "", returncode: int | None = None) -> None:
        super().__init__(f"{message}\n{output}".rstrip())
        self.output = output
        self.returncode = returncode


def script_path() -> Path:
    """Path of ``deploy/kafka.sh`` in the repository checkout this package lives in."""
    return Path(__file__).resolve().parent.parent / "deploy" / "kafka.sh"


def _run(
    args: list[str],
    *,
    timeout: float,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    script = script_path()
    if not script.is_file():
        raise KafkaLocalError(f"{script} not found (kafka_local needs a repository checkout)")
    env = dict(os.environ)
    if extra_env:
        env.update(extra_env)
    cmd = ["bash", str(script), *args]
    try:
        return subprocess.run(
            cmd,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        out = _text(exc.stdout) + _text(exc.stderr)
        raise KafkaLocalError(f"{' '.join(cmd)} timed out after {timeout:.0f} s", out) from exc


def _text(data: str | bytes | None) -> str:
    if data is None:
        return ""
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    return data


def kafka_up(port: int | None = None) -> str:
    """Start the local broker if it is not running; return its bootstrap address.

    Idempotent: when the broker is already running, returns its address at once.
    Raises :class:`KafkaLocalError` with the script's output on failure.
    """
    extra = {"RINGLOG_KAFKA_PORT": str(port)} if port is not None else None
    proc = _run(["up"], timeout=_UP_TIMEOUT_S, extra_env=extra)
    output = proc.stderr + proc.stdout
    if proc.returncode != 0:
        raise KafkaLocalError(
            f"deploy/kafka.sh up failed (exit {proc.returncode})", output, proc.returncode
        )
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if lines:
        return lines[-1]
    if port is None:
        port = int(os.environ.get("RINGLOG_KAFKA_PORT", DEFAULT_PORT))
    return f"{DEFAULT_HOST}:{port}"


def kafka_down(purge: bool = False) -> None:
    """Stop the local broker (idempotent); ``purge=True`` also deletes its data dir."""
    args = ["down", "--purge"] if purge else ["down"]
    proc = _run(args, timeout=_DOWN_TIMEOUT_S)
    if proc.returncode != 0:
        raise KafkaLocalError(
            f"deploy/kafka.sh down failed (exit {proc.returncode})",
            proc.stderr + proc.stdout,
            proc.returncode,
        )


def kafka_status() -> bool:
    """True when the broker started by ``deploy/kafka.sh`` is running."""
    proc = _run(["status"], timeout=_STATUS_TIMEOUT_S)
    if proc.returncode == 0:
        return True
    if proc.returncode == 3:
        return False
    raise KafkaLocalError(
        f"deploy/kafka.sh status failed (exit {proc.returncode})",
        proc.stderr + proc.stdout,
        proc.returncode,
    )


async def wait_for_group_coordinator(bootstrap: str, group_id: str, limit_s: float = 60.0) -> None:
    """Wait until the broker can coordinate `group_id`.

    A new broker creates its `__consumer_offsets` topic on the first group request and answers
    "coordinator not available" for a few seconds meanwhile; a consumer that joins then logs
    that warm-up as errors. Asking first keeps a first run's output clean.
    """
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.errors import KafkaError

    deadline = time.monotonic() + limit_s
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            try:
                await admin.find_coordinator(group_id)
                return
            except KafkaError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        await admin.close()


async def topic_end_offsets(brokers: str, topic: str) -> dict[int, int]:
    """partition -> log-end offset of `topic` (read without joining a group)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=brokers)  # no group: reads nothing
    await consumer.start()
    try:
        partitions: set[int] | None = None
        for _ in range(100):
            partitions = consumer.partitions_for_topic(topic)
            if partitions:
                break
            await asyncio.sleep(0.1)
        if not partitions:
            raise RuntimeError(f"topic {topic!r} has no partitions in the broker's metadata")
        offsets = await consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: int(off) for tp, off in offsets.items()}
    finally:
        await consumer.stop()
