"""The HTTP server of a ringlog process: uvicorn serving one FastAPI app, inside the process's
own event loop.

The host owns the process (faust.Worker for `ringlog worker`, the API runner for `ringlog
api`): it handles SIGTERM and SIGINT and stops this server as part of its own stop sequence,
so uvicorn must not install signal handlers of its own. The listening socket is bound here,
before uvicorn starts, so that a taken port is a clear start-up error naming the setting
(uvicorn would call `sys.exit` inside a task) and port 0 means "any free port".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

log = logging.getLogger("ringlog.http")

# Requests still running when a stop begins get this long to finish.
GRACEFUL_SHUTDOWN_SECONDS = 5


class PortUnavailable(RuntimeError):
    pass


class _HostedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # The host process handles the signals and stops this server itself.
        yield


class HttpServer:
    """Serves `app` on host:port until `stop()`."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        self._app = app
        self._host = host
        self._port = port
        self._server: _HostedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = port

    async def start(self) -> None:
        sock = self._bind()
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            self._app,
            log_config=None,  # ringlog's own logging (text or JSON) already set up
            access_log=False,  # the API logs its own requests (route, project, key name)
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            server_header=False,
        )
        self._server = _HostedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="ringlog-http")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises what stopped it
                raise RuntimeError("the HTTP server stopped while starting")
            await asyncio.sleep(0.01)
        log.info("HTTP server listening on %s:%d", self._host, self.port)

    def _bind(self) -> socket.socket:
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections: without it a response's header and body writes
        # meet the client's delayed ACK (measured: 43 ms per request from httpx, 1 ms with).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            sock.bind((self._host, self._port))
        except OSError as exc:
            sock.close()
            raise PortUnavailable(
                f"cannot listen on {self._host}:{self._port} ({exc.strerror}): choose another "
                "RINGLOG_HTTP_PORT / RINGLOG_HTTP_HOST (0 = any free port)"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = None
        self._task = None
