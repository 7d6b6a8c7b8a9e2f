"""The worker hosted in a faust-streaming app (DESIGN.md section 1, "State and delivery").

Who does what:

* **aiokafka** does all the Kafka work of the hot path, exactly as in `worker.runtime.serve`:
  `ConsumeLoop` fetches batches of `telephony.call-events` with `getmany`, hands them to the
  `Ingestor` (decode, dead-letter, write ClickHouse) and commits their offsets only after
  they are durable. Faust's per-event agent path measured 20-70x slower, so it is not used
  for the input topic.
* **Faust** (mode) owns the process: the service graph and its start/stop order, SIGTERM /
  SIGINT handling, and the HTTP server. `IngestService` runs the batch consumer as a mode
  service attached to the app; the aiohttp routes of `worker.service.http` are served from
  Faust's own aiohttp application on `settings.http_port`.
* Faust's own Kafka consumer and producer are not started (`BootStrategy(enable_kafka=
  False)`): Faust's consumer crashes when no agent subscribes to a topic ("You should
  provide either `topics` or `pattern`"), and no agent has a genuine job here (the dead-letter
  topic is already written to `rejected_event` by the Ingestor before each commit; a second
  writer would only duplicate that, and would bring back Faust's consumer thread and its
  commit bug faust-streaming #606). Faust therefore never joins a consumer group; its app id
  is still derived from the group id, with a suffix, so that if an agent is ever added its
  group cannot collide with the aiokafka group (different assignor protocols in one group
  fail to join).

Start order: the store is migrated and the DLQ producer is up before the consumer joins the
group. Stop order: the current batch finishes and commits, then the consumer and the DLQ
producer stop and the store closes; then Faust stops its web server.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from pathlib import Path
from typing import Any, cast

import faust
import orjson
from aiohttp import web
from faust.app.base import BootStrategy
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from mode import Service

from worker.service.http import build_app
from worker.service.lifecycle import Worker, build_worker
from worker.service.logs import setup_logging
from worker.service.settings import Settings

log = logging.getLogger("ringlog.faust")

APP_ID_SUFFIX = "-faust"
# How long a stop waits for the batch in flight to become durable and commit. Past it the
# batch is abandoned uncommitted (the next owner replays it; every write is idempotent), so
# a ClickHouse outage cannot make SIGTERM hang (Kubernetes kills after 30 s by default).
STOP_GRACE_SECONDS = 25.0
HTTP_PATHS = (("GET", "/metrics"), ("GET", "/health"), ("GET", "/ready"), ("POST", "/query"))


def app_id_for(settings: Settings) -> str:
    return f"{settings.group_id}{APP_ID_SUFFIX}"


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{broker.strip()}" for broker in settings.kafka_brokers.split(",")]


class IngestService(Service):
    """The aiokafka batch consumer (`ConsumeLoop` + `Ingestor`) as a mode service."""

    def __init__(self, settings: Settings, **kwargs: Any) -> None:
        self.settings = settings
        self.worker: Worker | None = None
        # The worker's aiohttp app (worker.http_api.build_app); None while not serving.
        self.http: web.Application | None = None
        self._stop_consuming = asyncio.Event()
        self._consume: asyncio.Task[None] | None = None
        super().__init__(**kwargs)

    async def on_start(self) -> None:
        settings = self.settings
        worker = await build_worker(settings)  # migrates the store
        self.worker = worker
        try:
            await worker.dead_letters.start()
            await worker.loop.start()
        except BaseException:
            await self._close(worker)
            raise
        worker.started = True
        self.http = build_app(worker.store, worker.metrics, worker.health, worker.ready)
        log.info(
            "consuming %s as group %s from %s (batch consumer inside Faust app %s)",
            settings.topic,
            settings.group_id,
            settings.kafka_brokers,
            app_id_for(settings),
        )
        self._consume = asyncio.create_task(self._run(worker), name="ringlog-consume")

    async def _run(self, worker: Worker) -> None:
        try:
            await worker.loop.run(self._stop_consuming)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            # A fatal error (the Ingestor retries transient ones forever): stop the whole
            # worker with a failure, as `serve()` does, instead of idling without consuming.
            log.critical("consume loop failed, stopping the worker: %r", exc)
            await self.crash(exc)

    async def on_stop(self) -> None:
        self._stop_consuming.set()
        worker, task = self.worker, self._consume
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
        if worker is not None:
            await self._close(worker)

    async def _close(self, worker: Worker) -> None:
        self.http = None  # /query must not reach a closed store
        log.info("shutting down")
        try:
            await worker.loop.stop()
        finally:
            try:
                await worker.dead_letters.stop()
            finally:
                worker.store.close()
        self.worker = None


def _not_serving(path: str) -> web.Response:
    body: dict[str, Any] = {"error": "the worker is starting or stopping"}
    if path == "/ready":
        body = {"ready": False}
    elif path == "/health":
        body = {"healthy": False, "reasons": ["worker is not running"], "time": time.time()}
    return web.Response(body=orjson.dumps(body), status=503, content_type="application/json")


def _mount_http(app: faust.App, service: IngestService) -> None:
    """Serve worker.service.http's handlers from Faust's aiohttp application.

    The routes must exist before Faust's web server starts (the router freezes then), but the
    handlers need the store, which exists only once the service has started: each route
    resolves the request against the worker's own aiohttp app (`build_app`) at request time.
    """

    async def delegate(request: web.Request) -> web.StreamResponse:
        inner = service.http
        if inner is None:
            return _not_serving(request.path)
        match = await inner.router.resolve(request)
        if match.http_exception is not None:
            raise match.http_exception
        return await match.handler(request)

    web_server = app.web
    if not isinstance(web_server, AiohttpWeb):
        raise TypeError(f"the HTTP routes need Faust's aiohttp web driver, not {web_server!r}")
    router = web_server.web_app.router
    for method, path in HTTP_PATHS:
        router.add_route(method, path, delegate)


def create_app(settings: Settings) -> faust.App:
    """A Faust app that runs the ringlog worker (see the module docstring)."""
    app_id = app_id_for(settings)
    app = faust.App(
        app_id,
        broker=broker_urls(settings),
        store="memory://",
        # Faust creates (empty) data directories at start even with a memory store and no
        # tables: one shared place outside the working directory.
        datadir=str(Path(tempfile.gettempdir()) / "ringlog-faust"),
        web_enabled=True,
        web_port=settings.http_port,
        web_host=settings.http_host,
        web_bind=settings.http_host,  # default 0.0.0.0 would expose /query everywhere
        web_application_options={"client_max_size": 1024 * 1024},
        web_router_enabled=False,
        web_tables_enabled=False,
        topic_disable_leader=True,
        # Never wait for unacked events on stop or rebalance (a known hang); the batch
        # consumer commits by itself and Faust's consumer is not used anyway.
        stream_wait_empty=False,
        # Only used by a Faust consumer, should one be enabled; the batch consumer commits
        # after every durable batch.
        broker_commit_interval=1.0,
        autodiscover=False,
    )
    # No Faust Kafka consumer or producer: see the module docstring.
    app.boot_strategy = BootStrategy(app, enable_kafka=False)
    service = IngestService(settings)
    # mode starts service instances as well as classes (App._prepare_subservice); the
    # decorator is only typed for classes.
    app.service(cast(Any, service))
    _mount_http(app, service)
    return app


def run_faust_worker(settings: Settings) -> None:
    """Run the Faust-hosted worker until SIGTERM/SIGINT; return normally on a clean stop.

    A fatal error raises (the Faust worker exits non-zero).
    """
    setup_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    worker = faust.Worker(
        app,
        loglevel=settings.log_level.upper(),
        override_logging=False,  # keep ringlog's text/JSON logging
        quiet=True,  # no banner/spinner on stdout
        redirect_stdouts=False,
        # mode's blocking detector raises an exception (via SIGALRM) in whatever code runs
        # when the loop has been blocked that long: it could abort a batch mid-write.
        blocking_timeout=None,
    )
    worker.spinner = None  # it writes terminal escapes to stdout even when quiet
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise
