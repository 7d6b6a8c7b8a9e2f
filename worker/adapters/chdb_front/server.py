"""The HTTP side: ChdbHttpServer (owns the engine, auth, in-flight tracking), the request
handler that speaks ClickHouse's HTTP interface, and the in-process entry points `serve` (until
a signal) and `start_server` (a background thread)."""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from worker.adapters.chdb_front.content_encoding import Decoder
from worker.adapters.chdb_front.engine import ChdbEngine
from worker.adapters.chdb_front.errors import (
    AUTHENTICATION_FAILED,
    NOT_IMPLEMENTED,
    TOO_LARGE,
    QueryFailure,
    failure_from,
)
from worker.adapters.chdb_front.request import build_request

log = logging.getLogger(__name__)

DEFAULT_PORT: Final = 8123
MAX_BODY_BYTES: Final = 1 << 30
SERVER_NAME: Final = "ringlog-chdb-http"

_CONTENT_TYPES: Final = {
    "Native": "application/octet-stream",
    "RowBinary": "application/octet-stream",
    "RowBinaryWithNamesAndTypes": "application/octet-stream",
    "Arrow": "application/octet-stream",
    "Parquet": "application/octet-stream",
    "JSON": "application/json; charset=UTF-8",
    "JSONCompact": "application/json; charset=UTF-8",
    "JSONEachRow": "application/x-ndjson; charset=UTF-8",
    "CSV": "text/csv; charset=UTF-8; header=absent",
    "CSVWithNames": "text/csv; charset=UTF-8; header=present",
}


class ChdbHttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer owning a ChdbEngine; one thread per connection (keep-alive)."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        engine: ChdbEngine,
        user: str | None = None,
        password: str | None = None,
    ) -> None:
        self.engine = engine
        self.user = user
        self.password = password or ""
        self._inflight = 0
        self._idle = threading.Condition()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[0], self.server_address[1]
        if isinstance(host, bytes):
            host = host.decode()
        user = self.user or "default"
        secret = "***" if self.password else ""
        return f"http://{user}:{secret}@{host}:{port}"

    def check_auth(self, user: str, password: str) -> bool:
        if self.user is None:
            return True
        return hmac.compare_digest(user.encode(), self.user.encode()) and hmac.compare_digest(
            password.encode(), self.password.encode()
        )

    @contextlib.contextmanager
    def busy(self) -> Iterator[None]:
        with self._idle:
            self._inflight += 1
        try:
            yield
        finally:
            with self._idle:
                self._inflight -= 1
                self._idle.notify_all()

    def drain(self, timeout: float) -> bool:
        """Wait until no request runs (True) or `timeout` passes (False)."""
        with self._idle:
            return self._idle.wait_for(lambda: self._inflight == 0, timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ChdbHttpServer
    timeout = 600  # idle keep-alive connections are dropped after this

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_HEAD(self) -> None:
        self._send(200, b"", {"Content-Type": "text/plain"}, head=True)

    # -- plumbing --

    def _read_body(self) -> bytes:
        decoder = Decoder(self.headers.get("Content-Encoding", ""))
        parts: list[bytes] = []
        size = 0
        for chunk in self._raw_chunks():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                self.close_connection = True
                raise QueryFailure(
                    TOO_LARGE,
                    f"Code: {TOO_LARGE}. DB::Exception: request body over "
                    f"{MAX_BODY_BYTES} bytes (TOO_MANY_BYTES)",
                    status=413,
                )
            parts.append(decoder.feed(chunk))
        parts.append(decoder.flush())
        return b"".join(parts)

    def _raw_chunks(self) -> Iterator[bytes]:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    raise ConnectionError("connection closed inside a chunked body")
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537).strip():  # trailers
                        pass
                    return
                data = self.rfile.read(size)
                if len(data) != size:
                    raise ConnectionError("connection closed inside a chunk")
                self.rfile.readline(3)  # CRLF after the chunk
                yield data
        length = int(self.headers.get("Content-Length") or 0)
        while length > 0:
            data = self.rfile.read(min(length, 1 << 20))
            if not data:
                raise ConnectionError("connection closed inside the body")
            length -= len(data)
            yield data

    def _send(
        self, status: int, body: bytes, headers: Mapping[str, str], head: bool = False
    ) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("X-ClickHouse-Server-Display-Name", SERVER_NAME)
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        else:
            self.send_header("Connection", "Keep-Alive")
            self.send_header("Keep-Alive", f"timeout={self.timeout}")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _fail(self, failure: QueryFailure, query_id: str) -> None:
        message = failure.args[0] if failure.args else ""
        if "(version " not in message:
            message = f"{message}{self.server.engine._error_suffix()}"
        self._send(
            failure.status,
            (message.rstrip() + "\n").encode(),
            {
                "Content-Type": "text/plain; charset=UTF-8",
                "X-ClickHouse-Exception-Code": str(failure.code),
                "X-ClickHouse-Query-Id": query_id,
            },
        )

    def _credentials(self, params: Mapping[str, str]) -> tuple[str, str]:
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                return user, password
            except (ValueError, UnicodeDecodeError):
                return "", ""
        user = self.headers.get("X-ClickHouse-User") or params.get("user") or "default"
        password = self.headers.get("X-ClickHouse-Key") or params.get("password") or ""
        return user, password

    def _handle(self, method: str) -> None:
        parts = urlsplit(self.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        query_id = params.get("query_id") or str(uuid.uuid4())
        try:
            body = self._read_body() if method == "POST" else b""
        except QueryFailure as failure:
            self.close_connection = True
            self._fail(failure, query_id)
            return
        except (ConnectionError, ValueError, OSError):
            self.close_connection = True
            return
        if log.isEnabledFor(logging.DEBUG):
            shown = {k: ("***" if k == "password" else v) for k, v in params.items()}
            log.debug(
                "%s %s params=%s encoding=%s body=%r",
                method, parts.path, shown, self.headers.get("Content-Encoding"), body[:160],
            )  # fmt: skip
        path = parts.path.rstrip("/")
        if path in ("/ping", "/replicas_status"):
            self._send(200, b"Ok.\n", {"Content-Type": "text/html; charset=UTF-8"})
            return
        if path not in ("", "/query"):
            self._send(404, b"There is no handle " + parts.path.encode() + b"\n", {})
            return
        user, password = self._credentials(params)
        if not self.server.check_auth(user, password):
            self._fail(
                QueryFailure(
                    AUTHENTICATION_FAILED,
                    f"Code: {AUTHENTICATION_FAILED}. DB::Exception: {user}: Authentication "
                    "failed: password is incorrect, or there is no user with such name. "
                    "(AUTHENTICATION_FAILED)",
                    status=403,
                ),
                query_id,
            )
            return
        if params.get("compress") == "1" or params.get("decompress") == "1":
            self._fail(
                QueryFailure(
                    NOT_IMPLEMENTED,
                    f"Code: {NOT_IMPLEMENTED}. DB::Exception: ClickHouse's compressed "
                    "protocol (compress/decompress=1) is not supported by the chDB shim; use "
                    "Content-Encoding (NOT_IMPLEMENTED)",
                    status=501,
                ),
                query_id,
            )
            return
        started = time.perf_counter()
        try:
            request = build_request(method, params, body)
            with self.server.busy():
                result = self.server.engine.execute(request)
        except Exception as exc:
            error = failure_from(exc)
            log.info("query %s failed: code %d", query_id, error.code)
            self._fail(error, query_id)
            return
        log.debug("query %s done in %.1f ms", query_id, (time.perf_counter() - started) * 1e3)
        headers = {
            "X-ClickHouse-Query-Id": query_id,
            "X-ClickHouse-Timezone": self.server.engine.timezone,
            "X-ClickHouse-Summary": json.dumps(result.summary, separators=(",", ":")),
            "Content-Type": _CONTENT_TYPES.get(result.fmt or "", "text/plain; charset=UTF-8")
            if result.fmt
            else "text/plain; charset=UTF-8",
        }
        if result.fmt:
            headers["X-ClickHouse-Format"] = result.fmt
        self._send(200, result.body, headers)


# ---- entry points ---------------------------------------------------------------------------


def _make_server(
    path: str | os.PathLike[str],
    host: str,
    port: int,
    user: str | None,
    password: str | None,
    max_concurrency: int,
) -> ChdbHttpServer:
    engine = ChdbEngine(path, max_concurrency=max_concurrency)
    try:
        return ChdbHttpServer((host, port), engine, user=user, password=password)
    except BaseException:
        engine.close()
        raise


def _shutdown(server: ChdbHttpServer, grace_s: float) -> None:
    server.shutdown()
    server.server_close()
    if not server.drain(grace_s):
        log.warning("stopping with requests still running after %.0fs", grace_s)
    server.engine.close()


def serve(
    path: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    user: str | None = None,
    password: str | None = None,
    max_concurrency: int = 8,
    on_ready: Callable[[ChdbHttpServer], None] | None = None,
    grace_s: float = 30.0,
) -> None:
    """Serve until SIGTERM/SIGINT (main thread only), then finish running requests and close."""
    server = _make_server(path, host, port, user, password, max_concurrency)
    stopping = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        if not stopping.is_set():
            stopping.set()
            log.info("signal %d: stopping the chDB HTTP server", signum)
            threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if on_ready is not None:
            on_ready(server)
        server.serve_forever(poll_interval=0.2)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        server.server_close()
        if not server.drain(grace_s):
            log.warning("stopping with requests still running after %.0fs", grace_s)
        server.engine.close()


def start_server(
    path: str | os.PathLike[str],
    port: int = 0,
    host: str = "127.0.0.1",
    user: str | None = None,
    password: str | None = None,
    max_concurrency: int = 8,
) -> tuple[str, Callable[[], None]]:
    """Serve `path` from a background thread of THIS process; returns (url, stop).

    chDB allows one data path per process: use `spawn_server` when this process already
    opened (or will open) another chDB path.
    """
    server = _make_server(path, host, port, user, password, max_concurrency)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True,
        name="chdb-http",
    )  # fmt: skip
    thread.start()
    url = server.url if not password else server.url.replace("***", password)
    done = threading.Event()

    def stop() -> None:
        if not done.is_set():
            done.set()
            _shutdown(server, 30.0)
            thread.join(10)

    return url, stop
