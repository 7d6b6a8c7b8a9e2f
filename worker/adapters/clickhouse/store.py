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

The store is this module (connection, error translation, insert, query, lookups); the parts it
uses are beside it: `url` (the store URL, `redact_url`, the chDB lock check), `values` (the
per-table insert plan and its value converters, INSERT_SETTINGS) and `migrations` (DDL, schema
version, schema drift).
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final
from urllib.parse import unquote

import orjson

from schemas.ddl import check_database_name, qualified
from schemas.tables import ALL_TABLES, CALL_EVENT, INCOMING_CALL_LOG_ITEM, REJECTED_EVENT
from worker.adapters.clickhouse.migrations import check_columns, migrate_database
from worker.adapters.clickhouse.untrusted import QueryLimits, check_statement, refusal
from worker.adapters.clickhouse.upgrade import UpgradeState, upgrade_state
from worker.adapters.clickhouse.url import parse_url, path_locked_by_other_process, redact_url
from worker.adapters.clickhouse.values import (
    INSERT_SETTINGS,
    JSON_INSERT_SETTINGS,
    InsertPlan,
    RowBinaryBlock,
    insert_plan,
)
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
_TRANSIENT_HTTP = re.compile(r"HTTP status (?:429|502|503|504)\b")


class ClickHouseStore:
    """Thin, typed wrapper over one clickhouse-connect client (thread-safe via a lock).

    Connects lazily on first use (or `connect()`), so a store that was unavailable at start-up
    recovers on a later retry.
    """

    def __init__(
        self,
        url: str,
        database: str,
        cluster: str | None = None,
        ca_file: str | None = None,
    ) -> None:
        try:
            self.database = check_database_name(database)
            if cluster is not None:
                check_database_name(cluster)  # the same identifier rules
        except ValueError as exc:
            raise StoreError(f"bad database or cluster name {database!r} / {cluster!r}") from exc
        # Cluster mode (RINGLOG_CLICKHOUSE_CLUSTER): the tables are Distributed, and an
        # insert returns only once every shard has its rows (offsets are committed after it).
        self.cluster = cluster
        # The CA of an https:// server's certificate (RINGLOG_CLICKHOUSE_CA_FILE); None: the
        # system's CAs.
        self._ca_file = ca_file
        self._target = parse_url(url)
        self._client: Any = None
        self._lock = threading.RLock()
        # `load_call_events` has a client of its own: the reload of the next batch's calls
        # runs while this batch's inserts hold the main one (the pipeline overlaps them).
        self._loader: Any = None
        self._loader_lock = threading.Lock()
        # The query APIs' clients, one per query running at once: read-only and capped (chDB
        # keeps settings on the client's session, so the inserting client must never run
        # these). Idle ones wait here.
        self._idle_readers: list[Any] = []
        self._reader_lock = threading.Lock()
        self._plans: dict[str, InsertPlan] = {t.name: insert_plan(t) for t in ALL_TABLES}

    # ---- connection ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The store's URL with any password masked."""
        return self._target.display

    @property
    def embedded(self) -> bool:
        return self._target.kind == "chdb"

    @property
    def embedded_path(self) -> Path | None:
        """The chDB data directory (None: a ClickHouse server, or chDB in memory)."""
        return self._target.path if self._target.kind == "chdb" else None

    def connect(self) -> None:
        """Open the client now (otherwise the first call does). Idempotent."""
        with self._lock:
            self._connected_client()

    def _connected_client(self) -> Any:
        if self._client is not None:
            return self._client
        client = self._new_client()
        with contextlib.suppress(Exception):
            if self._database_exists(client):
                client.database = self.database
        self._client = client
        log.info("connected to ClickHouse at %s", self._target.display)
        return client

    def _new_client(self) -> Any:
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
            if self._ca_file is not None:
                kwargs["ca_cert"] = self._ca_file
            # No HTTP session: the client is shared by threads, and a session allows only one
            # query at a time ("Session is locked").
            kwargs["autogenerate_session_id"] = False
        try:
            return clickhouse_connect.get_client(**kwargs)
        except Exception as exc:
            raise self._translate(exc, "connecting to") from exc

    def _database_exists(self, client: Any) -> bool:
        result = client.query(
            "SELECT count() FROM system.databases WHERE name = %(db)s",
            parameters={"db": self.database},
        )
        return bool(result.result_rows[0][0])

    def close(self) -> None:
        with self._reader_lock:
            idle, self._idle_readers = self._idle_readers, []
        for reader in idle:
            with contextlib.suppress(Exception):
                reader.close()
        with self._lock:
            client, self._client = self._client, None
        with self._loader_lock:
            loader, self._loader = self._loader, None
        for opened in (client, loader):
            if opened is not None:
                with contextlib.suppress(Exception):
                    opened.close()

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
        if open_failed and target.path is not None and path_locked_by_other_process(target.path):
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

    @contextlib.contextmanager
    def _loader_call(self, doing: str) -> Iterator[Any]:
        with self._loader_lock:
            try:
                if self._loader is None:
                    loader = self._new_client()
                    loader.database = self.database
                    self._loader = loader
                yield self._loader
            except (StoreError, StoreUnavailable):
                raise
            except Exception as exc:
                raise self._translate(exc, doing) from exc

    # ---- schema -------------------------------------------------------------------------

    def migrate(self, *, upgrade: bool = False) -> int:
        """Create database, tables, `_latest` views and schema_migrations if missing; record
        SCHEMA_VERSION once; check that the live columns match schemas/tables.py.

        A schema-1 store is upgraded in place only with `upgrade` (`ringlog migrate`, with the
        workers stopped); otherwise it is a StoreError that says so. Safe to run twice;
        without `upgrade`, also from two processes at once. Returns the schema version.
        """
        with self._call("migrating") as client:
            return migrate_database(client, self.database, upgrade=upgrade, cluster=self.cluster)

    def pending_upgrade(self) -> UpgradeState | None:
        """What an upgrade would do here; None when there is nothing (yet) to upgrade: no
        database, or no item table (a fresh store is created at the current schema)."""
        with self._call("inspecting") as client:
            if not self._database_exists(client):
                return None
            exists = client.query(
                "SELECT count() FROM system.tables WHERE database = %(db)s AND name = %(t)s",
                parameters={"db": self.database, "t": INCOMING_CALL_LOG_ITEM.name},
            ).result_rows[0][0]
            if not exists:
                return None
            state = upgrade_state(client, self.database)
            return state if state.pending else None

    def newest_write(self) -> datetime | None:
        """The newest `ingested_at` (or `rejected_at`) in the store: when anything last wrote
        to it (the worker, `ringlog rebuild`). None when empty or not created."""
        parts = [
            f"SELECT max({'rejected_at' if t is REJECTED_EVENT else 'ingested_at'}) AS at, "
            f"count() AS n FROM {qualified(self.database, t.name)}"
            for t in ALL_TABLES
            # what the worker and rebuild write (api_key rows are an operator's)
            if t is REJECTED_EVENT or "ingested_at" in t.column_names
        ]
        sql = f"SELECT max(at) FROM ({' UNION ALL '.join(parts)}) WHERE n > 0"
        with self._call("inspecting") as client:
            if not self._database_exists(client):
                return None
            newest = client.query(sql).result_rows[0][0]
        if not isinstance(newest, datetime) or newest.timestamp() <= 0:
            return None
        return newest if newest.tzinfo is not None else newest.replace(tzinfo=UTC)

    def check_schema(self) -> None:
        """StoreError unless the store has the tables and columns of schemas/tables.py (for
        processes that read it but must not migrate it, such as `ringlog api`)."""
        with self._call("checking the schema of") as client:
            if not self._database_exists(client):
                raise StoreError(
                    f"database {self.database!r} does not exist: run `ringlog migrate` first"
                )
            check_columns(client, self.database)

    # ---- writes -------------------------------------------------------------------------

    def insert(
        self,
        table: str,
        rows: Sequence[Mapping[str, object]],
        dedup_token: str | None = None,
    ) -> None:
        """Insert dict rows into `table` (a table of schemas/tables.py) as one block, the same
        values stored either way: encoded in RowBinary (`values.InsertPlan.row_binary`) and
        sent as one Native block (`values.InsertPlan.native`), or else as one JSONEachRow body
        (`values.InsertPlan.body`). Rows that come encoded already (`values.RowBinaryBlock`:
        a plan's call_event rows) are only turned into the Native block
        (`values.InsertPlan.native_of_rows`).

        Missing keys are NULL (or the type's default for non-Nullable columns); unknown keys
        raise StoreError. With `dedup_token`, a retry of the same batch with the same token is
        dropped by ClickHouse (within the last 1000 inserts of that table).
        """
        if not rows:
            return
        plan = self._plans.get(table)
        if plan is None:
            raise StoreError(f"unknown table {table!r}; known: {sorted(self._plans)}")
        names, fmt, settings = plan.names, "JSONEachRow", dict(JSON_INSERT_SETTINGS)
        try:
            binary: bytes | None
            block: bytes | None = None
            if isinstance(rows, RowBinaryBlock):
                plan.check_row_binary(rows)
                names = rows.columns
                parts, suffix = rows.row_parts()
                block = plan.native_of_rows(parts, suffix, names)
                binary = None if block is not None else suffix.join([*parts, b""])
            else:
                binary = plan.row_binary(rows)
                if binary is not None:
                    block = plan.native(binary, len(rows), names)
            if block is not None:
                fmt, settings, body = "Native", dict(INSERT_SETTINGS), block
            elif binary is not None:
                fmt, settings, body = "RowBinary", dict(INSERT_SETTINGS), binary
            else:
                body = plan.body(rows)
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{table}: {exc}") from exc
        if self.cluster is not None:
            settings["distributed_foreground_insert"] = 1
        if dedup_token is not None:
            settings["insert_deduplication_token"] = dedup_token
        with self._call(f"inserting {len(rows)} rows into {table} at") as client:
            client.raw_insert(
                qualified(self.database, table),
                list(names),
                insert_block=body,
                settings=settings,
                fmt=fmt,
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

    def query_untrusted(
        self, sql: str, limits: QueryLimits
    ) -> tuple[list[str], list[tuple[object, ...]]]:
        """Run a statement from outside ringlog (POST /query, `ringlog sql`) read-only and
        capped, on a client of its own (see `untrusted`). Raises StatementRefused (with the
        reason), StoreError or StoreUnavailable."""
        check_statement(sql)
        self._connected_client()  # the store must open (and the database exist) first
        client = self._new_client()
        try:
            if self._database_exists(client):
                client.database = self.database
            settings = limits.settings()
            # The engine's own parser normalises the statement (comments gone, heredocs and
            # odd quoting rewritten as plain literals, several statements refused); the check
            # runs again on that text, and that text is what runs.
            formatted = client.query(
                "SELECT formatQuerySingleLine(%(q)s)", parameters={"q": sql}, settings=settings
            )
            normalised = str(formatted.result_rows[0][0])
            check_statement(normalised)
            result = client.query(normalised, settings=settings)
            return list(result.column_names), [tuple(row) for row in result.result_rows]
        except (StoreError, StoreUnavailable):
            raise
        except Exception as exc:
            refused = refusal(self._redact(str(exc)), limits)
            if refused is not None:
                raise refused from exc
            raise self._translate(exc, "querying") from exc
        finally:
            with contextlib.suppress(Exception):
                client.close()

    def query_capped(
        self, sql: str, parameters: Mapping[str, object], limits: QueryLimits
    ) -> tuple[list[str], list[tuple[object, ...]]]:
        """Run a query that ringlog built (the query APIs: allow-listed columns, values bound
        as `{name:Type}` parameters) read-only and capped, on the reader client. Raises
        StatementRefused (a cap was hit), StoreError or StoreUnavailable."""
        reader = self._take_reader()
        try:
            result = reader.query(sql, parameters=dict(parameters), settings=limits.settings())
            rows = list(result.column_names), [tuple(row) for row in result.result_rows]
        except Exception as exc:
            refused = refusal(self._redact(str(exc)), limits)
            translated = refused or self._translate(exc, "querying")
            if isinstance(translated, StoreUnavailable):
                with contextlib.suppress(Exception):
                    reader.close()  # a broken connection is not put back
            else:
                self._give_back(reader)
            raise translated from exc
        self._give_back(reader)
        return rows

    def _take_reader(self) -> Any:
        with self._reader_lock:
            if self._idle_readers:
                return self._idle_readers.pop()
        with self._lock:
            self._connected_client()  # opens the store, so the database exists
        try:
            reader = self._new_client()
            if self._database_exists(reader):
                reader.database = self.database
        except (StoreError, StoreUnavailable):
            raise
        except Exception as exc:
            raise self._translate(exc, "connecting a reader to") from exc
        return reader

    def _give_back(self, reader: Any) -> None:
        with self._reader_lock:
            self._idle_readers.append(reader)

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
        out: list[CallEventRow] = []
        for chunk in _chunks(unique):
            # The keys travel as one JSON string literal that ClickHouse parses, not as
            # thousands of tuple literals formatted in Python (measured: 3.3x less CPU on the
            # worker's thread); in the statement body, so no URL length limit applies. The
            # literal is an object of each project's call_ids, so each project_id comes once:
            # 1,800 calls of 1-200 projects cost ClickHouse 16-33 ms of CPU to parse and look
            # up, against 30-48 ms as an array of pairs (and 50 against 44 ms in the worst
            # case, every call of its own project).
            calls_by_project: dict[str, list[str]] = {}
            for project_id, call_id in chunk:
                calls_by_project.setdefault(project_id, []).append(call_id)
            literal = orjson.dumps(calls_by_project).decode()
            literal = literal.replace("\\", "\\\\").replace("'", "\\'")
            sql = (
                "SELECT toString(project_id), call_id, payload, topic, `partition`, `offset` "
                f"FROM {table} WHERE (project_id, call_id) IN ("
                "SELECT toUUID(calls.1), arrayJoin(calls.2) FROM (SELECT arrayJoin("
                f"JSONExtractKeysAndValues('{literal}', 'Array(String)')) AS calls))"
            )
            with self._loader_call("loading call events from") as client:
                result = client.query(sql, settings={"max_query_size": LOOKUP_QUERY_SIZE})
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
        # ["uuid","call_id"], + worst-case escaping of the call_id: a control character is
        # \u00XX in JSON, then its backslash is doubled in the SQL literal (7 bytes)
        cost = 48 + 7 * len(key[1].encode())
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
