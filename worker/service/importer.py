"""`ringlog import`: a provider's records, normalized, to the input topic.

Records are normalized one by one (pure), their events produced in batches of BATCH_EVENTS and
each batch awaited until Kafka has all of it (acks=all); what a normalizer cannot map goes to
the dead-letter topic with its reason. Event ids come from the provider's own ids, so running
an import twice, or over overlapping ranges, changes no row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from worker.adapters.kafka.dead_letters import DeadLetterProducer
from worker.adapters.kafka.event_publisher import KafkaEventPublisher
from worker.core.providers.base import Normalized
from worker.gateway.delivery import dead_letter
from worker.service.settings import Settings

BATCH_EVENTS: Final = 500


@dataclass
class ImportSummary:
    read: int = 0  # records read from the source
    produced: int = 0  # events acknowledged by Kafka
    rejected: int = 0  # records (or parts) dead-lettered, with their reason
    reasons: dict[str, int] = field(default_factory=dict)


class EventImporter:
    def __init__(self, settings: Settings, provider: str) -> None:
        connection = settings.kafka_connection()
        self.provider = provider
        self.publisher = KafkaEventPublisher(connection, settings.topic)
        self.dead_letters = DeadLetterProducer(connection, settings.dlq_topic)
        self.summary = ImportSummary()
        self._events: list[tuple[str, Mapping[str, Any]]] = []
        self._dead: list[tuple[bytes | None, bytes]] = []

    async def start(self) -> None:
        await self.publisher.start()
        await self.dead_letters.start()

    async def stop(self) -> None:
        try:
            await self.publisher.stop()
        finally:
            await self.dead_letters.stop()

    async def add(self, normalized: Normalized, raw: bytes, route: str) -> None:
        """One source record's result; flushes when a batch is full."""
        self.summary.read += 1
        self._events.extend((str(e["call_id"]), e) for e in normalized.events)
        for unmapped in normalized.unmapped:
            self._dead.append(
                dead_letter(
                    self.provider, route, unmapped.code, unmapped.message, unmapped.field, raw
                )
            )
            self.summary.reasons[unmapped.code] = self.summary.reasons.get(unmapped.code, 0) + 1
        if len(self._events) >= BATCH_EVENTS:
            await self.flush()

    async def flush(self) -> None:
        """Everything added so far, acknowledged by Kafka (raises BrokerUnavailable or
        DeadLetterUnavailable otherwise: the import stops, a rerun resumes)."""
        events, self._events = self._events, []
        dead, self._dead = self._dead, []
        if events:
            await self.publisher.publish_all(events)
            self.summary.produced += len(events)
        if dead:
            await self.dead_letters.send(dead)
            self.summary.rejected += len(dead)


@dataclass
class ResumePoint:
    """Where a PortSIP import stopped: records are read in `started_at` order, so the next
    run asks from the last imported `started_at` and skips the ids already seen at it."""

    path: Path
    since: dt.datetime | None = None
    seen: set[str] = field(default_factory=set)

    @classmethod
    def load(cls, path: Path) -> ResumePoint:
        if not path.is_file():
            return cls(path)
        data = json.loads(path.read_text("utf-8"))
        since = dt.datetime.fromisoformat(data["since"]) if data.get("since") else None
        return cls(path, since, set(data.get("seen", [])))

    def advance(self, started_at: dt.datetime, record_id: str) -> None:
        if self.since is None or started_at > self.since:
            self.since, self.seen = started_at, {record_id}
        elif started_at == self.since:
            self.seen.add(record_id)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        body = {"since": self.since.isoformat() if self.since else None, "seen": sorted(self.seen)}
        tmp.write_text(json.dumps(body), "utf-8")
        tmp.replace(self.path)  # atomic: a crash leaves the old point or the new one
