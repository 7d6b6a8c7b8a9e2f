"""`ringlog worker --processes N`: N worker processes in one consumer group on this host,
behind one HTTP endpoint.

Why processes: the hot path (decode, correlate, encode) is Python and holds the GIL, so one
process keeps one core busy with it. N processes in the same consumer group split the topic's
partitions (Kafka assigns each partition to one of them), and each runs its own batches on its
own core. Every guarantee is per partition and stays as it is: a worker commits its
partitions' offsets only after its writes are durable (worker.pipeline.consume_loop).

This process, the supervisor:

1. opens the store and migrates it, once, before any worker starts;
2. with the embedded store (chDB lets one process open a store) owns it and serves it to the
   workers on loopback through the ClickHouse HTTP front (`worker.adapters.chdb_front`),
   behind a random password; with a ClickHouse server, the workers connect to it themselves;
3. starts N `ringlog worker` processes (the same command, RINGLOG_PROCESSES=1, the same
   settings), each with a loopback HTTP port of its own;
4. serves the one HTTP endpoint (RINGLOG_HTTP_PORT): the query APIs and /query through its
   own store connection; /metrics: every worker's series with a `process` label; /health and
   /ready: every worker healthy and ready (a reason names the worker);
5. on SIGTERM / SIGINT passes SIGTERM to every worker, waits for them (each finishes its batch
   in flight) and stops. A worker that exits by itself stops the others, and the supervisor
   exits with its code: the orchestrator restarts the whole set, rather than the group
   running on with fewer processes than asked for and nobody told.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from worker.adapters.chdb_front import start_server
from worker.service.allocator import pin_mmap_threshold
from worker.service.api_host import ApiProcess
from worker.service.health import Health
from worker.service.lifecycle import STOP_GRACE_SECONDS
from worker.service.logs import setup_logging
from worker.service.settings import ConfigError, Settings, setting_name

log = logging.getLogger("ringlog.supervisor")

FRONT_USER = "ringlog"
# A worker gets this long after SIGTERM (its own grace is STOP_GRACE_SECONDS) before SIGKILL.
WORKER_STOP_SECONDS = STOP_GRACE_SECONDS + 10.0
# How long /metrics, /health and /ready wait for one worker's answer.
PROBE_TIMEOUT_SECONDS = 2.0


@dataclass
class WorkerProcess:
    """One `ringlog worker` child: its number (the `process` label), HTTP port and process."""

    index: int
    port: int
    process: asyncio.subprocess.Process

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str) -> tuple[int, bytes]:
        """GET one of the worker's routes (blocking; short timeout): (status, body)."""
        try:
            with urllib.request.urlopen(self.url + path, timeout=PROBE_TIMEOUT_SECONDS) as r:
                return int(r.status), bytes(r.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())


class WorkersMetrics:
    """/metrics of the supervisor: each worker's series, labelled `process="<n>"`."""

    def __init__(self, workers: Sequence[WorkerProcess]) -> None:
        self.workers = workers
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def describe(self) -> Iterable[Metric]:
        return []  # families are only known by asking the workers

    def collect(self) -> Iterable[Metric]:
        families: dict[str, Metric] = {}
        for worker in self.workers:
            try:
                status, body = worker.get("/metrics")
            except OSError:
                continue  # a worker that does not answer has no series; /health says why
            if status != 200:
                continue
            for family in text_string_to_metric_families(body.decode("utf-8")):
                merged = families.get(family.name)
                if merged is None:
                    merged = families[family.name] = Metric(
                        family.name, family.documentation, family.type, family.unit
                    )
                for sample in family.samples:
                    merged.add_sample(
                        sample.name,
                        {**sample.labels, "process": str(worker.index)},
                        sample.value,
                        sample.timestamp,
                        sample.exemplar,
                    )
        return list(families.values())


class Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.api = ApiProcess(settings)
        self.workers: list[WorkerProcess] = []
        self._stop_front: Callable[[], None] | None = None

    # -- health -----------------------------------------------------------------------------

    def health(self) -> Health:
        reasons: list[str] = []
        for worker in self.workers:
            if worker.process.returncode is not None:
                reasons.append(f"worker {worker.index} exited ({worker.process.returncode})")
                continue
            try:
                status, body = worker.get("/health")
                answer = json.loads(body)
            except (OSError, ValueError) as exc:
                reasons.append(f"worker {worker.index}: no answer on /health ({exc})")
                continue
            if status != 200:
                why = "; ".join(answer.get("reasons", [])) or f"HTTP {status}"
                reasons.append(f"worker {worker.index}: {why}")
        return Health(not reasons, reasons)

    def ready(self) -> bool:
        for worker in self.workers:
            try:
                status, _ = worker.get("/ready")
            except OSError:
                return False
            if status != 200:
                return False
        return bool(self.workers)

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        store = self.api.store
        await asyncio.to_thread(store.migrate)  # once, before any worker starts
        store_url = self.settings.clickhouse_url
        path = store.embedded_path
        if store.embedded:
            if path is None:
                raise ConfigError(
                    f"{setting_name('processes')}={self.settings.processes} needs a store the "
                    "worker processes can share: a chDB directory (chdb:///path) or a "
                    "ClickHouse server, not chdb://memory"
                )
            password = secrets.token_urlsafe(24)
            store_url, self._stop_front = start_server(
                path, port=0, host="127.0.0.1", user=FRONT_USER, password=password
            )
            log.info("serving the embedded store %s to the worker processes on loopback", path)
        for index in range(1, self.settings.processes + 1):
            self.workers.append(await self._spawn(index, store_url))
        await self.api.start(
            health=self.health, ready=self.ready, metrics=WorkersMetrics(self.workers)
        )
        log.info(
            "supervising %d worker processes (group %s); HTTP on %s:%d",
            len(self.workers),
            self.settings.group_id,
            self.settings.http_host,
            self.api.server.port,
        )

    async def _spawn(self, index: int, store_url: str) -> WorkerProcess:
        port = _free_loopback_port()
        env = {
            **os.environ,
            **self.settings.environment(),
            setting_name("processes"): "1",
            setting_name("http_host"): "127.0.0.1",
            setting_name("http_port"): str(port),
            setting_name("clickhouse_url"): store_url,
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "worker.cli", "worker", env=env
        )
        log.info("started worker process %d (pid %d)", index, process.pid)
        return WorkerProcess(index, port, process)

    async def wait(self, stop: asyncio.Event) -> int:
        """Until `stop` is set (0) or a worker exits by itself (its exit code, never 0)."""
        stopping = asyncio.create_task(stop.wait())
        exits = {asyncio.create_task(w.process.wait()): w for w in self.workers}
        done, _ = await asyncio.wait({stopping, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for task in (stopping, *exits):
            if task not in done:
                task.cancel()
        if stopping in done:
            return 0
        # A terminal's Ctrl-C reaches the workers too (one process group): a worker that
        # exits on it is not a failure, if our own stop follows at once.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 1.0)
            return 0
        exited = next(exits[t] for t in done if t in exits)
        code = exited.process.returncode or 1
        log.error(
            "worker process %d exited with %s; stopping the others",
            exited.index,
            exited.process.returncode,
        )
        return code

    async def stop(self) -> None:
        for worker in self.workers:
            if worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(signal.SIGTERM)
        for worker in self.workers:
            try:
                await asyncio.wait_for(worker.process.wait(), WORKER_STOP_SECONDS)
            except TimeoutError:
                log.error("worker process %d did not stop in time: killed", worker.index)
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()
                await worker.process.wait()
        try:
            await self.api.stop()
        finally:
            if self._stop_front is not None:
                await asyncio.to_thread(self._stop_front)


def _free_loopback_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def supervise(settings: Settings, stop: asyncio.Event | None = None) -> int:
    """Run N workers until `stop` (or SIGTERM / SIGINT on the main thread); the exit code."""
    supervisor = Supervisor(settings)
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    try:
        await supervisor.start()
        code = await supervisor.wait(stop)
    finally:
        log.info("stopping the worker processes")
        await supervisor.stop()
    return code


def run_supervisor(settings: Settings) -> int:
    setup_logging(settings.log_format, settings.log_level)
    # It serves the embedded store: every insert body (megabytes) is read into one block.
    pin_mmap_threshold()
    return asyncio.run(supervise(settings))
