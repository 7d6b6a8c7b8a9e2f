"""Making a webhook's events durable before it is answered.

Every canonical event goes to the input topic keyed by its `call_id`, and every part the
normalizer could not map goes to the dead-letter topic with its reason; `deliver` returns
only once Kafka acknowledged all of them (acks=all), and raises otherwise, so the route
answers 5xx and the provider retries. A retry produces the same event ids: the worker drops
the duplicates.
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from worker.core.providers.base import Normalized


class EventSink(Protocol):
    async def publish_all(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> None: ...


class DeadLetterSink(Protocol):
    async def send(self, records: Sequence[tuple[bytes | None, bytes]]) -> None: ...


@dataclass(frozen=True)
class Delivered:
    events: int
    dead_letters: int


class Delivery:
    def __init__(self, events: EventSink, dead_letters: DeadLetterSink) -> None:
        self._events = events
        self._dead_letters = dead_letters

    async def deliver(
        self, provider: str, route: str, normalized: Normalized, raw: bytes
    ) -> Delivered:
        records = [(str(e["call_id"]), e) for e in normalized.events]
        if records:
            await self._events.publish_all(records)
        if normalized.unmapped:
            await self._dead_letters.send(
                [
                    dead_letter(provider, route, u.code, u.message, u.field, raw)
                    for u in normalized.unmapped
                ]
            )
        return Delivered(len(records), len(normalized.unmapped))


def dead_letter(
    provider: str, route: str, code: str, message: str, field: str | None, raw: bytes
) -> tuple[bytes | None, bytes]:
    """A dead letter in the worker's format (DESIGN.md section 2), its source the gateway."""
    try:
        payload: str = raw.decode("utf-8")
    except UnicodeDecodeError:
        payload = base64.b64encode(raw).decode("ascii")
    body = {
        "error": {"code": code, "message": message, "field": field},
        "source": {"gateway": provider, "route": route},
        "payload": payload,
        "rejected_at": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
    }
    return None, orjson.dumps(body)
