"""ClickHouse access for the worker: a ClickHouse server over HTTP(S), or embedded chDB.

    store = ClickHouseStore("chdb:///abs/var/clickhouse", "ringlog")   # or http(s)://u:p@h:8123
    store.migrate()
    store.insert("call_event", rows, dedup_token="telephony.call-events:3:100-199")
    names, rows = store.query("SELECT count() FROM ringlog.call_event FINAL")
    store.close()

Failures are split in two, so the worker knows what to retry:

- `StoreUnavailable`: transient (network, server down or overloaded, chDB path locked by another
  process). Retry with backoff (`worker.pipeline.retry`); never skip the input.
- `StoreError`: everything else (bad SQL, unknown table, schema drift, bad URL). Retrying will
  not help.

Messages never contain a password (`redact_url`).

chDB notes (measured, see docs/research): one process per data path ("Cannot lock file"), one
data path per process, no async client (call from threads), `async_insert` on by default in
26.x (so inserts pin `async_insert=0`), and `insert_deduplication_token` only works because the
tables carry `non_replicated_deduplication_window`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import logging
import os
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from schemas.ddl import MIGRATIONS_TABLE, check_database_name, ddl_statements, qualified
from schemas.tables import ALL_TABLES, CALL_EVENT, SCHEMA_VERSION, Table
from worker.pipeline.ports import CallEventRow, StoreError, StoreUnavailable

log = logging.getLogger(__name__)

__all__ = [
    "INSERT_SETTINGS",
    "LOOKUP_CHUNK",
    "TRANSIENT_CODES",
    "CallEventRow",
    "ClickHouseStore",
    "StoreError",
    "StoreUnavailable",
    "redact_url",
]

LOOKUP_CHUNK: Final = 5000
"""At most this many keys per `load_call_events` query."""

LOOKUP_MAX_BYTES: Final = 1 << 20
"""...and at most about this much key text per query: the keys are SQL literals, and the
default `max_query_size` (256 KiB) is exceeded by ~4000 UUID keys. Each lookup query raises
`max_query_size` to LOOKUP_QUERY_SIZE."""

LOOKUP_QUERY_SIZE: Final = 4 << 20

INSERT_SETTINGS: Final[Mapping[str, object]] = {"async_insert": 0}
"""Pinned on every insert: chDB 26.x and ClickHouse >= 26.3 default to async_insert=1."""

# ClickHouse error codes worth retrying: the server is busy, restarting or unreachable, or the
# insert's outcome is unknown (a retry with the same dedup token is safe).
TRANSIENT_CODES: Final = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY (replica in read-only mode while Keeper is away)
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        203,  # NO_FREE_CONNECTION
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        394,  # QUERY_WAS_CANCELLED
        425,  # SYSTEM_ERROR
        439,  # CANNOT_SCHEDULE_TASK
        999,  # KEEPER_EXCEPTION
    }
)
# Codes that concurrent `CREATE ... IF NOT EXISTS` from two processes can still raise.
_ALREADY_EXISTS_CODES: Final = frozenset({57, 82})  # TABLE_ALREADY_EXISTS, DATABASE_ALREADY_EXISTS
_TRANSIENT_HTTP = re.compile(r"HTTP status (?:429|502|503|504)\b")
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@")
_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|access_token)=[^&\s]*")


def redact_url(url: str) -> str:
    """`http://user:pass@host:8123/db` -> `http://user:***@host:8123/db` (also `password=`)."""
    masked = _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", url)
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}=***", masked)


@dataclass(frozen=True)
class _Target:
    kind: str  # "chdb" or "http"
    dsn: str  # what clickhouse_connect.get_client(dsn=...) gets
    display: str  # redacted, for messages and logs
    path: Path | None  # chDB data directory (None = in memory)
    interface: str | None  # "http" / "https"
    password: str  # to scrub from any message


def _parse_url(url: str) -> _Target:
    if url.startswith("chdb:"):
        rest = url[len("chdb:") :]
        rest = rest.removeprefix("//")
        location, _, query = rest.partition("?")
        if location in ("", "memory", ":memory:"):
            return _Target("chdb", "chdb://memory", "chdb://memory", None, None, "")
        # chdb:///abs/path -> "/abs/path"; chdb://./var/clickhouse -> "./var/clickhouse"
        path = Path(location).expanduser().resolve()
        dsn = f"chdb://{path}" + (f"?{query}" if query else "")
        return _Target("chdb", dsn, redact_url(dsn), path, None, "")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise StoreError(
            f"unsupported ClickHouse URL {redact_url(url)!r}: "
            "use http(s)://user:password@host:8123/db or chdb:///abs/path"
        )
    # The database comes from the `database` argument (it may not exist before migrate()),
    # so the URL's path is dropped; the query string (client options) is kept.
    query = urlencode(parse_qsl(parts.query))
    dsn = urlunsplit((parts.scheme, parts.netloc, "", query, ""))
    return _Target("http", dsn, redact_url(dsn), None, parts.scheme, parts.password or "")


def _path_locked_by_other_process(path: Path) -> bool:
    """True when another process holds ClickHouse's lock on `<path>/status`."""
    status = path / "status"
    if not status.exists():
        return False
    try:
        fd = os.open(status, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        return exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


# ---- value conversion (only for column kinds clickhouse-connect does not take as-is) ------

_UTC = dt.UTC


def _to_time(value: object) -> object:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        # clickhouse-connect reads a naive datetime as *process-local* time: pin it to UTC.
        return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)
    raise TypeError(f"expected a datetime, got {type(value).__name__}")


def _decimal_converter(scale: int) -> Callable[[object], object]:
    quantum = Decimal(1).scaleb(-scale)

    def convert(value: object) -> object:
        if value is None:
            return None
        if isinstance(value, Decimal):
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int) and exponent >= -scale:
                return value
            # ClickHouse would truncate extra digits; the contract rounds half-up.
            return value.quantize(quantum, rounding=ROUND_HALF_UP)
        if isinstance(value, bool):
            raise TypeError("expected a decimal, got bool")
        if isinstance(value, int | float | str):
            try:
                return Decimal(str(value)).quantize(quantum, rounding=ROUND_HALF_UP)
            except InvalidOperation as exc:
                raise TypeError(f"not a decimal: {value!r}") from exc
        raise TypeError(f"expected a decimal, got {type(value).__name__}")

    return convert


def _to_uuid(value: object) -> object:
    if value is None or isinstance(value, uuid.UUID | str):
        return value  # clickhouse-connect parses str itself
    if isinstance(value, bytes) and len(value) == 16:
        return uuid.UUID(bytes=value)
    raise TypeError(f"expected a UUID, got {type(value).__name__}")


def _to_string(value: object) -> object:
    if value is None or isinstance(value, str | bytes):
        return value
    raise TypeError(f"expected str, got {type(value).__name__}")


_DECIMAL_TYPE = re.compile(r"Decimal\(\s*\d+\s*,\s*(\d+)\s*\)")


def _converter(ch_type: str) -> Callable[[object], object] | None:
    inner = ch_type
    for wrapper in ("LowCardinality(", "Nullable("):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper) : -1]
    if inner.startswith("DateTime64"):
        return _to_time
    decimal = _DECIMAL_TYPE.fullmatch(inner)
    if decimal:
        return _decimal_converter(int(decimal.group(1)))
    if inner == "UUID":
        return _to_uuid
    if inner == "String":
        return _to_string
    return None


@dataclass(frozen=True)
class _InsertPlan:
    table: Table
    names: tuple[str, ...]
    types: tuple[str, ...]
    known: frozenset[str]
    converters: tuple[Callable[[object], object] | None, ...]


def _insert_plan(table: Table) -> _InsertPlan:
    return _InsertPlan(
        table,
        table.column_names,
        table.column_types,
        frozenset(table.column_names),
        tuple(_converter(t) for t in table.column_types),
    )


def _normalize_type(ch_type: str) -> str:
    return re.sub(r"\s+", "", ch_type)


class ClickHouseStore:
    """Thin, typed wrapper over one clickhouse-connect client (thread-safe via a lock).

    Connects lazily on first use (or `connect()`), so a store that was unavailable at start-up
    recovers on a later retry.
    """

    def __init__(self, url: str, database: str) -> None:
        try:
            self.database = check_database_name(database)
        except ValueError as exc:
            raise StoreError(f"bad database name {database!r}") from exc
        self._target = _parse_url(url)
        self._client: Any = None
        self._lock = threading.RLock()
        self._plans: dict[str, _InsertPlan] = {t.name: _insert_plan(t) for t in ALL_TABLES}

    # ---- connection ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL with any password masked."""
        return self._target.display

    @property
    def embedded(self) -> bool:
        return self._target.kind == "chdb"

    def connect(self) -> None:
        """Open the client now (otherwise the first call does). Idempotent."""
        with self._lock:
            self._connected_client()

    def _connected_client(self) -> Any:
        if self._client is not None:
            return self._client
        import clickhouse_connect

        target = self._target
        kwargs: dict[str, Any] = {"dsn": target.dsn, "tz_mode": "aware"}
        if target.kind == "chdb":
            if target.path is not None:
                try:
                    target.path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise StoreError(f"cannot create chDB directory {target.path}: {exc}") from exc
        else:
            kwargs["interface"] = target.interface  # https on any port, not only 443/8443
            # No HTTP session: the client is shared by threads, and a session allows only one
            # query at a time ("Session is locked").
            kwargs["autogenerate_session_id"] = False
        try:
            client = clickhouse_connect.get_client(**kwargs)
        except Exception as exc:
            raise self._translate(exc, "connecting to") from exc
        with contextlib.suppress(Exception):
            if self._database_exists(client):
                client.database = self.database
        self._client = client
        log.info("connected to ClickHouse at %s", target.display)
        return client

    def _database_exists(self, client: Any) -> bool:
        result = client.query(
            "SELECT count() FROM system.databases WHERE name = %(db)s",
            parameters={"db": self.database},
        )
        return bool(result.result_rows[0][0])

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    def __enter__(self) -> ClickHouseStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- error translation --------------------------------------------------------------

    def _redact(self, text: str) -> str:
        text = redact_url(text)
        password = self._target.password
        for secret in {password, unquote(password)} - {""}:
            text = text.replace(secret, "***")
        return text

    def _translate(self, exc: BaseException, doing: str) -> StoreUnavailable | StoreError:
        """Map a driver exception to StoreUnavailable (retry) or StoreError (don't)."""
        from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

        target = self._target
        message = self._redact(str(exc))
        where = f"{doing} ClickHouse at {target.display}"
        open_failed = (
            "Error initializing EmbeddedServer" in message or "Cannot lock file" in message
        )
        if open_failed and target.path is not None and _path_locked_by_other_process(target.path):
            return StoreUnavailable(
                f"the chDB store {target.path} is locked by another process (probably a "
                "running `ringlog worker`); chDB lets one process open a store at a time, "
                "so while the worker runs, `ringlog sql` goes through the worker's HTTP "
                "port (RINGLOG_HTTP_PORT) instead of opening the store"
            )
        if target.kind == "chdb" and "already initialized with path" in message:
            return StoreError(
                f"{where}: chDB allows one data path per process and another path is open "
                f"in this process ({message})"
            )
        if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
            return StoreUnavailable(f"{where}: {message}")
        if isinstance(exc, DatabaseError):
            code = getattr(exc, "code", None)
            if code in TRANSIENT_CODES or _TRANSIENT_HTTP.search(message):
                return StoreUnavailable(f"{where}: {message}")
            return StoreError(f"{where}: {message}")
        if isinstance(exc, OSError):
            return StoreUnavailable(f"{where}: {message}")
        return StoreError(f"{where}: {type(exc).__name__}: {message}")

    @contextlib.contextmanager
    def _call(self, doing: str) -> Iterator[Any]:
        with self._lock:
            client = self._connected_client()
            try:
                yield client
            except (StoreError, StoreUnavailable):
                raise
            except Exception as exc:
                raise self._translate(exc, doing) from exc

    # ---- schema -------------------------------------------------------------------------

    def migrate(self) -> int:
        """Create database, tables, `_latest` views and schema_migrations if missing; record
        SCHEMA_VERSION once; check that the live columns match schemas/tables.py.

        Safe to run twice or from two processes at once. Returns the schema version.
        """
        with self._call("migrating") as client:
            for statement in ddl_statements(self.database):
                try:
                    client.command(statement)
                except Exception as exc:
                    if getattr(exc, "code", None) in _ALREADY_EXISTS_CODES:
                        continue  # lost a CREATE race to another process: fine
                    raise
            client.database = self.database
            self._check_columns(client)
            migrations = qualified(self.database, MIGRATIONS_TABLE)
            recorded = client.query(
                f"SELECT count() FROM {migrations} WHERE version = %(v)s",
                parameters={"v": SCHEMA_VERSION},
            ).result_rows[0][0]
            if not recorded:
                # The token makes a concurrent second recording a no-op (the table has a
                # non_replicated_deduplication_window, like the data tables).
                client.insert(
                    MIGRATIONS_TABLE,
                    [[SCHEMA_VERSION, dt.datetime.now(_UTC), f"ringlog schema {SCHEMA_VERSION}"]],
                    database=self.database,
                    column_names=["version", "applied_at", "description"],
                    column_type_names=["UInt32", "DateTime64(3, 'UTC')", "String"],
                    settings={
                        **INSERT_SETTINGS,
                        "insert_deduplication_token": f"schema-{SCHEMA_VERSION}",
                    },
                )
        return SCHEMA_VERSION

    def _check_columns(self, client: Any) -> None:
        names = [t.name for t in ALL_TABLES]
        rows = client.query(
            "SELECT table, name, type FROM system.columns "
            "WHERE database = %(db)s AND table IN %(tables)s ORDER BY table, position",
            parameters={"db": self.database, "tables": names},
        ).result_rows
        live: dict[str, list[tuple[str, str]]] = {}
        for table, name, ch_type in rows:
            live.setdefault(table, []).append((name, _normalize_type(ch_type)))
        for table in ALL_TABLES:
            expected = [(n, _normalize_type(t)) for n, t in table.columns]
            if live.get(table.name) != expected:
                raise StoreError(
                    f"schema drift in {self.database}.{table.name}: the live columns differ "
                    f"from schemas/tables.py (version {SCHEMA_VERSION}); "
                    f"live={live.get(table.name)} expected={expected}"
                )

    # ---- writes -------------------------------------------------------------------------

    def insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, object]],
        dedup_token: str | None = None,
    ) -> None:
        """Insert dict rows into `table` (a table of schemas/tables.py) as one block.

        Missing keys are NULL (or the type's default for non-Nullable columns); unknown keys
        raise StoreError. With `dedup_token`, a retry of the same batch with the same token is
        dropped by ClickHouse (within the last 1000 inserts of that table).
        """
        if not rows:
            return
        plan = self._plans.get(table)
        if plan is None:
            raise StoreError(f"unknown table {table!r}; known: {sorted(self._plans)}")
        known = plan.known
        for row in rows:
            if not known.issuperset(row):
                unknown = sorted(set(row) - known)
                raise StoreError(f"{table}: unknown column(s) {unknown}")
        columns: list[list[object]] = []
        for name, convert in zip(plan.names, plan.converters, strict=True):
            column = [row.get(name) for row in rows]
            if convert is not None:
                try:
                    column = [convert(v) for v in column]
                except (TypeError, ValueError) as exc:
                    raise StoreError(f"{table}.{name}: {exc}") from exc
            columns.append(column)
        settings: dict[str, object] = dict(INSERT_SETTINGS)
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        with self._call(f"inserting {len(rows)} rows into {table} at") as client:
            client.insert(
                table,
                columns,
                database=self.database,
                column_names=plan.names,
                column_type_names=plan.types,
                column_oriented=True,
                settings=settings,
            )

    # ---- reads --------------------------------------------------------------------------

    def query(
        self, sql: str, parameters: Mapping[str, object] | None = None
    ) -> tuple[list[str], list[tuple[object, ...]]]:
        """Run a SELECT; returns (column names, rows). Times come back as aware UTC datetimes.

        Parameters use clickhouse-connect's client-side binding: `%(name)s` placeholders.
        Unqualified table names resolve in the store's database once it exists.
        """
        with self._call("querying") as client:
            result = client.query(sql, parameters=dict(parameters) if parameters else None)
            return list(result.column_names), [tuple(row) for row in result.result_rows]

    def command(self, sql: str, parameters: Mapping[str, object] | None = None) -> object:
        """Run a statement that returns no rows (DDL, OPTIMIZE, ...)."""
        with self._call("running a command on") as client:
            result: object = client.command(
                sql, parameters=dict(parameters) if parameters else None
            )
            return result

    def load_call_events(self, keys: Sequence[tuple[str, str]]) -> list[CallEventRow]:
        """Stored events of the given (project_id, call_id) pairs.

        No FINAL and no ORDER BY: both cost more than the lookup itself, and the caller
        de-duplicates by event_id and orders events anyway (`worker.core.correlation`). A row may
        therefore come back once per unmerged part it sits in.

        Returns (project_id, call_id, payload, topic, partition, offset) per stored row, in
        no particular order. Keys are looked up
        in chunks (LOOKUP_CHUNK keys, LOOKUP_MAX_BYTES of literals) through the table's
        primary key; a project_id that is not a
        UUID matches nothing.
        """
        unique: list[tuple[str, str]] = []
        seen: set[tuple[str, str]] = set()
        for project_id, call_id in keys:
            try:
                key = (str(uuid.UUID(str(project_id))), call_id)
            except ValueError:
                continue
            if key not in seen:
                seen.add(key)
                unique.append(key)
        table = qualified(self.database, CALL_EVENT.name)
        sql = (
            "SELECT toString(project_id), call_id, payload, topic, `partition`, `offset` "
            f"FROM {table} "
            "WHERE (project_id, call_id) IN %(keys)s"
        )
        out: list[CallEventRow] = []
        for chunk in _chunks(unique):
            with self._call("loading call events from") as client:
                result = client.query(
                    sql,
                    parameters={"keys": chunk},
                    settings={"max_query_size": LOOKUP_QUERY_SIZE},
                )
                out.extend(
                    (str(p), str(c), _text(payload), str(topic), int(part), int(off))
                    for p, c, payload, topic, part, off in result.result_rows
                )
        return out


def _chunks(keys: list[tuple[str, str]]) -> Iterator[list[tuple[str, str]]]:
    """Split keys by count (LOOKUP_CHUNK) and literal size (LOOKUP_MAX_BYTES)."""
    chunk: list[tuple[str, str]] = []
    size = 0
    for key in keys:
        # ('uuid', 'call_id'), + worst-case escaping of the call_id
        cost = 48 + 2 * len(key[1].encode())
        if chunk and (len(chunk) >= LOOKUP_CHUNK or size + cost > LOOKUP_MAX_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(key)
        size += cost
    if chunk:
        yield chunk


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)
