"""A small ClickHouse-HTTP-interface server in front of one embedded chDB store.

Why: chDB (embedded ClickHouse) lets one process open a data directory, and no real
ClickHouse server can be installed on the dev machines. This server owns the directory and
speaks enough of ClickHouse's HTTP interface (https://clickhouse.com/docs/interfaces/http)
that `clickhouse_connect.get_client(host=..., port=...)` and ringlog's ClickHouseStore
(`http://default:@127.0.0.1:PORT`) work unchanged, so several worker processes and external
tools can share ONE store, and tests exercise ringlog's real HTTP code path.
It is a development and test tool, not a production ClickHouse.

    python -m devtools store serve --path ./var/clickhouse --port 8123
    # prints RINGLOG_CLICKHOUSE_URL=http://default:@127.0.0.1:8123

    proc = spawn_server(tmp_path / "store")          # a subprocess (tests)
    store = ClickHouseStore(proc.url, "ringlog"); ...; proc.stop()

    url, stop = start_server(path, port=0)            # a thread in this process

Protocol surface (what clickhouse-connect 1.12 sends, found by logging its requests):

- `GET /ping` -> `Ok.` (also `/replicas_status`).
- `POST /?<params>` with the statement as the body (`text/plain`), or the statement in the
  `query` URL parameter and the data in the body (inserts: `INSERT INTO db.t (cols) FORMAT
  Native` in `query`, a Native body, `Content-Encoding: lz4` by default since the client
  compresses inserts when the lz4 package is installed; also zstd, gzip, deflate, br, and
  `Transfer-Encoding: chunked` because the client streams the body from a generator).
  With no `query` parameter an `INSERT ... FORMAT X` at the start of the body is split from
  its data at the first newline after the format name, as ClickHouse does.
- `GET /?query=...` runs with `readonly=2`, like ClickHouse.
- URL parameters: `database` (-> `USE db` on the request's handle), `default_format`,
  `query_id`, `session_id` / `session_timeout`, `param_<name>` (server-side query parameters,
  passed to chDB's `params`), `user` / `password` (auth), and every other parameter is a
  ClickHouse setting, applied with one `SET a = 'v', b = 'v'` on the request's own chDB
  handle before the statement runs (so it is scoped to that request). Transport-only
  parameters that chDB rejects or that mean nothing here are dropped: `wait_end_of_query`,
  `client_protocol_version` (so the client's protocol probe falls back to protocol 0, plain
  Native), `compress`, `decompress`, `buffer_size`, `session_check`, `quota_key`, `role`,
  `query_id`, `enable_http_compression`, `send_progress_in_http_headers`,
  `http_headers_progress_interval_ms`. Connect-time queries: `SELECT version(), timezone()`,
  `SELECT name, value, readonly FROM system.settings LIMIT 10000 FORMAT Native`, and the
  protocol probe `SELECT 1 AS check` with `client_protocol_version=54405`.
- Responses are never compressed (`Accept-Encoding` is ignored; that is valid HTTP), and carry
  `X-ClickHouse-Format` (only when the statement produced a result set, which is how the
  client tells a DDL from an empty SELECT), `X-ClickHouse-Timezone`, `X-ClickHouse-Query-Id`,
  `X-ClickHouse-Summary` and `Content-Length`.
- Errors: HTTP 500 (403 for a failed login, code 516) with `X-ClickHouse-Exception-Code: N`
  and the body `Code: N. DB::Exception: ... (NAME) (version ...)`, as ClickHouse sends them,
  so clickhouse-connect raises its normal DatabaseError with `.code` set.

Execution: every request opens its own chDB connection handle to the one engine (about
0.1 ms; chDB allows many handles per engine, each with its own `USE`/`SET` state) and closes
it afterwards, so settings never leak between requests. Requests run concurrently on their
own handles (measured safe; see tests/test_chdb_http.py); `max_concurrency` bounds them.
A `session_id` gets a dedicated handle kept for `session_timeout` seconds (default 60): `SET`
and `USE` statements persist in it, URL settings and `database` are restored after each
request, and a second concurrent request in the same session fails with code 373
(SESSION_IS_LOCKED), like ClickHouse. Inserts stream the (decompressed) body into chDB's
`send_insert` (no temporary file). Empty Native results get a zero-row header block (chDB
emits no bytes for them; ClickHouse sends the column names and types).

Auth: with a configured user/password, requests must present them (Basic auth,
`X-ClickHouse-User`/`X-ClickHouse-Key`, or `user`/`password` parameters); without, any user
is accepted. The password is never logged.

Not supported: ClickHouse's own compressed protocol (`compress=1`/`decompress=1`), external
data (multipart), progress headers, response compression, query cancellation, `KILL QUERY`
across requests, and anything chDB itself does not support (Kafka engine, replication).
"""

from __future__ import annotations

import base64
import contextlib
import hmac
import json
import logging
import os
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

log = logging.getLogger(__name__)

__all__ = [
    "ChdbEngine",
    "ChdbHttpServer",
    "QueryFailure",
    "ServerProcess",
    "serve",
    "spawn_server",
    "start_server",
]

DEFAULT_PORT: Final = 8123
MAX_BODY_BYTES: Final = 1 << 30
SESSION_TIMEOUT_S: Final = 60.0
SERVER_NAME: Final = "ringlog-chdb-http"

# URL parameters that are not ClickHouse settings (or that chDB rejects / ignores here).
_TRANSPORT_PARAMS: Final = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "quota_key",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "http_response_headers",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CODE = re.compile(r"Code: (\d+)\.")
_TRAILING_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT_START = re.compile(rb"^\s*INSERT\b", re.IGNORECASE)
_INSERT_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)", re.IGNORECASE)
_DATA_SEPARATOR = re.compile(rb"[ \t]*\r?\n|[ \t]+")
_READ_ONLY_START = re.compile(rb"^\s*(?:\(\s*)*(?:SELECT|WITH)\b", re.IGNORECASE)

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

# ClickHouse error codes used by the server itself.
_UNKNOWN_EXCEPTION: Final = 1002
_CANNOT_DECOMPRESS: Final = 271
_SESSION_IS_LOCKED: Final = 373
_AUTHENTICATION_FAILED: Final = 516
_NOT_IMPLEMENTED: Final = 48
_UNKNOWN_SETTING: Final = 115
_TOO_LARGE: Final = 307  # TOO_MANY_BYTES


class QueryFailure(Exception):
    """A ClickHouse-style failure: code, message text, HTTP status."""

    def __init__(self, code: int, message: str, status: int = 500) -> None:
        super().__init__(message)
        self.code = code
        self.status = status


def _failure_from(exc: BaseException) -> QueryFailure:
    if isinstance(exc, QueryFailure):
        return exc
    text = str(exc)
    idx = text.find("Code: ")
    if idx > 0:
        text = text[idx:]
    match = _CODE.search(text)
    if match:
        return QueryFailure(int(match.group(1)), text.strip())
    return QueryFailure(
        _UNKNOWN_EXCEPTION,
        f"Code: {_UNKNOWN_EXCEPTION}. DB::Exception: {type(exc).__name__}: {text} "
        "(UNKNOWN_EXCEPTION)",
    )


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _native_header_block(meta: list[dict[str, str]]) -> bytes:
    """A zero-row Native block carrying only column names and types."""
    out = bytearray(_varint(len(meta)) + _varint(0))
    for column in meta:
        for text in (column["name"], column["type"]):
            raw = text.encode()
            out += _varint(len(raw)) + raw
    return bytes(out)


# ---- request bodies -----------------------------------------------------------------------


class _Decoder:
    """Incremental Content-Encoding decoder."""

    def __init__(self, encoding: str) -> None:
        self.encoding = encoding.strip().lower()
        self._obj: Any = None
        enc = self.encoding
        if enc in ("", "identity"):
            return
        if enc == "lz4":
            import lz4.frame  # type: ignore[import-untyped,unused-ignore]

            self._obj = lz4.frame.LZ4FrameDecompressor()
        elif enc == "gzip":
            self._obj = zlib.decompressobj(wbits=31)
        elif enc == "deflate":
            self._obj = zlib.decompressobj()
        elif enc == "zstd":
            self._obj = _zstd_decompressor()
        elif enc == "br":
            import brotli  # type: ignore[import-not-found,unused-ignore]

            self._obj = brotli.Decompressor()
        else:
            raise QueryFailure(
                _CANNOT_DECOMPRESS,
                f"Code: {_CANNOT_DECOMPRESS}. DB::Exception: Unknown Content-Encoding "
                f"{encoding!r} (CANNOT_DECOMPRESS)",
            )

    def feed(self, data: bytes) -> bytes:
        if self._obj is None:
            return data
        try:
            if self.encoding == "br":
                return bytes(self._obj.process(data))
            return bytes(self._obj.decompress(data))
        except Exception as exc:
            raise QueryFailure(
                _CANNOT_DECOMPRESS,
                f"Code: {_CANNOT_DECOMPRESS}. DB::Exception: cannot decode the {self.encoding} "
                f"request body: {exc} (CANNOT_DECOMPRESS)",
            ) from exc

    def flush(self) -> bytes:
        if self._obj is not None and self.encoding in ("gzip", "deflate"):
            return bytes(self._obj.flush())
        return b""


def _zstd_decompressor() -> Any:
    for module in ("compression.zstd", "backports.zstd"):
        with contextlib.suppress(ImportError):
            mod = __import__(module, fromlist=["ZstdDecompressor"])
            return mod.ZstdDecompressor()
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]
    except ImportError as exc:
        raise QueryFailure(
            _CANNOT_DECOMPRESS,
            f"Code: {_CANNOT_DECOMPRESS}. DB::Exception: zstd request bodies need the "
            "zstandard or backports.zstd package (CANNOT_DECOMPRESS)",
        ) from exc
    return zstandard.ZstdDecompressor().decompressobj()


# ---- the engine ---------------------------------------------------------------------------


@dataclass
class _Session:
    conn: Any
    lock: threading.Lock = field(default_factory=threading.Lock)
    timeout: float = SESSION_TIMEOUT_S
    last_used: float = field(default_factory=time.monotonic)


@dataclass
class Result:
    body: bytes
    fmt: str | None  # X-ClickHouse-Format; None when the statement produced no result set
    summary: dict[str, str]


@dataclass
class Request:
    sql: bytes  # the statement (for inserts: without the data)
    data: bytes | None  # insert data (decompressed), None for plain statements
    data_format: str | None
    database: str | None
    default_format: str | None
    settings: dict[str, str]
    params: dict[str, str]
    session_id: str | None
    session_timeout: float
    read_only: bool


class ChdbEngine:
    """One chDB engine (data directory) shared by all requests of this process."""

    def __init__(self, path: str | os.PathLike[str], max_concurrency: int = 8) -> None:
        import chdb as chdb_module

        chdb: Any = chdb_module
        self.path = str(Path(path).expanduser().resolve())
        Path(self.path).mkdir(parents=True, exist_ok=True)
        self._connect: Callable[[str], Any] = chdb.connect
        try:
            self._root = chdb.connect(self.path)  # keeps the engine open
            row = self._root.query("SELECT version(), timezone()", "TabSeparated").bytes()
        except Exception as exc:
            raise RuntimeError(f"cannot open the chDB store {self.path}: {exc}") from exc
        version, _, tz = row.decode().strip().partition("\t")
        self.version = version
        self.timezone = tz or "UTC"
        self._slots = threading.BoundedSemaphore(max(1, max_concurrency))
        self._sessions: dict[str, _Session] = {}
        self._sessions_lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        self._closed = True
        with self._sessions_lock:
            sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            with session.lock, contextlib.suppress(Exception):
                session.conn.close()
        with contextlib.suppress(Exception):
            self._root.close()

    def _error_suffix(self) -> str:
        return f" (version {self.version})"

    # -- sessions --

    def _session(self, session_id: str, timeout: float) -> _Session:
        now = time.monotonic()
        with self._sessions_lock:
            expired = [
                sid
                for sid, s in self._sessions.items()
                if now - s.last_used > s.timeout and not s.lock.locked()
            ]
            stale = [self._sessions.pop(sid) for sid in expired]
            session = self._sessions.get(session_id)
            if session is None:
                session = _Session(self._connect(self.path), timeout=timeout)
                self._sessions[session_id] = session
            session.timeout = timeout
            session.last_used = now
        for old in stale:
            with contextlib.suppress(Exception):
                old.conn.close()
        return session

    # -- execution --

    def execute(self, req: Request) -> Result:
        if self._closed:
            raise QueryFailure(210, "Code: 210. DB::Exception: server is shutting down")
        with self._slots:
            if req.session_id:
                session = self._session(req.session_id, req.session_timeout)
                if not session.lock.acquire(blocking=False):
                    raise QueryFailure(
                        _SESSION_IS_LOCKED,
                        f"Code: {_SESSION_IS_LOCKED}. DB::Exception: Session "
                        f"{req.session_id} is locked by a concurrent client. "
                        "(SESSION_IS_LOCKED)",
                    )
                try:
                    return self._in_session(session.conn, req)
                finally:
                    session.last_used = time.monotonic()
                    session.lock.release()
            conn = self._connect(self.path)
            try:
                self._prepare(conn, req)
                return self._run(conn, req)
            finally:
                with contextlib.suppress(Exception):
                    conn.close()

    def _prepare(self, conn: Any, req: Request) -> None:
        if req.database:
            conn.query(f"USE {_quote_ident(req.database)}", "TabSeparated")
        assignments = [f"{k} = {_quote(v)}" for k, v in req.settings.items()]
        if req.read_only and "readonly" not in req.settings:
            assignments.append("readonly = 2")
        if assignments:
            conn.query("SET " + ", ".join(assignments), "TabSeparated")

    def _in_session(self, conn: Any, req: Request) -> Result:
        """Run in a session handle; URL settings and database apply to this request only."""
        names = list(req.settings) + (["readonly"] if req.read_only else [])
        saved: dict[str, tuple[str, bool]] = {}
        database = None
        if names:
            listed = ", ".join(_quote(n) for n in names)
            raw = conn.query(
                f"SELECT name, value, changed FROM system.settings WHERE name IN ({listed})",
                "JSONEachRow",
            ).bytes()
            for line in raw.splitlines():
                row = json.loads(line)
                saved[row["name"]] = (row["value"], bool(row["changed"]))
        if req.database:
            database = conn.query("SELECT currentDatabase()", "TabSeparated").bytes()
        try:
            self._prepare(conn, req)
            return self._run(conn, req)
        finally:
            restore = []
            for name, (value, changed) in saved.items():
                literal = value if value.startswith("'") else _quote(value)
                restore.append(f"{name} = {literal if changed else 'DEFAULT'}")
            if restore:
                with contextlib.suppress(Exception):
                    conn.query("SET " + ", ".join(restore), "TabSeparated")
            if database is not None:
                with contextlib.suppress(Exception):
                    name = database.decode().strip()
                    conn.query(f"USE {_quote_ident(name)}", "TabSeparated")

    def _run(self, conn: Any, req: Request) -> Result:
        if req.data is not None:
            return self._insert(conn, req)
        sql = req.sql.decode("utf-8", errors="surrogateescape")
        explicit = _TRAILING_FORMAT.search(req.sql)
        if explicit or req.default_format:
            fmt = explicit.group(1).decode() if explicit else str(req.default_format)
            res = conn.query(sql, fmt, params=req.params)
            body = res.bytes() or b""
            if not body and fmt == "Native" and _READ_ONLY_START.search(req.sql):
                body = self._empty_native(conn, req, sql)
            return Result(body, fmt, self._summary(res, read=True))
        # No FORMAT: ClickHouse's default TabSeparated. Run with names so that a statement
        # producing a result set (even an empty one) can be told from DDL, then drop them.
        res = conn.query(sql, "TabSeparatedWithNames", params=req.params)
        body = res.bytes() or b""
        if not body:
            return Result(b"", None, self._summary(res, read=True))
        newline = body.find(b"\n")
        return Result(body[newline + 1 :], "TabSeparated", self._summary(res, read=True))

    def _empty_native(self, conn: Any, req: Request, sql: str) -> bytes:
        """chDB writes no bytes for an empty Native result; ClickHouse writes a header block."""
        stripped = _TRAILING_FORMAT.sub(b"", req.sql).decode("utf-8", errors="surrogateescape")
        try:
            meta = json.loads(conn.query(stripped, "JSONCompact", params=req.params).bytes())
            return _native_header_block(meta["meta"])
        except Exception:
            log.debug("no header block for an empty Native result of %s", sql[:200])
            return b""

    def _insert(self, conn: Any, req: Request) -> Result:
        assert req.data is not None and req.data_format is not None
        sql = req.sql.decode("utf-8", errors="surrogateescape")
        inserter = conn.send_insert(sql, req.data_format)
        try:
            if req.data:
                inserter.append(req.data)
            res = inserter.finish()
        except BaseException:
            with contextlib.suppress(Exception):
                inserter.cancel()
            raise
        rows = str(getattr(res, "rows_written", 0))
        written = str(getattr(res, "bytes_written", 0))
        elapsed = str(int(float(getattr(res, "elapsed", 0.0)) * 1e9))
        summary = {
            "read_rows": rows,
            "read_bytes": written,
            "written_rows": rows,
            "written_bytes": written,
            "total_rows_to_read": "0",
            "result_rows": rows,
            "result_bytes": written,
            "elapsed_ns": elapsed,
        }
        return Result(b"", None, summary)

    @staticmethod
    def _summary(res: Any, read: bool) -> dict[str, str]:
        try:
            return {
                "read_rows": str(res.rows_read()),
                "read_bytes": str(res.bytes_read()),
                "written_rows": "0",
                "written_bytes": "0",
                "elapsed_ns": str(int(res.elapsed() * 1e9)),
            }
        except Exception:
            return {}


# ---- request parsing ----------------------------------------------------------------------


def _split_insert(text: bytes) -> tuple[bytes, bytes, str] | None:
    """`INSERT ... FORMAT X\\n<data>` -> (statement without FORMAT, data, X)."""
    if not _INSERT_START.search(text):
        return None
    match = _INSERT_FORMAT.search(text)
    if match is None:
        return None
    rest = match.end()
    sep = _DATA_SEPARATOR.match(text, rest)
    data_start = sep.end() if sep else rest
    if sep is None and rest != len(text):
        return None
    return text[: match.start()].rstrip(), text[data_start:], match.group(1).decode()


def build_request(method: str, params: Mapping[str, str], body: bytes) -> Request:
    """Turn URL parameters and a (decompressed) body into a Request, as ClickHouse does."""
    query = params.get("query", "").encode()
    if query and body:
        head = _TRAILING_FORMAT.search(query)
        if _INSERT_START.search(query) and head:
            stmt = query[: head.start()].rstrip()
            split: tuple[bytes, bytes, str] | None = (stmt, body, head.group(1).decode())
        else:
            split = _split_insert(query + b"\n" + body)
            if split is None:
                query = query + b"\n" + body
    else:
        query = query or body
        split = _split_insert(query)
    if not query.strip() and split is None:
        raise QueryFailure(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)", status=400)
    settings: dict[str, str] = {}
    bind: dict[str, str] = {}
    for key, value in params.items():
        if key.startswith("param_"):
            bind[key[len("param_") :]] = value
        elif key not in _TRANSPORT_PARAMS:
            if not _SETTING_NAME.match(key):
                raise QueryFailure(
                    _UNKNOWN_SETTING,
                    f"Code: {_UNKNOWN_SETTING}. DB::Exception: Unknown setting '{key}'. "
                    "(UNKNOWN_SETTING)",
                    status=400,
                )
            settings[key] = value
    try:
        session_timeout = float(params.get("session_timeout", SESSION_TIMEOUT_S))
    except ValueError:
        session_timeout = SESSION_TIMEOUT_S
    common: dict[str, Any] = {
        "database": params.get("database") or None,
        "settings": settings,
        "params": bind,
        "session_id": params.get("session_id") or None,
        "session_timeout": session_timeout,
        "read_only": method == "GET",
    }
    if split is not None:
        stmt, data, fmt = split
        return Request(sql=stmt, data=data, data_format=fmt, default_format=None, **common)
    return Request(
        sql=query,
        data=None,
        data_format=None,
        default_format=params.get("default_format"),
        **common,
    )


# ---- HTTP -----------------------------------------------------------------------------------


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
        decoder = _Decoder(self.headers.get("Content-Encoding", ""))
        parts: list[bytes] = []
        size = 0
        for chunk in self._raw_chunks():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                self.close_connection = True
                raise QueryFailure(
                    _TOO_LARGE,
                    f"Code: {_TOO_LARGE}. DB::Exception: request body over "
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
                    _AUTHENTICATION_FAILED,
                    f"Code: {_AUTHENTICATION_FAILED}. DB::Exception: {user}: Authentication "
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
                    _NOT_IMPLEMENTED,
                    f"Code: {_NOT_IMPLEMENTED}. DB::Exception: ClickHouse's compressed "
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
            error = _failure_from(exc)
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


@dataclass
class ServerProcess:
    """A `python -m devtools store serve` subprocess (see `spawn_server`)."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    path: Path

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return int(self.process.returncode)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_server(
    path: str | os.PathLike[str],
    port: int = 0,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> ServerProcess:
    """Start `python -m devtools store serve` in its own process; wait until it answers."""
    cmd = [
        sys.executable, "-m", "devtools", "store", "serve",
        "--path", str(path), "--port", str(port), "--host", host,
    ]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), full_env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=full_env, cwd=root)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    url = ""
    buffered = b""
    try:
        while not url:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise RuntimeError(
                    f"the chDB HTTP server did not start (exit code {proc.poll()}): "
                    f"{buffered.decode(errors='replace')[-2000:]}"
                )
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
            if ready:
                line = proc.stdout.readline()
                buffered += line
                text = line.decode(errors="replace").strip()
                if text.startswith("RINGLOG_CLICKHOUSE_URL="):
                    url = text.split("=", 1)[1]
        actual_port = int(url.rsplit(":", 1)[1])
        while not _pings(host, actual_port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the chDB HTTP server does not answer /ping")
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return ServerProcess(proc, url, actual_port, Path(path))


def _pings(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return b"Ok." in sock.recv(4096)
    except OSError:
        return False
