"""What the API routes run on: the store's reader, the key registry, the event publisher,
and the one place their failures become API errors."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from starlette.requests import Request

from worker.adapters.clickhouse.untrusted import QueryLimits, StatementRefused
from worker.api.errors import ApiError, Failure
from worker.api.keys import ApiKey, KeyRegistry
from worker.api.sql import Statement
from worker.pipeline.ports import BrokerUnavailable, StoreError, StoreUnavailable

log = logging.getLogger("ringlog.api")

# Queries at once (each holds a thread and the reader client in turn).
API_CONCURRENCY: Final = 4


class ReadStore(Protocol):
    @property
    def database(self) -> str: ...

    def query_capped(
        self, sql: str, parameters: Mapping[str, object], limits: QueryLimits
    ) -> tuple[list[str], list[tuple[object, ...]]]: ...


class EventPublisher(Protocol):
    async def publish(self, key: str, event: Mapping[str, Any]) -> None:
        """Return once Kafka has the event (acks=all); raise BrokerUnavailable otherwise."""
        ...


@dataclass
class ApiContext:
    store: ReadStore
    keys: KeyRegistry
    limits: QueryLimits
    publisher: EventPublisher | None = None
    running: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(API_CONCURRENCY))

    @property
    def database(self) -> str:
        return self.store.database

    async def rows(self, statement: Statement) -> list[tuple[object, ...]]:
        async with self.running:
            try:
                _, rows = await asyncio.to_thread(
                    self.store.query_capped, statement.sql, statement.params, self.limits
                )
            except StatementRefused as exc:
                raise ApiError(Failure.BAD_REQUEST, f"query refused: {exc}") from None
            except StoreUnavailable:
                log.warning("ClickHouse unavailable for an API query", exc_info=True)
                raise ApiError(
                    Failure.UNAVAILABLE, "ClickHouse is unavailable; retry later"
                ) from None
            except StoreError:
                log.exception("API query failed")
                raise ApiError(Failure.SERVER, "Server Error") from None
        return rows

    async def key(self, secret: str) -> ApiKey | None:
        try:
            return await asyncio.to_thread(self.keys.find, secret)
        except StoreUnavailable:
            raise ApiError(Failure.UNAVAILABLE, "ClickHouse is unavailable; retry later") from None

    async def publish(self, key: str, event: Mapping[str, Any]) -> None:
        if self.publisher is None:
            raise ApiError(Failure.UNAVAILABLE, "this server cannot publish events (no Kafka)")
        try:
            await self.publisher.publish(key, event)
        except BrokerUnavailable as exc:
            raise ApiError(
                Failure.UNAVAILABLE, f"Kafka is unavailable; retry later ({exc})"
            ) from None


ContextProvider = Callable[[], ApiContext | None]


def context_of(provider: ContextProvider) -> ApiContext:
    ctx = provider()
    if ctx is None:
        raise ApiError(Failure.UNAVAILABLE, "the server is starting or stopping; retry shortly")
    return ctx


def remember_key(request: Request, key: ApiKey) -> None:
    """For the request log: the project and the key's name (never the key)."""
    request.state.api_key = key
