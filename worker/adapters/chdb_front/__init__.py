"""A small ClickHouse-HTTP-interface server in front of one embedded chDB store.

Why: chDB (embedded ClickHouse) lets one process open a data directory. This server owns
the directory and speaks enough of ClickHouse's HTTP interface
(https://clickhouse.com/docs/interfaces/http) that `clickhouse_connect.get_client(host=...,
port=...)` and ringlog's ClickHouseStore (`http://default:@127.0.0.1:PORT`) work unchanged, so
several processes can share ONE embedded store. It is part of the product for one reason:
`ringlog worker --processes N` with the embedded store, where the supervising process owns the
store and serves it on loopback to its N worker processes (`worker.service.supervisor`). It is
not a production ClickHouse: in production the workers write to a ClickHouse server.

    url, stop = start_server(path, port=0, user="ringlog", password=secret)  # a thread here

Development and tests also run it on its own (`python -m devtools store serve`, and
`devtools.chdb_http.spawn_server` for a subprocess).

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
own handles (measured safe; see tests/integration/test_chdb_http.py); `max_concurrency` bounds them.
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

Modules:

- `errors`: QueryFailure, the error codes the server raises itself, exception -> failure.
- `content_encoding`: incremental decoders for compressed request bodies.
- `native`: Native-format helpers (the zero-row header block).
- `request`: Request and `build_request` (URL parameters, settings, insert splitting).
- `engine`: ChdbEngine (runs Requests on chDB handles, sessions) and Result.
- `server`: ChdbHttpServer, the HTTP handler, `serve` and `start_server`.
"""

from worker.adapters.chdb_front.engine import ChdbEngine
from worker.adapters.chdb_front.errors import QueryFailure
from worker.adapters.chdb_front.request import build_request
from worker.adapters.chdb_front.server import ChdbHttpServer, serve, start_server

__all__ = [
    "ChdbEngine",
    "ChdbHttpServer",
    "QueryFailure",
    "build_request",
    "serve",
    "start_server",
]
