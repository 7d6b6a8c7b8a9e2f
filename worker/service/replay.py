"""`ringlog replay`: canonical events from JSON Lines to the input topic, in acked batches.

Each line is checked with the worker's own decoder (`worker.core.decode.decode`, keyed by the
line's `call_id`) before anything is produced:

* a line the worker would accept is produced byte for byte (its exact text is what
  `call_event.payload` keeps), keyed by its `call_id`; a duplicate is produced too (the
  worker drops it: same `event_id`);
* a line it would refuse, or that cannot be keyed (not JSON, not an object, no string
  `call_id`), is dead-lettered at once with the worker's reason, its line number and its
  text, and is not produced.

Lines are read, checked and queued in batches of BATCH_LINES; a batch is counted only once
Kafka acknowledged it (acks=all), and the next one is prepared while it is in flight.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from worker.adapters.kafka.bulk_publisher import Acks, BulkPublisher
from worker.adapters.kafka.connection import check_credentials
from worker.adapters.kafka.dead_letters import DeadLetterProducer
from worker.core.decode import Rejection, decode
from worker.service.settings import Settings

BATCH_LINES: Final = 5000
EXAMPLES: Final = 5  # refused lines shown in the summary (the DLQ has all of them)


@dataclass
class ReplaySummary:
    lines: int = 0  # lines read and done with (acknowledged), blank ones included
    blank: int = 0  # empty or whitespace-only lines: nothing to produce, skipped
    produced: int = 0  # events acknowledged by Kafka
    refused: int = 0  # lines dead-lettered (acknowledged), with their reason
    size: int = 0  # bytes of those lines (terminators included): the progress in a file
    reasons: dict[str, int] = field(default_factory=dict)
    examples: list[tuple[int, Rejection]] = field(default_factory=list)  # (line, why)


@dataclass
class _Batch:
    lines: int = 0
    blank: int = 0
    size: int = 0
    events: list[tuple[bytes, bytes]] = field(default_factory=list)
    dead: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    refusals: list[tuple[int, Rejection]] = field(default_factory=list)


Progress = Callable[[ReplaySummary], None]
"""Called after each acknowledged batch."""


class Replayer:
    def __init__(self, settings: Settings, source: str) -> None:
        connection = self.connection = settings.kafka_connection()
        self.source = source  # the file name (or "-"), in every dead letter
        self.events = BulkPublisher(connection, settings.topic)
        self.dead_letters = DeadLetterProducer(connection, settings.dlq_topic)
        self.summary = ReplaySummary()

    async def start(self) -> None:
        # A refused password or certificate is told as such (KafkaCredentialsRejected), not
        # retried as an outage; unreachable brokers raise BrokerUnavailable from the first
        # producer, so the second one starts against brokers that just answered.
        await check_credentials(self.connection)
        await self.events.start()
        await self.dead_letters.start()

    async def stop(self) -> None:
        try:
            await self.events.stop()
        finally:
            await self.dead_letters.stop()

    async def replay(self, lines: Iterable[bytes], progress: Progress | None = None) -> None:
        """Every line of `lines` (each with or without its line terminator), produced or
        dead-lettered; raises BrokerUnavailable or DeadLetterUnavailable when Kafka does not
        acknowledge (what was acknowledged before is in `summary`)."""
        in_flight: tuple[Acks, _Batch] | None = None
        batch = _Batch()
        for number, line in enumerate(lines, start=1):
            self._check(number, line, batch)
            if batch.lines >= BATCH_LINES:
                in_flight = await self._rotate(in_flight, batch, progress)
                batch = _Batch()
        in_flight = await self._rotate(in_flight, batch, progress)
        if in_flight is not None:
            await self._settle(*in_flight, progress)

    def _check(self, number: int, line: bytes, batch: _Batch) -> None:
        batch.lines += 1
        batch.size += len(line)
        value = line.rstrip(b"\r\n")  # the terminator, not the event
        if not value.strip():
            batch.blank += 1
            return
        key = _key_of(value)
        verdict = decode(key, value)
        if isinstance(verdict, Rejection):
            batch.dead.append(self._dead_letter(number, key, value, verdict))
            batch.refusals.append((number, verdict))
        else:
            assert key is not None  # decode accepts only an event keyed by its call_id
            batch.events.append((key, value))

    async def _rotate(
        self, in_flight: tuple[Acks, _Batch] | None, batch: _Batch, progress: Progress | None
    ) -> tuple[Acks, _Batch] | None:
        """Queue `batch`'s events, then wait for the batch before it and for `batch`'s dead
        letters: one batch stays in flight while the next is read and checked."""
        if not batch.lines:
            return in_flight
        acks = await self.events.send(batch.events)
        if in_flight is not None:
            await self._settle(*in_flight, progress)
        if batch.dead:
            await self.dead_letters.send(batch.dead)
        # Dead letters are acknowledged: count them now (their events may still be in flight).
        self.summary.refused += len(batch.dead)
        for number, why in batch.refusals:
            self.summary.reasons[why.code] = self.summary.reasons.get(why.code, 0) + 1
            if len(self.summary.examples) < EXAMPLES:
                self.summary.examples.append((number, why))
        return acks, batch

    async def _settle(self, acks: Acks, batch: _Batch, progress: Progress | None) -> None:
        self.summary.produced += await acks.wait()
        self.summary.lines += batch.lines
        self.summary.blank += batch.blank
        self.summary.size += batch.size
        if progress is not None:
            progress(self.summary)

    def _dead_letter(
        self, number: int, key: bytes | None, value: bytes, why: Rejection
    ) -> tuple[bytes | None, bytes]:
        """The worker's DLQ envelope (DESIGN.md section 2); its source is the line of the
        replayed file, since the line never reached the topic (no offset)."""
        try:
            payload, encoding = value.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(value).decode("ascii"), "base64"
        body: dict[str, Any] = {
            "error": {"code": why.code, "message": why.message, "field": why.field},
            "source": {
                "replay": self.source,
                "line": number,
                "key": key.decode("utf-8") if key is not None else None,
            },
            "payload": payload,
            "payload_encoding": encoding,
            "rejected_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
        }
        return key, orjson.dumps(body)


def _key_of(value: bytes) -> bytes | None:
    """The line's `call_id` as the message key; None when there is none to key by (the
    decoder then says why the line is refused)."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    call_id = data.get("call_id") if isinstance(data, dict) else None
    return call_id.encode("utf-8") if isinstance(call_id, str) and call_id else None
