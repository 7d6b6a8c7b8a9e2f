"""`ringlog lag`: the consumer group's lag, read straight from Kafka.

Works while the worker is down (it asks the broker, not the worker):

* committed offsets: the group's offsets from the group coordinator
  (`AIOKafkaAdminClient.list_consumer_group_offsets`); a partition the group never committed
  counts from its log start offset (the worker starts there: auto_offset_reset=earliest);
* log-end offsets: a short-lived consumer without a group (`end_offsets`);
* lag = log-end - committed, per partition: every message not yet durable in ClickHouse;
* time lag (only with `with_age`): the age, now minus the Kafka message timestamp, of the
  oldest uncommitted message of each partition, i.e. the record at the committed offset,
  read by a consumer without a group (nothing is committed). 0 when the partition has no lag.
  With producer timestamps (CreateTime, the default) it is how long ago that event was
  produced: how far behind the worker is in wall-clock time, an upper bound for
  partitions written in bursts.

Exit status, Nagios style: 0 OK, 2 CRITICAL (above a threshold), 3 UNKNOWN (Kafka
unreachable, unknown topic or group, time lag not measurable).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from worker.adapters.kafka.connection import KafkaConnection

OK, CRITICAL, UNKNOWN = 0, 2, 3
STATUS_NAMES = {OK: "OK", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


class LagUnavailable(Exception):
    """Kafka unreachable, topic or group unknown: the lag cannot be told (exit 3)."""


@dataclass
class PartitionLag:
    partition: int
    committed: int | None  # None: the group never committed this partition
    start: int
    end: int
    lag: int
    oldest_uncommitted_age_seconds: float | None = None


@dataclass
class LagReport:
    topic: str
    group: str
    partitions: list[PartitionLag] = field(default_factory=list)
    measured_at: float = 0.0

    @property
    def total_lag(self) -> int:
        return sum(p.lag for p in self.partitions)

    @property
    def max_age_seconds(self) -> float | None:
        ages = [p.oldest_uncommitted_age_seconds for p in self.partitions]
        if any(a is None for a in ages):
            return None
        return max((a for a in ages if a is not None), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "group": self.group,
            "measured_at": self.measured_at,
            "partitions": [asdict(p) for p in self.partitions],
            "total_lag": self.total_lag,
            "max_age_seconds": self.max_age_seconds,
        }


@dataclass
class Verdict:
    code: int
    line: str


async def read_lag(
    connection: KafkaConnection,
    topic: str,
    group: str,
    *,
    with_age: bool,
    limit_s: float = 30.0,
) -> LagReport:
    """The group's lag on its input topic; LagUnavailable when it cannot be told."""
    try:
        return await asyncio.wait_for(_read_lag(connection, topic, group, with_age), limit_s)
    except TimeoutError:
        raise LagUnavailable(
            f"no answer from Kafka at {connection.brokers} within {limit_s:.0f}s"
        ) from None
    except KafkaError as exc:
        raise LagUnavailable(f"Kafka at {connection.brokers}: {exc!r}") from None
    except OSError as exc:
        raise LagUnavailable(f"Kafka at {connection.brokers}: {exc}") from None


async def _read_lag(
    connection: KafkaConnection, topic: str, group: str, with_age: bool
) -> LagReport:
    options = connection.client_options()
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        topics = await admin.describe_topics([topic])
        described = await admin.describe_consumer_groups([group])
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    parts = _partitions(topics, topic)
    group_known = bool(offsets) or _group_exists(described)
    if not group_known:
        raise LagUnavailable(f"consumer group {group!r} is unknown to Kafka")

    consumer = AIOKafkaConsumer(
        **options, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        ends = await consumer.end_offsets(tps)
        starts = await consumer.beginning_offsets(tps)
        report = LagReport(topic, group, measured_at=time.time())
        for tp in tps:
            meta = offsets.get(tp)
            committed = meta.offset if meta is not None and meta.offset >= 0 else None
            start, end = int(starts[tp]), int(ends[tp])
            # Retention may have deleted messages below the committed offset, never above.
            position = max(committed, start) if committed is not None else start
            report.partitions.append(
                PartitionLag(tp.partition, committed, start, end, max(0, end - position))
            )
        if with_age:
            await _measure_ages(consumer, report)
        return report
    finally:
        await consumer.stop()


def _group_exists(described: list[Any]) -> bool:
    """Whether describe_consumer_groups knows the group (a live group with members)."""
    for response in described:
        for group in getattr(response, "groups", []):
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            error_code, state = group[0], group[2]
            if error_code == 0 and state not in ("Dead", ""):
                return True
    return False


def _partitions(described: list[Any], topic: str) -> set[int]:
    for entry in described:
        if entry.get("topic") == topic and entry.get("error_code") == 0:
            parts = {int(p["partition"]) for p in entry.get("partitions", [])}
            if parts:
                return parts
    raise LagUnavailable(f"topic {topic!r} is unknown to Kafka")


async def _measure_ages(consumer: AIOKafkaConsumer, report: LagReport) -> None:
    """Age of the record at the committed offset (the oldest uncommitted one) per partition."""
    lagging = {p.partition: p for p in report.partitions if p.lag > 0}
    for p in report.partitions:
        if p.lag == 0:
            p.oldest_uncommitted_age_seconds = 0.0
    if not lagging:
        return
    tps = [TopicPartition(report.topic, n) for n in lagging]
    consumer.assign(tps)
    for tp in tps:
        p = lagging[tp.partition]
        consumer.seek(tp, max(p.committed or 0, p.start))
    deadline = time.monotonic() + 10.0
    pending = set(tps)
    while pending and time.monotonic() < deadline:
        batch = await consumer.getmany(*pending, timeout_ms=500, max_records=1)
        for tp, records in batch.items():
            if records and tp in pending:
                pending.discard(tp)
                age = time.time() - records[0].timestamp / 1000.0
                lagging[tp.partition].oldest_uncommitted_age_seconds = max(0.0, age)
                consumer.pause(tp)


def evaluate(report: LagReport, max_messages: int | None, max_seconds: float | None) -> Verdict:
    """OK / CRITICAL / UNKNOWN against the thresholds, with a one-line summary."""
    total = report.total_lag
    age = report.max_age_seconds
    summary = f"group {report.group} topic {report.topic}: lag {total} messages"
    if max_seconds is not None:
        summary += ", oldest uncommitted " + ("unknown" if age is None else f"{age:.0f}s")
    perf = f"lag={total};{max_messages if max_messages is not None else ''}"
    if age is not None:
        perf += f" age={age:.1f}s;{max_seconds if max_seconds is not None else ''}"
    problems: list[str] = []
    if max_messages is not None and total > max_messages:
        problems.append(f"lag {total} > {max_messages} messages")
    if max_seconds is not None and age is not None and age > max_seconds:
        problems.append(f"oldest uncommitted message {age:.0f}s > {max_seconds:g}s old")
    if problems:
        return Verdict(CRITICAL, f"CRITICAL - {'; '.join(problems)} ({summary}) | {perf}")
    if max_seconds is not None and age is None:
        return Verdict(
            UNKNOWN, f"UNKNOWN - could not read the oldest uncommitted message ({summary})"
        )
    return Verdict(OK, f"OK - {summary} | {perf}")
