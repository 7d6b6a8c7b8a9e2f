"""Hostile statements against a live worker bound beyond loopback (0.0.0.0, with an operator
token): each is refused with a message that names the reason, none reads a file of the host or
reaches the network (canary listeners on 127.0.0.1 count every attempt), /metrics, /health
and /ready stay open, and the worker keeps ingesting with exact rows."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support import builders as b
from tests.support.call_rows import by_call, expected_tables, read_tables
from tests.support.in_process_worker import fresh_settings, produce, running_worker

pytestmark = pytest.mark.kafka

TOKEN = "test-operator-token-5f1b2c9d8e7a6b4c"
SECRET = "canary-secret-7d41e0c2"
READ_ONLY = "read-only (readonly = 1)"


class Canaries:
    """An HTTP and a raw TCP listener on 127.0.0.1 that count what reaches them."""

    def __init__(self) -> None:
        self.http_hits = 0
        self.tcp_connections = 0

    @contextmanager
    def listening(self) -> Iterator[tuple[int, int]]:
        canaries = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canaries.http_hits += 1
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"1\n")

            do_POST = do_HEAD = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                return None

        http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(8)
        tcp.settimeout(0.2)
        stop = threading.Event()

        def accept() -> None:
            while not stop.is_set():
                try:
                    conn, _ = tcp.accept()
                except OSError:
                    continue
                self.tcp_connections += 1
                conn.close()

        threads = [
            threading.Thread(target=http.serve_forever, daemon=True),
            threading.Thread(target=accept, daemon=True),
        ]
        for thread in threads:
            thread.start()
        try:
            yield int(http.server_address[1]), int(tcp.getsockname()[1])
        finally:
            stop.set()
            http.shutdown()
            http.server_close()
            tcp.close()


def post(port: int, body: str, token: str | None = TOKEN, json_body: bool = False) -> Any:
    headers = {"Content-Type": "application/json" if json_body else "text/plain"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return post_raw(port, json.dumps({"sql": body}) if json_body else body, headers)


def post_raw(port: int, data: str, headers: dict[str, str]) -> tuple[int, str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/query", data=data.encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def get(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def corpus(secret: Path, http_port: int, tcp_port: int, outfile: Path) -> list[tuple[str, str]]:
    """(statement, the reason its refusal must name)."""
    canary = f"http://127.0.0.1:{http_port}"
    return [
        (f"SELECT * FROM file('{secret}', 'LineAsString')", READ_ONLY),
        (f"SELECT count() FROM url('{canary}/x', 'LineAsString')", READ_ONLY),
        (f"SELECT * FROM s3('{canary}/bucket/a.csv', 'CSV', 'a String')", READ_ONLY),
        (f"SELECT * FROM remote('127.0.0.1:{tcp_port}', system.one)", READ_ONLY),
        (f"SELECT * FROM mysql('127.0.0.1:{tcp_port}', 'db', 't', 'u', 'p')", READ_ONLY),
        (f"SELECT * FROM postgresql('127.0.0.1:{tcp_port}', 'db', 't', 'u', 'p')", READ_ONLY),
        ("SELECT * FROM executable('id', 'TSV', 'x String')", READ_ONLY),
        ("SELECT * FROM input('a Int32')", "input() must be used only in INSERT SELECT"),
        ("SELECT 1 SETTINGS readonly = 0", "Cannot modify 'readonly' setting in readonly mode"),
        (
            f"SELECT * FROM file('{secret}', 'LineAsString') SETTINGS readonly = 0",
            "Cannot modify 'readonly' setting in readonly mode",
        ),
        ("SELECT 1 SETTINGS max_result_rows = 0", "Cannot modify 'max_result_rows'"),
        ("SET readonly = 0", "only read-only statements"),
        ("SELECT 1; SELECT 2", "several statements"),
        ("SELECT status FROM incoming_call_log; DROP TABLE call_event", "several statements"),
        ("/* SELECT */ INSERT INTO rejected_event (topic) VALUES ('x')", "only read-only"),
        ("(SELECT 1) UNION ALL (SELECT count() FROM url('" + canary + "/y', 'CSV'))", READ_ONLY),
        (f"WITH (SELECT 1) AS x SELECT * FROM file('{secret}', 'LineAsString')", READ_ONLY),
        (f"DESCRIBE (SELECT * FROM file('{secret}', 'LineAsString'))", READ_ONLY),
        (f"SELECT 1 INTO OUTFILE '{outfile}'", "INTO OUTFILE"),
        # quoting the early check does not lex like ClickHouse: the engine's parser does
        (f"SELECT $$'$$ AS x INTO OUTFILE '{outfile}' --'", "INTO OUTFILE"),
        (f"SELECT 1 /* /* */ ' */ INTO OUTFILE '{outfile}' --'", "INTO OUTFILE"),
        (
            "SELECT sum(cityHash64(number)) FROM numbers(100000000000)",
            "RINGLOG_QUERY_MAX_SECONDS=1s",
        ),
        ("SELECT number FROM system.numbers LIMIT 5000", "RINGLOG_QUERY_MAX_ROWS=1000"),
    ]


def test_hostile_statements_are_refused_and_ingestion_goes_on(
    kafka_bootstrap: str, chdb_store_url: str, tmp_path: Path
) -> None:
    secret = tmp_path / "credentials"
    secret.write_text(SECRET + "\n")
    outfile = tmp_path / "out.tsv"
    settings = fresh_settings(
        kafka_bootstrap,
        chdb_store_url,
        http_host="0.0.0.0",  # beyond loopback: the token is required
        query_token=TOKEN,
        query_max_seconds=1,
        query_max_rows=1000,
    )
    first, second = b.answered_on_second_attempt(), b.nobody_answers()
    canaries = Canaries()
    answers: list[tuple[str, int, str]] = []

    async def scenario() -> dict[str, Any]:
        async with running_worker(settings) as run:
            port = run.worker.http_port
            await produce(settings, [b.encode(e) for e in first])
            await run.drained()
            with canaries.listening() as (http_port, tcp_port):
                for sql, _ in corpus(secret, http_port, tcp_port, outfile):
                    status, body = await asyncio.to_thread(post, port, sql)
                    answers.append((sql, status, body))
                json_status, json_body = await asyncio.to_thread(
                    post, port, f"SELECT * FROM file('{secret}', 'LineAsString')", TOKEN, True
                )
            seen: dict[str, Any] = {
                "no_token": await asyncio.to_thread(post, port, "SELECT 1", None),
                "bearer_lowercase": await asyncio.to_thread(
                    post_raw, port, "SELECT 1", {"Authorization": f"bearer {TOKEN}"}
                ),
                "wrong_token": await asyncio.to_thread(post, port, "SELECT 1", "x" * 34),
                "json": (json_status, json_body),
                "readonly": await asyncio.to_thread(
                    post, port, "SELECT getSetting('readonly') AS ro"
                ),
                "open": [await asyncio.to_thread(get, port, p) for p in ("/metrics", "/health")],
            }
            # the worker goes on ingesting, with exact rows
            await produce(settings, [b.encode(e) for e in second])
            await run.drained()
            seen["rows"] = await asyncio.to_thread(read_tables, run.worker.store)
            return seen

    seen = asyncio.run(scenario())
    expected = corpus(secret, 1, 1, outfile)
    assert len(answers) == len(expected)
    for (sql, status, body), (_, reason) in zip(answers, expected, strict=True):
        assert status == 400, (sql, status, body)
        message = json.loads(body)["error"]
        assert reason in message, (sql, message)
        assert SECRET not in body
    assert canaries.http_hits == 0 and canaries.tcp_connections == 0
    assert not outfile.exists()
    status, body = seen["json"]
    assert status == 400 and READ_ONLY in json.loads(body)["error"] and SECRET not in body
    for name in ("no_token", "wrong_token"):
        status, body = seen[name]
        assert status == 401, (name, body)
        assert "operator token" in json.loads(body)["error"]
    assert seen["bearer_lowercase"][0] == 200
    status, body = seen["readonly"]
    assert status == 200 and json.loads(body) == {"columns": ["ro"], "rows": [[1]]}
    assert seen["open"] == [200, 200]
    assert seen["rows"] == expected_tables(by_call([*first, *second]))


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("SELECT * FROM file('{secret}', 'LineAsString')", READ_ONLY),
        ("SELECT 1 SETTINGS readonly = 0", "Cannot modify 'readonly' setting"),
        ("SELECT 1; SELECT 2", "several statements"),
        ("SELECT number FROM system.numbers LIMIT 5000", "RINGLOG_QUERY_MAX_ROWS=1000"),
    ],
)
def test_ringlog_sql_on_the_store_itself_is_read_only_too(
    chdb_store_url: str, tmp_path: Path, sql: str, reason: str
) -> None:
    """No worker listening: `ringlog sql` opens the store itself, under the same rules."""
    from worker.cli.sql_client import QueryFailed, run_query
    from worker.service.settings import Settings

    secret = tmp_path / "credentials"
    secret.write_text(SECRET + "\n")
    with socket.socket() as probe:  # a port where no worker listens
        probe.bind(("127.0.0.1", 0))
        free = int(probe.getsockname()[1])
    settings = Settings(
        clickhouse_url=chdb_store_url, database="sql_security", http_port=free, query_max_rows=1000
    )
    with pytest.raises(QueryFailed) as refused:
        run_query(settings, sql.format(secret=secret))
    assert reason in str(refused.value)
    assert SECRET not in str(refused.value)


def test_without_a_token_on_loopback_browsers_are_refused(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    """No token (loopback bind): a page in a browser on this machine could post to /query
    without a preflight, or reach it through DNS rebinding; both are refused."""
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)

    async def scenario() -> list[tuple[int, str]]:
        async with running_worker(settings) as run:
            port = run.worker.http_port
            cases = [
                {},  # a local tool: allowed
                {"Origin": "http://evil.example"},
                {"Host": f"rebound.example:{port}"},
            ]
            return [await asyncio.to_thread(post_raw, port, "SELECT 1 AS one", h) for h in cases]

    local, cross_origin, rebound = asyncio.run(scenario())
    assert local == (200, '{"columns":["one"],"rows":[[1]]}')
    for status, body in (cross_origin, rebound):
        assert status == 403 and "from a browser" in json.loads(body)["error"]
