"""`ringlog replay`: canonical events from JSON Lines to the input topic, in acked batches.

Each line is checked with the worker's own decoder (`worker.core.decode.decode`, keyed by the
line's `call_id`) before anything is produced:

* a line the worker would accept is produced byte for byte (its exact text is what
  `call_event.payload` keeps), keyed by its `call_id`; a duplicate is produced too (the
  worker drops it: same `event_id`);
* a line it would refuse, or that cannot be keyed (not JSON, not an object, no string
  `call_id`), is dead-lettered at once with the worker's reason, its line number and its
  text, and is not produced;
* a line it would accept but Kafka would refuse for its size (above the input topic's limit as
  a record) is dead-lettered the same way, as `message_too_large`: sent, it would fail its
  whole record batch, and the run with it.

A dead letter keeps the whole line when the envelope fits in the dead-letter topic's limit, else
the longest prefix that does (`payload_truncated`; `payload_bytes` is the line's size either
way).

A topic's limit is its effective `max.message.bytes` (its own, else the brokers'
`message.max.bytes`), read from the brokers at the start, and never above MAX_MESSAGE_BYTES
(the topics ringlog creates, and the producer's own limit). When it cannot be read (no
permission to describe the topic's configs, say), MAX_MESSAGE_BYTES is assumed, with a warning.

Lines are read, checked and queued in batches of BATCH_LINES; a batch is counted only once
Kafka acknowledged it (acks=all), and the next one is prepared while it is in flight.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from worker.adapters.kafka.bulk_publisher import Acks, BulkPublisher, fits, record_bytes
from worker.adapters.kafka.connection import check_credentials
from worker.adapters.kafka.dead_letters import DeadLetterProducer
from worker.adapters.kafka.topics import MAX_MESSAGE_BYTES, LimitUnknown, max_message_bytes
from worker.core.decode import Rejection, decode
from worker.service.settings import Settings

BATCH_LINES: Final = 5000
EXAMPLES: Final = 5  # refused lines shown in the summary (the DLQ has all of them)

# Replay's own refusal, beside the decoder's codes (worker.core.decode.ERROR_CODES): the
# worker never sees such a message (Kafka refuses it to its producer), so it is in no worker
# metric, alert or `rejected_event` row; only in the replay's summary and dead letters.
MESSAGE_TOO_LARGE: Final = "message_too_large"

log = logging.getLogger(__name__)


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

TopicLimits = Callable[[Sequence[str]], Awaitable[Mapping[str, int | LimitUnknown]]]
"""topics -> the effective max.message.bytes of each, or why it could not be read."""


class Replayer:
    def __init__(self, settings: Settings, source: str) -> None:
        connection = self.connection = settings.kafka_connection()
        self.source = source  # the file name (or "-"), in every dead letter
        self.events = BulkPublisher(connection, settings.topic)
        self.dead_letters = DeadLetterProducer(connection, settings.dlq_topic)
        self.summary = ReplaySummary()
        self.topic_limits: TopicLimits = lambda topics: max_message_bytes(connection, topics)
        # The largest record, in bytes, each topic takes; read_limits() lowers them to the
        # topics' own max.message.bytes.
        self.event_limit = MAX_MESSAGE_BYTES
        self.dead_letter_limit = MAX_MESSAGE_BYTES

    async def start(self) -> None:
        # A refused password or certificate is told as such (KafkaCredentialsRejected), not
        # retried as an outage; unreachable brokers raise BrokerUnavailable from the first
        # producer, so the second one starts against brokers that just answered.
        await check_credentials(self.connection)
        await self.events.start()  # the input topic exists once it has started
        await self.dead_letters.start()
        await self.read_limits()

    async def read_limits(self) -> None:
        """Each topic's effective max.message.bytes, from the brokers (an operator may have
        created the topic with less than MAX_MESSAGE_BYTES): a line is refused, and a dead
        letter cut, by what Kafka would accept. A limit that cannot be read never stops the
        replay: MAX_MESSAGE_BYTES is assumed, and a warning says so."""
        topics = [self.events.topic, self.dead_letters.topic]
        found = await self.topic_limits(topics)
        limits = []
        for topic in topics:
            value = found.get(topic, LimitUnknown("not described"))
            if isinstance(value, LimitUnknown):
                log.warning(
                    "could not read the max.message.bytes of topic %s (%s): assuming %d bytes, "
                    "the limit of the topics ringlog creates; if the topic's own limit is "
                    "lower, Kafka refuses a larger record and the replay fails",
                    topic,
                    value.reason,
                    MAX_MESSAGE_BYTES,
                )
                value = MAX_MESSAGE_BYTES
            limits.append(min(value, MAX_MESSAGE_BYTES))
        self.event_limit, self.dead_letter_limit = limits

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
        if not isinstance(verdict, Rejection):
            assert key is not None  # decode accepts only an event keyed by its call_id
            if fits(key, value, self.event_limit):
                batch.events.append((key, value))
                return
            verdict = Rejection(
                MESSAGE_TOO_LARGE,
                f"the event is {record_bytes(key, value)} bytes as a Kafka record, above the "
                f"topic's limit of {self.event_limit} bytes (max.message.bytes)",
            )
        batch.dead.append(self._dead_letter(number, key, value, verdict))
        batch.refusals.append((number, verdict))

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
        replayed file, since the line never reached the topic (no offset). It fits in the
        dead-letter topic: past its limit it keeps the longest prefix of the line that fits,
        and says so."""
        try:
            value.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            encoding = "base64"
        body: dict[str, Any] = {
            "error": {"code": why.code, "message": why.message, "field": why.field},
            "source": {
                "replay": self.source,
                "line": number,
                "key": key.decode("utf-8") if key is not None else None,
            },
            "payload": _payload_text(value, encoding),
            "payload_encoding": encoding,
            "payload_bytes": len(value),
            "payload_truncated": False,
            "rejected_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")[:-6] + "Z",
        }
        limit = self.dead_letter_limit
        letter = orjson.dumps(body)
        if fits(key, letter, limit):
            return key, letter
        body["payload_truncated"] = True
        body["payload"] = ""
        letter = orjson.dumps(body)
        room = limit - record_bytes(key, letter)
        if room < 0:
            if key is not None:
                # Only a call_id of megabytes (the contract refuses it) leaves no room: unkeyed.
                return self._dead_letter(number, None, value, why)
            # Not even the envelope fits (a topic limit of a few hundred bytes): sent as it
            # is, Kafka refuses it and the replay says Kafka failed.
            return key, letter
        while True:
            body["payload"] = _payload_text(value, encoding, room)
            letter = orjson.dumps(body)
            over = record_bytes(key, letter) - limit
            if over <= 0:
                return key, letter
            room -= over  # the record's length prefix grew with the payload: a byte or three


def _key_of(value: bytes) -> bytes | None:
    """The line's `call_id` as the message key; None when there is none to key by (the
    decoder then says why the line is refused)."""
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    call_id = data.get("call_id") if isinstance(data, dict) else None
    return call_id.encode("utf-8") if isinstance(call_id, str) and call_id else None


def _payload_text(value: bytes, encoding: str, room: int | None = None) -> str:
    """`value` as text in `encoding` (utf-8 or base64); with `room`, its longest prefix whose
    JSON string takes at most `room` bytes between the quotes, escapes included."""
    if encoding == "base64":
        end = len(value) if room is None else max(room, 0) // 4 * 3
        return base64.b64encode(value[:end]).decode("ascii")
    if room is None:
        return value.decode("utf-8")
    # No more than `room` bytes: each takes at least one in JSON. Those fit unless some must
    # be escaped (a control character takes six); then the longest prefix that fits is
    # searched (escaped sizes grow with the prefix).
    hi = min(len(value), max(room, 0))
    if _escaped_size(value[:hi]) <= room:
        return value[:hi].decode("utf-8", "ignore")
    lo = 0  # lo fits, hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _escaped_size(value[:mid]) <= room:
            lo = mid
        else:
            hi = mid
    return value[:lo].decode("utf-8", "ignore")


def _escaped_size(prefix: bytes) -> int:
    # A prefix of UTF-8 text: "ignore" drops only a character cut in two at its end.
    return len(orjson.dumps(prefix.decode("utf-8", "ignore"))) - 2
