"""The pipeline's ports: what it needs of Kafka, of the store and of the dead-letter topic.

The consume loop, the batch preparer and the plan writer are written against these Protocols
only; `worker.adapters` implements them with aiokafka and clickhouse-connect, and the unit tests
with in-memory fakes.
The exceptions say how the pipeline reacts: `*Unavailable` is transient (retry with backoff,
never skip input), `StoreError` is permanent (stop the worker: the input is kept uncommitted),
`CommitRejected` means a rebalance took the partitions (their new owner replays them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from schemas.rows import TableName
from worker.core.batch_plan import Record


class TopicPartition(NamedTuple):
    """One partition of a topic (equal to aiokafka's TopicPartition: both are plain tuples)."""

    topic: str
    partition: int


class Message(Record, Protocol):
    """A consumed record: what the pipeline needs of aiokafka's ConsumerRecord (the core's
    `Record`, plus the timestamp the commit latency is measured from)."""

    @property
    def timestamp(self) -> int:
        """Milliseconds since the epoch: CreateTime (the producer's clock) or LogAppendTime
        (the broker's), as the topic is configured; -1 when the record has none."""


# -- failures ---------------------------------------------------------------------------------


class StoreUnavailable(Exception):
    """Transient: the store cannot be reached right now. Retry with backoff."""


class StoreError(Exception):
    """Permanent: bad SQL, unknown table, schema drift, bad configuration."""


class DeadLetterUnavailable(ConnectionError):
    """The DLQ topic could not take the dead letters (broker down, timeout). Transient."""


class BrokerUnavailable(ConnectionError):
    """Kafka did not answer a request of the consumer (position, offsets). Transient."""


class CommitRejected(Exception):
    """The group rebalanced under the commit: the partitions' new owner replays the batch."""


# -- ports ------------------------------------------------------------------------------------

CallEventRow = tuple[str, str, str, str, int, int]
"""(project_id, call_id, payload, topic, partition, offset) of one stored event."""

Rebalanced = Callable[[set[TopicPartition]], Awaitable[None]]


class Store(Protocol):
    """Where rows become durable, and where a call's earlier events are reloaded from."""

    def insert(self, table: TableName, rows: Sequence[Mapping[str, object]]) -> None:
        """Insert rows as one block; raise StoreUnavailable (retry) or StoreError (fatal)."""

    def load_call_events(self, keys: Sequence[tuple[str, str]]) -> list[CallEventRow]:
        """Stored events of the given (project_id, call_id) pairs, duplicates allowed."""


class DeadLetterSink(Protocol):
    """The dead-letter topic: returns once every record is acknowledged by all replicas."""

    async def send(self, records: Sequence[tuple[bytes | None, bytes]]) -> None: ...


class Consumer(Protocol):
    """A Kafka group consumer with manual commits (aiokafka's semantics)."""

    async def start(self) -> None:
        """Connect and create the input and dead-letter topics when missing."""

    async def stop(self) -> None: ...

    def subscribe(self, topic: str, on_revoked: Rebalanced, on_assigned: Rebalanced) -> None:
        """Join the group; the callbacks run inside the rebalance, before it completes."""

    async def getmany(
        self, timeout_ms: int, max_records: int
    ) -> Mapping[TopicPartition, Sequence[Any]]:
        """Buffered records (Message-like) per partition, waiting up to timeout_ms."""

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the next offsets to read; raise CommitRejected or BrokerUnavailable."""

    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    async def position(self, tp: TopicPartition) -> int:
        """The offset of the next record to fetch; BrokerUnavailable when unknown."""

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's log end as the latest fetch saw it; None when not known yet or
        not assigned (any more)."""

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]: ...

    async def beginning_offsets(
        self, tps: Iterable[TopicPartition]
    ) -> dict[TopicPartition, int]: ...

    async def committed(self, tp: TopicPartition) -> int | None: ...
