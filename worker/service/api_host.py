"""`ringlog api`: the query APIs without a consumer, for several replicas behind a load
balancer in front of a ClickHouse server.

The process reads the store (it never migrates it: `ringlog migrate` does, once) and publishes
the item writes to the input topic; the workers apply them. /health answers 200 while the
store answers; /ready once the store and Kafka producer are up. SIGTERM / SIGINT stop it:
requests in flight finish (up to a few seconds), then the producer and the store close.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.adapters.clickhouse.store import ClickHouseStore
from worker.adapters.kafka.connection import check_credentials
from worker.adapters.kafka.event_publisher import KafkaEventPublisher
from worker.api.context import ApiContext
from worker.api.keys import KeyRegistry
from worker.pipeline.metrics import Metrics
from worker.service.health import Health
from worker.service.http import HttpState, MetricsSource, Serving, build_app
from worker.service.http_server import HttpServer
from worker.service.logs import setup_logging
from worker.service.settings import Settings

log = logging.getLogger("ringlog.api")

# /health re-checks the store at most this often.
HEALTH_CACHE_SECONDS = 5.0


@dataclass
class StoreProbe:
    store: ClickHouseStore
    checked_at: float = 0.0
    healthy: bool = True
    reason: str = ""

    def health(self) -> Health:
        now = time.monotonic()
        if now - self.checked_at > HEALTH_CACHE_SECONDS:
            self.checked_at = now
            try:
                self.store.query("SELECT 1")
                self.healthy, self.reason = True, ""
            except Exception as exc:  # any failure means unhealthy; the reason says which
                self.healthy, self.reason = False, f"ClickHouse: {exc}"
        return Health(self.healthy, [] if self.healthy else [self.reason])


class ApiProcess:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state = HttpState()
        self.server = HttpServer(build_app(self.state), settings.http_host, settings.http_port)
        self.store = settings.store()
        self.publisher = KafkaEventPublisher(settings.kafka_connection(), settings.topic)

    async def start(
        self,
        health: Callable[[], Health] | None = None,
        ready: Callable[[], bool] | None = None,
        metrics: MetricsSource | None = None,
    ) -> None:
        """Start serving; `health`, `ready` and `metrics` replace the store probe's and an
        empty registry (the supervisor of `ringlog worker --processes N` reports its
        workers')."""
        await asyncio.to_thread(self.store.check_schema)
        await check_credentials(self.settings.kafka_connection())
        await self.publisher.start()
        await self.server.start()
        probe = StoreProbe(self.store)
        limits = self.settings.query_limits()
        self.state.serving = Serving(
            store=self.store,
            metrics=metrics if metrics is not None else Metrics(),
            health=health or probe.health,
            ready=ready or (lambda: probe.health().healthy),
            limits=limits,
            operator_token=self.settings.operator_token(),
            api=ApiContext(self.store, KeyRegistry(self.store), limits, self.publisher),
        )
        log.info(
            "query API serving %s on %s:%d",
            self.store.url,
            self.settings.http_host,
            self.server.port,
        )

    async def stop(self) -> None:
        self.state.serving = None
        try:
            await self.server.stop()
        finally:
            try:
                await self.publisher.stop()
            finally:
                self.store.close()


async def serve_api(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set, or SIGTERM / SIGINT (when run on the main thread: signals
    reach no other)."""
    process = ApiProcess(settings)
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await process.start()
    try:
        await stop.wait()
    finally:
        log.info("stopping the query API")
        await process.stop()


def run_api(settings: Settings) -> None:
    setup_logging(settings.log_format, settings.log_level)
    asyncio.run(serve_api(settings))
