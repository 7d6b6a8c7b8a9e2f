"""In-memory implementations of the pipeline's ports, for the pipeline's unit tests only.

Every integration and fault test runs on real Kafka and the real chDB engine; these fakes let
the unit tests script what a broker or a store does (fail, stall, rebalance) and record what
the pipeline did, in order, in one shared journal.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from schemas.rows import TableName
from schemas.tables import TABLES_BY_NAME
from worker.pipeline.ports import (
    BrokerUnavailable,
    CallEventRow,
    CommitRejected,
    Rebalanced,
    StoreUnavailable,
    TopicPartition,
)

Journal = list[tuple[str, Any]]
"""What happened, in order: ("dead_letters", n), ("insert", table), ("commit", offsets)."""


@dataclass(frozen=True)
class FakeRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int = 0  # ms since the epoch (Kafka's CreateTime); tests that measure set it


class FakeStore:
    """The `Store` port over lists; `final` reads a table as ReplacingMergeTree FINAL would."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.inserts: list[tuple[str, list[dict[str, object]]]] = []
        self.fail: Callable[[str], BaseException | None] = lambda table: None
        # While cleared, inserts block (the thread waits): a ClickHouse that does not answer.
        self.open = threading.Event()
        self.open.set()
        self.loads = 0

    def insert(self, table: TableName, rows: Sequence[Mapping[str, object]]) -> None:
        if not self.open.wait(timeout=30):
            raise StoreUnavailable("fake store stalled for 30 s")
        error = self.fail(str(table))
        if error is not None:
            raise error
        self.inserts.append((str(table), [dict(row) for row in rows]))
        self.journal.append(("insert", str(table)))

    def load_call_events(self, keys: Sequence[tuple[str, str]]) -> list[CallEventRow]:
        self.loads += 1
        wanted = set(keys)
        out: list[CallEventRow] = []
        for table, rows in self.inserts:
            if table != "call_event":
                continue
            for row in rows:
                key = (str(row["project_id"]), str(row["call_id"]))
                if key in wanted:
                    out.append(
                        (
                            key[0],
                            key[1],
                            str(row["payload"]),
                            str(row["topic"]),
                            int(str(row["partition"])),
                            int(str(row["offset"])),
                        )
                    )
        return out

    def final(self, table: str) -> list[dict[str, object]]:
        """Rows by ORDER BY key, the highest version winning (the last insert on a tie)."""
        order_by = TABLES_BY_NAME[table].order_by
        kept: dict[tuple[object, ...], dict[str, object]] = {}
        for name, rows in self.inserts:
            if name != table:
                continue
            for row in rows:
                key = tuple(row[c] for c in order_by)
                current = kept.get(key)
                if current is None or int(str(row["version"])) >= int(str(current["version"])):
                    kept[key] = row
        return sorted(kept.values(), key=lambda r: tuple(str(r[c]) for c in order_by))


class FakeDeadLetters:
    """The `DeadLetterSink` port: records what would be on the DLQ topic."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.records: list[tuple[bytes | None, bytes]] = []
        self.fail: Callable[[str], BaseException | None] = lambda what: None

    async def send(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        error = self.fail("dead_letters")
        if error is not None:
            raise error
        self.records.extend(records)
        self.journal.append(("dead_letters", len(records)))


@dataclass
class ScriptedConsumer:
    """The `Consumer` port over in-memory partition logs, with a group of one member that
    the test can rebalance (`revoke`, `assign`)."""

    topic: str
    logs: dict[TopicPartition, list[FakeRecord]]
    journal: Journal
    committed_offsets: dict[TopicPartition, int] = field(default_factory=dict)
    positions: dict[TopicPartition, int] = field(default_factory=dict)
    fetches: int = 0
    # The broker cannot tell positions (a timeout): `position` raises BrokerUnavailable.
    position_fails: bool = False
    # Called before each fetch; a test can rebalance or stop from here.
    before_fetch: Callable[[int], Any] | None = None
    _assigned: set[TopicPartition] = field(default_factory=set)
    _on_revoked: Rebalanced | None = None
    _on_assigned: Rebalanced | None = None

    @classmethod
    def of(
        cls,
        topic: str,
        messages: Iterable[tuple[int, bytes | None, bytes]],
        partitions: int,
        journal: Journal,
    ) -> ScriptedConsumer:
        logs: dict[TopicPartition, list[FakeRecord]] = {
            TopicPartition(topic, p): [] for p in range(partitions)
        }
        for partition, key, value in messages:
            log = logs[TopicPartition(topic, partition)]
            log.append(FakeRecord(topic, partition, len(log), key, value))
        return cls(topic, logs, journal)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def subscribe(self, topic: str, on_revoked: Rebalanced, on_assigned: Rebalanced) -> None:
        assert topic == self.topic
        self._on_revoked, self._on_assigned = on_revoked, on_assigned

    async def assign(self, tps: set[TopicPartition]) -> None:
        for tp in tps:
            self.positions[tp] = self.committed_offsets.get(tp, 0)
        self._assigned |= tps
        assert self._on_assigned is not None
        await self._on_assigned(tps)

    async def revoke(self, tps: set[TopicPartition]) -> None:
        assert self._on_revoked is not None
        await self._on_revoked(tps)
        self._assigned -= tps

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Any]]:
        self.fetches += 1
        if self.before_fetch is not None:
            result = self.before_fetch(self.fetches)
            if asyncio.iscoroutine(result):
                await result
        if not self._assigned and self._on_assigned is not None and self.fetches == 1:
            await self.assign(set(self.logs))  # the first poll joins the group
        out: dict[TopicPartition, list[FakeRecord]] = {}
        budget = max_records
        for tp in sorted(self._assigned):
            position = self.positions.get(tp, 0)
            records = self.logs[tp][position : position + budget]
            if records:
                out[tp] = records
                self.positions[tp] = position + len(records)
                budget -= len(records)
            if budget <= 0:
                break
        if not out:
            await asyncio.sleep(min(timeout_ms / 1000, 0.005))
        return out

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        if not set(offsets) <= self._assigned:
            raise CommitRejected(f"not assigned: {sorted(set(offsets) - self._assigned)}")
        self.committed_offsets.update(offsets)
        self.journal.append(("commit", dict(offsets)))

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.positions[tp] = offset

    async def position(self, tp: TopicPartition) -> int:
        if self.position_fails:
            raise BrokerUnavailable(f"position of {tp}: timed out (scripted)")
        return self.positions.get(tp, 0)

    def assignment(self) -> set[TopicPartition]:
        return set(self._assigned)

    def highwater(self, tp: TopicPartition) -> int | None:
        # As the adapter: None for a partition not assigned (aiokafka asserts it is).
        return len(self.logs[tp]) if tp in self._assigned else None

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: len(self.logs[tp]) for tp in tps}

    async def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 0 for tp in tps}

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.committed_offsets.get(tp)

    def drained(self) -> bool:
        return all(self.committed_offsets.get(tp, 0) >= len(log) for tp, log in self.logs.items())


async def eventually(condition: Callable[[], bool], limit_s: float = 20.0) -> None:
    """Wait until `condition()` holds (polled: the fakes have no events to wait on)."""
    async with asyncio.timeout(limit_s):
        while not condition():  # noqa: ASYNC110
            await asyncio.sleep(0.002)
