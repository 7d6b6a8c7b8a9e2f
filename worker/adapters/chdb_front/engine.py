"""The engine: one embedded chDB store that runs Requests, each on its own connection handle
(or on a session's dedicated handle), and returns a Result (body, format, summary)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.adapters.chdb_front.errors import SESSION_IS_LOCKED, QueryFailure
from worker.adapters.chdb_front.native import native_header_block
from worker.adapters.chdb_front.request import SESSION_TIMEOUT_S, TRAILING_FORMAT, Request

log = logging.getLogger(__name__)

_READ_ONLY_START = re.compile(rb"^\s*(?:\(\s*)*(?:SELECT|WITH)\b", re.IGNORECASE)


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_ident(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


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
                        SESSION_IS_LOCKED,
                        f"Code: {SESSION_IS_LOCKED}. DB::Exception: Session "
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
        explicit = TRAILING_FORMAT.search(req.sql)
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
        stripped = TRAILING_FORMAT.sub(b"", req.sql).decode("utf-8", errors="surrogateescape")
        try:
            meta = json.loads(conn.query(stripped, "JSONCompact", params=req.params).bytes())
            return native_header_block(meta["meta"])
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
