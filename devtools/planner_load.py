"""Generated traffic written to a store by the worker's own planner, without Kafka: for
measurements and tests of what the rows hold (benchmarks/storage.py, the dashboard test).

The planner decodes, reloads uncached calls, correlates and plans exactly as the worker does;
the writes follow the worker's order (rejected_event, call_event, then the rows). Offsets,
commits and retries are the pipeline's business and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from devtools.traffic import Message
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.core.batch_plan import BatchPlanner

TOPIC = "telephony.call-events"


@dataclass(frozen=True)
class Record:
    """What the planner reads of a Kafka record."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def as_records(messages: Iterable[Message]) -> list[Record]:
    return [Record(TOPIC, 0, i, m.key, m.value) for i, m in enumerate(messages)]


def load(
    store: ClickHouseStore, planner: BatchPlanner, records: Sequence[Record], batch: int
) -> None:
    for first in range(0, len(records), batch):
        decoded = planner.decode(records[first : first + batch])
        # As the worker: calls the cache no longer holds (evicted) reload from call_event.
        stored = store.load_call_events(decoded.missing) if decoded.missing else []
        reloaded = [(project, call, payload) for project, call, payload, *_ in stored]
        plan = planner.plan(decoded, reloaded, datetime.now(UTC))
        store.insert("rejected_event", plan.rejected_rows)
        store.insert("call_event", plan.event_rows)
        for name, rows in plan.tables.items():
            store.insert(str(name), rows)
