"""The chDB HTTP front (`worker.adapters.chdb_front`) for development and tests: the same
server, plus `spawn_server` to run it as its own process (`python -m devtools store serve`).

    proc = spawn_server(tmp_path / "store")          # a subprocess (tests)
    store = ClickHouseStore(proc.url, "ringlog"); ...; proc.stop()
"""

from devtools.chdb_http.process import ServerProcess, spawn_server
from worker.adapters.chdb_front import (
    ChdbEngine,
    ChdbHttpServer,
    QueryFailure,
    build_request,
    serve,
    start_server,
)

__all__ = [
    "ChdbEngine",
    "ChdbHttpServer",
    "QueryFailure",
    "ServerProcess",
    "build_request",
    "serve",
    "spawn_server",
    "start_server",
]
