"""The worker hosted in a faust-streaming app (DESIGN.md section 1, "State and delivery").

Who does what:

* **aiokafka** does all the Kafka work of the hot path, through the pipeline's ports:
  `ConsumeLoop` fetches batches of `telephony.call-events` with `getmany`, hands them to the
  batch preparer and the plan writer (decode, dead-letter, write ClickHouse) and commits
  their offsets only after they are durable. Faust's per-event agent path measured 20-70x
  slower, so it is not used for the input topic.
* **Faust** (mode) owns the process: the service graph and its start/stop order, SIGTERM /
  SIGINT handling. `IngestService` runs the batch consumer as a mode service attached to the
  app, and the HTTP server with it: uvicorn serving the FastAPI app of `worker.service.http`
  (metrics, health, the query APIs) on `settings.http_port`, in this same event loop. Faust's
  own aiohttp web server is off: one server style in the project (FastAPI), and the query
  APIs need FastAPI's request models and OpenAPI document.
* Faust's own Kafka consumer and producer are not started (`BootStrategy(enable_kafka=
  False)`): Faust's consumer crashes when no agent subscribes to a topic ("You should
  provide either `topics` or `pattern`"), and no agent has a genuine job here (the dead-letter
  topic is already written to `rejected_event` by the plan writer before each commit; a second
  writer would only duplicate that, and would bring back Faust's consumer thread and its
  commit bug faust-streaming #606). Faust therefore never joins a consumer group; its app id
  is still derived from the group id, with a suffix, so that if an agent is ever added its
  group cannot collide with the aiokafka group (different assignor protocols in one group
  fail to join).

`IngestService` runs `worker.service.lifecycle.Lifecycle`, the one start/stop sequence.
`ringlog worker` runs this app under `faust.Worker` (signals, logging); the demo, the in-process
tests and the benchmark run the very same app in their own event loop (`start_in_background`).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from pathlib import Path
from typing import Any, cast

import faust
from faust.app.base import BootStrategy
from mode import Service

from worker.api.context import ApiContext
from worker.api.keys import KeyRegistry
from worker.service.allocator import pin_mmap_threshold
from worker.service.http import HttpState, Serving, build_app
from worker.service.http_server import HttpServer
from worker.service.lifecycle import Lifecycle, StoreWrapper, Worker
from worker.service.logs import setup_logging
from worker.service.settings import Settings

log = logging.getLogger("ringlog.faust")

APP_ID_SUFFIX = "-faust"


def app_id_for(settings: Settings) -> str:
    return f"{settings.group_id}{APP_ID_SUFFIX}"


def broker_urls(settings: Settings) -> list[str]:
    return [f"kafka://{broker.strip()}" for broker in settings.kafka_brokers.split(",")]


class IngestService(Service):
    """The worker's `Lifecycle` as a mode service of the Faust app."""

    def __init__(
        self, settings: Settings, wrap_store: StoreWrapper | None = None, **kwargs: Any
    ) -> None:
        self.settings = settings
        self.lifecycle = Lifecycle(settings, wrap_store)
        # The HTTP server runs from before the worker starts until after it stopped; its
        # routes answer 503 while `http_state.serving` is None.
        self.http_state = HttpState()
        self.http_server = HttpServer(
            build_app(self.http_state), settings.http_host, settings.http_port
        )
        super().__init__(**kwargs)

    @property
    def worker(self) -> Worker | None:
        return self.lifecycle.worker

    async def on_start(self) -> None:
        await self.http_server.start()
        try:
            worker = await self.lifecycle.start()
        except BaseException:
            await self.http_server.stop()
            raise
        worker.http_port = self.http_server.port
        limits = self.settings.query_limits()
        self.http_state.serving = Serving(
            store=worker.store,
            metrics=worker.metrics,
            health=worker.checks.health,
            ready=worker.checks.ready,
            limits=limits,
            operator_token=self.settings.operator_token(),
            api=ApiContext(worker.store, KeyRegistry(worker.store), limits, worker.publisher),
        )
        log.info("batch consumer running inside Faust app %s", app_id_for(self.settings))
        self.add_future(self._watch())

    async def _watch(self) -> None:
        task = self.lifecycle.consuming
        if task is None:
            return
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if not task.cancelled():
                raise  # the watcher itself is being stopped
        except BaseException as exc:
            # A fatal error (outages are retried forever): stop the whole
            # worker with a failure instead of idling without consuming.
            log.critical("consume loop failed, stopping the worker: %r", exc)
            await self.crash(exc)

    async def on_stop(self) -> None:
        self.http_state.serving = None  # no request may reach a closed store
        try:
            await self.lifecycle.stop()
        finally:
            await self.http_server.stop()


def create_app(settings: Settings, wrap_store: StoreWrapper | None = None) -> faust.App:
    """A Faust app that runs the ringlog worker (see the module docstring)."""
    app_id = app_id_for(settings)
    app = faust.App(
        app_id,
        broker=broker_urls(settings),
        store="memory://",
        # Faust creates (empty) data directories at start even with a memory store and no
        # tables: one shared place outside the working directory.
        datadir=str(Path(tempfile.gettempdir()) / "ringlog-faust"),
        web_enabled=False,  # the HTTP server is IngestService's (uvicorn + FastAPI)
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
    service = IngestService(settings, wrap_store)
    # mode starts service instances as well as classes (App._prepare_subservice); the
    # decorator is only typed for classes.
    app.service(cast(Any, service))
    app.ringlog_service = service  # type: ignore[attr-defined]
    return app


async def start_in_background(
    settings: Settings, wrap_store: StoreWrapper | None = None
) -> tuple[Worker, asyncio.Event, asyncio.Task[None]]:
    """Run the worker's Faust app in the current event loop (demo, tests, benchmark): the
    same app and lifecycle as `ringlog worker`, without faust.Worker's process handling.

    Returns the started worker, the event that stops it and the task to await after setting
    it (it raises the error that ended the worker, if one did).
    """
    app = create_app(settings, wrap_store)
    service = app_service(app)
    await app.start()
    worker = service.worker
    if worker is None or service.lifecycle.consuming is None:
        await app.stop()
        raise RuntimeError("the worker stopped before it started")
    stop = asyncio.Event()
    consuming = service.lifecycle.consuming

    async def run() -> None:
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({stopping, consuming}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        await app.stop()
        if consuming.done() and not consuming.cancelled() and consuming.exception():
            raise cast(BaseException, consuming.exception())

    return worker, stop, asyncio.create_task(run(), name="ringlog-worker")


def app_service(app: faust.App) -> IngestService:
    service = getattr(app, "ringlog_service", None)
    if not isinstance(service, IngestService):
        raise TypeError("not a ringlog worker app (see create_app)")
    return service


def run_faust_worker(settings: Settings, wrap_store: StoreWrapper | None = None) -> None:
    """Run the Faust-hosted worker until SIGTERM/SIGINT; return normally on a clean stop.

    A fatal error raises (the Faust worker exits non-zero).
    """
    setup_logging(settings.log_format, settings.log_level)
    # Before the pipeline allocates: without it the heaps grow for good over a long run.
    pin_mmap_threshold()
    app = create_app(settings, wrap_store)
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
