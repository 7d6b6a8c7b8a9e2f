"""I/O adapters around `devtools.traffic`: send messages to Kafka, read them from JSONL files,
create the topic.

`produce` pipelines sends: each `send()` only appends to aiokafka's accumulator and returns a
delivery future; the futures are awaited in chunks, so many batches are in flight at once
instead of one round trip per message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from devtools.traffic import Message
from worker.adapters.kafka.topics import ensure_topic

__all__ = ["ProduceStats", "ensure_topic", "produce", "read_jsonl"]

MAX_MESSAGE_BYTES = 4 * 1024 * 1024  # what produce() lets one message be


@dataclass(slots=True)
class ProduceStats:
    """What `produce` did. `sent` counts messages the broker acknowledged."""

    sent: int = 0
    failed: int = 0
    bytes: int = 0
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)  # the first few failures

    @property
    def rate(self) -> float:
        """Acknowledged messages per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} msg/s" if speed else "- msg/s", style="progress.data.speed")


def _progress() -> Progress:
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        transient=False,
    )


async def produce(
    messages: Iterable[Message],
    *,
    brokers: str,
    topic: str,
    rate: float | None = None,
    progress: bool = True,
    total: int | None = None,
    chunk: int = 2_000,
    linger_ms: int = 10,
    max_batch_size: int = 256 * 1024,
    max_request_size: int = MAX_MESSAGE_BYTES,
    enable_idempotence: bool = False,
    compression_type: str | None = None,
) -> ProduceStats:
    """Send `messages` (with their keys) to `topic` and wait until every one is acknowledged.

    `rate` limits the pace to that many messages per second; None sends as fast as possible.
    A message the broker or the client refuses (too large, say) is counted in
    `ProduceStats.failed` with its error kept in `errors`; it does not stop the run.
    """
    if rate is not None and rate <= 0:
        raise ValueError("rate must be > 0")
    producer = AIOKafkaProducer(
        bootstrap_servers=brokers,
        acks="all",
        linger_ms=linger_ms,
        max_batch_size=max_batch_size,
        max_request_size=max_request_size,
        enable_idempotence=enable_idempotence,
        compression_type=compression_type,
    )
    stats = ProduceStats()
    bar = _progress() if progress else None
    task_id = bar.add_task(f"→ {topic}", total=total) if bar is not None else None
    # with a rate limit, check the pace often enough that bursts stay small
    step = chunk if rate is None else max(1, min(chunk, int(rate / 20) or 1))
    await producer.start()
    if bar is not None:
        bar.start()
    t0 = time.perf_counter()
    try:
        # two chunks in flight: the previous one is awaited while the current one fills,
        # so the accumulator never runs dry waiting for acknowledgements
        previous: list[tuple[asyncio.Future[Any], int]] = []
        current: list[tuple[asyncio.Future[Any], int]] = []
        for offered, msg in enumerate(messages, start=1):
            try:
                fut = await producer.send(topic, msg.value, key=msg.key)
            except KafkaError as exc:  # refused before it was queued (e.g. too large)
                _fail(stats, exc, msg)
            else:
                current.append((fut, len(msg.value)))
            if offered % step == 0:
                await _settle(previous, stats)
                previous, current = current, []
                if bar is not None and task_id is not None:
                    bar.update(task_id, completed=stats.sent + stats.failed)
                if rate is not None:
                    ahead = offered / rate - (time.perf_counter() - t0)
                    if ahead > 0:
                        await asyncio.sleep(ahead)
        await producer.flush()
        await _settle(previous, stats)
        await _settle(current, stats)
    finally:
        stats.elapsed_s = time.perf_counter() - t0
        await producer.stop()
        if bar is not None:
            if task_id is not None:
                bar.update(task_id, completed=stats.sent + stats.failed)
            bar.stop()
    return stats


async def _settle(pending: list[tuple[asyncio.Future[Any], int]], stats: ProduceStats) -> None:
    if not pending:
        return
    results = await asyncio.gather(*(f for f, _ in pending), return_exceptions=True)
    for (_, size), result in zip(pending, results, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            _fail(stats, result, None)
        else:
            stats.sent += 1
            stats.bytes += size


def _fail(stats: ProduceStats, exc: Exception, msg: Message | None) -> None:
    stats.failed += 1
    if len(stats.errors) < 20:
        where = f" (key {msg.key!r}, {len(msg.value)} bytes)" if msg is not None else ""
        stats.errors.append(f"{type(exc).__name__}: {exc}{where}")


def read_jsonl(path: Path, keys: Path | None = None) -> Iterator[Message]:
    """Messages from a JSONL file, one value per line, read as bytes (lines may be invalid
    UTF-8 or invalid JSON: they are passed on untouched; only the final empty line after the
    last newline is skipped).

    The key is the line's `call_id` when the line is a JSON object with a non-empty string
    `call_id`, else None. With `keys` (a file with one key per line, same line numbers, like
    `examples/sample-40-calls/keys.txt`), the keys come from that file instead (an empty line
    means no key): that keeps the keys of lines that are not JSON. `valid` is True (unknown).
    """
    lines = _lines(path)
    key_lines = _lines(keys) if keys is not None else None
    if key_lines is not None and len(key_lines) != len(lines):
        raise ValueError(f"{keys} has {len(key_lines)} lines, {path} has {len(lines)}")
    for i, line in enumerate(lines):
        call_id = ""
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            cid = obj.get("call_id")
            if isinstance(cid, str):
                call_id = cid
        if key_lines is not None:
            key = key_lines[i] or None
        else:
            key = call_id.encode("utf-8") if call_id else None
        yield Message(key, line, call_id, True)


def _lines(path: Path) -> list[bytes]:
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines
