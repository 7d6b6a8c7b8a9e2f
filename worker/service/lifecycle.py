"""The worker's one start/stop sequence. `ringlog worker` runs it inside the faust-streaming
app (`worker.service.faust_host`); the demo, the tests and the benchmark run that same app.

Start order matters for delivery: the store is migrated and the DLQ producer is up before
the consumer joins the group, so the first batch can already be made durable. Stop order:
the batch in flight finishes and commits (or, after STOP_GRACE_SECONDS, is abandoned
uncommitted and replayed by the next owner), then the consumer leaves the group, the DLQ
producer stops and the store closes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from schemas.row_types import check_row_types
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.adapters.kafka.connection import check_credentials
from worker.adapters.kafka.consumer import KafkaConsumer
from worker.adapters.kafka.dead_letters import DeadLetterProducer
from worker.adapters.kafka.event_publisher import KafkaEventPublisher
from worker.core.batch_plan import BatchPlanner
from worker.core.native_fast_path import NATIVE_MISSING, NOT_NATIVE, VALIDATOR
from worker.core.rates import load_rate_plan
from worker.pipeline.batch_preparer import BatchPreparer
from worker.pipeline.consume_loop import ConsumeLoop
from worker.pipeline.metrics import Metrics
from worker.pipeline.plan_writer import PlanWriter
from worker.pipeline.ports import Store
from worker.pipeline.retry import OutageRetry
from worker.service.allocator import release_free_heap
from worker.service.garbage_collector import GarbageCollector
from worker.service.health import HealthCheck
from worker.service.heap_metrics import HeapCollector
from worker.service.process_tuning import tune_process
from worker.service.settings import Settings

log = logging.getLogger("ringlog.worker")

# How long a stop waits for the batch in flight to become durable and commit. Past it the
# batch is abandoned uncommitted (the next owner replays it; every write is idempotent), so
# a ClickHouse outage cannot make SIGTERM hang (Kubernetes kills after 30 s by default).
STOP_GRACE_SECONDS = 25.0

StoreWrapper = Callable[[Store], Store]
"""Wraps the store the pipeline writes through (fault injection in the fault tests)."""


@dataclass
class Worker:
    """The parts of a running worker, wired."""

    settings: Settings
    store: ClickHouseStore
    metrics: Metrics
    preparer: BatchPreparer
    writer: PlanWriter
    loop: ConsumeLoop
    dead_letters: DeadLetterProducer
    checks: HealthCheck
    # The query API's writes: item amendments to the input topic (acks=all).
    publisher: KafkaEventPublisher
    http_port: int = 0


async def build_worker(settings: Settings, wrap_store: StoreWrapper | None = None) -> Worker:
    """Wire the parts (migrating the store); nothing connects to Kafka yet."""
    check_row_types()  # typed rows and tables agree, or the worker does not start
    tune_process()  # GC, GIL switch interval: before the first batch
    rates = load_rate_plan(settings.rates_file)
    store = settings.store()
    version = await asyncio.to_thread(store.migrate)
    log.info("store ready (schema version %d) at %s", version, store.url)
    metrics = worker_metrics()
    connection = settings.kafka_connection()
    dead_letters = DeadLetterProducer(connection, settings.dlq_topic)
    config = settings.pipeline_config()
    pipeline_store: Store = store if wrap_store is None else wrap_store(store)
    retry = OutageRetry(metrics)
    planner = BatchPlanner(rates, config.call_timeout, config.cache_max_calls)
    preparer = BatchPreparer(planner, pipeline_store, retry, metrics)
    writer = PlanWriter(pipeline_store, dead_letters, retry, metrics)
    consumer = KafkaConsumer(
        connection, group_id=settings.group_id, topic=settings.topic, dlq_topic=settings.dlq_topic
    )
    loop = ConsumeLoop(config, preparer, writer, consumer, metrics)
    checks = HealthCheck(loop, retry, settings.health_max_failures, settings.health_stall_seconds)
    publisher = KafkaEventPublisher(connection, settings.topic)
    return Worker(settings, store, metrics, preparer, writer, loop, dead_letters, checks, publisher)


def worker_metrics() -> Metrics:
    """Everything a worker's /metrics serves: the pipeline's metrics and its live heap."""
    metrics = Metrics()
    HeapCollector(metrics.registry)  # read at each scrape
    return metrics


class Lifecycle:
    """Start, run and stop one worker (see the module docstring for the order)."""

    def __init__(self, settings: Settings, wrap_store: StoreWrapper | None = None) -> None:
        self.settings = settings
        self._wrap_store = wrap_store
        self.worker: Worker | None = None
        # Done when the consume loop ends: after `stop`, or with the fatal error that ended it.
        self.consuming: asyncio.Task[None] | None = None
        self._stop_consuming = asyncio.Event()
        self.collecting: asyncio.Task[None] | None = None  # GarbageCollector.run

    async def start(self) -> Worker:
        # A wrong password or an untrusted certificate stops the start with the setting to fix
        # (the clients would only log it and retry forever, as for an outage).
        await check_credentials(self.settings.kafka_connection())
        worker = await build_worker(self.settings, self._wrap_store)
        try:
            await worker.dead_letters.start()
            await worker.publisher.start()
            await worker.loop.start()  # joins the group
        except BaseException:
            await self._close(worker)
            raise
        worker.checks.started = True
        self.worker = worker
        self.consuming = asyncio.create_task(
            worker.loop.run(self._stop_consuming), name="ringlog-consume"
        )
        collector = GarbageCollector(release=release_free_heap)
        self.collecting = asyncio.create_task(collector.run(), name="ringlog-gc")
        log.info(
            "consuming %s as group %s from %s",
            self.settings.topic,
            self.settings.group_id,
            self.settings.kafka_brokers,
        )
        _log_event_validation()
        return worker

    async def stop(self) -> None:
        self._stop_consuming.set()
        task = self.consuming
        if task is not None and not task.done():
            # Let the current batch finish and commit: stopping mid-batch only replays it.
            done, _ = await asyncio.wait({task}, timeout=STOP_GRACE_SECONDS)
            if not done:
                log.error(
                    "batch still not durable after %.0fs: stopping without committing it "
                    "(it will be replayed)",
                    STOP_GRACE_SECONDS,
                )
                task.cancel()
                await asyncio.wait({task})
        worker, self.worker = self.worker, None
        if worker is not None:
            await self._close(worker)

    async def _close(self, worker: Worker) -> None:
        log.info("shutting down")
        if self.collecting is not None:
            self.collecting.cancel()
        worker.checks.started = False
        try:
            await worker.loop.stop()
        finally:
            try:
                await worker.dead_letters.stop()
                await worker.publisher.stop()
            finally:
                worker.store.close()


def _log_event_validation() -> None:
    """Say which event validator runs: the native fast path is about twice as fast."""
    if VALIDATOR is None:
        log.warning(
            "event validation: pure Python, ringlog_native is not installed (%s); "
            "`pip install ./native` (needs Rust) builds the faster native fast path",
            NATIVE_MISSING,
        )
    elif NOT_NATIVE:
        log.warning("event validation: native, except (left to pydantic): %s", NOT_NATIVE)
    else:
        log.info("event validation: native (ringlog_native)")
