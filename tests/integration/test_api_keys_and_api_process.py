"""`ringlog apikey` (on the store itself, and through a running worker that owns it) and
`ringlog api` (the query APIs without a consumer)."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.support import builders as b
from tests.support.in_process_worker import fresh_settings, produce, running_worker
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.api.keys import KeyRegistry, Permission
from worker.cli.main import app
from worker.service.api_host import serve_api

PROJECT = b.PROJECT


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def cli(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, list(args), env=env)


def test_apikey_on_the_store_itself(tmp_path: Path) -> None:
    env = {
        "RINGLOG_CLICKHOUSE_URL": f"chdb://{tmp_path / 'store'}",
        "RINGLOG_DATABASE": "keys_direct",
        "RINGLOG_HTTP_PORT": str(free_port()),  # no worker listens there
    }
    created = cli(
        env, "apikey", "create", "--project", PROJECT, "--role", "Viewer", "--name", "ci", "--json"
    )
    assert created.exit_code == 0, created.output
    shown = json.loads(created.stdout)
    assert list(shown) == ["id", "key", "project_id", "role", "expires_at"]
    assert (shown["project_id"], shown["role"], shown["expires_at"]) == (PROJECT, "Viewer", None)
    expiring = cli(
        env,
        "apikey",
        "create",
        "--project",
        PROJECT,
        "--permission",
        "ReadCdr",
        "--permission",
        "ReadCallLog",
        "--expires",
        "90d",
    )
    assert expiring.exit_code == 0 and "Store it now" in expiring.output
    listed = cli(env, "apikey", "list", "--json")
    keys = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(k["role"], k["permissions"], k["revoked_at"]) for k in keys] == [
        ("Viewer", [], None),
        (None, ["ReadCdr", "ReadCallLog"], None),
    ]
    assert keys[1]["expires_at"] is not None
    assert shown["key"] not in listed.stdout  # never shown again
    revoked = cli(env, "apikey", "revoke", shown["id"])
    assert revoked.exit_code == 0 and f"revoked {shown['id']}" in revoked.output
    with ClickHouseStore(env["RINGLOG_CLICKHOUSE_URL"], env["RINGLOG_DATABASE"]) as store:
        assert KeyRegistry(store).find(shown["key"]) is None
        stored = store.query("SELECT key_hash FROM api_key FINAL")[1]
        assert all(shown["key"] not in str(row) for row in stored)  # only the hash is kept
    for args, words in [
        (("--project", "nope", "--role", "Viewer"), "--project 'nope' is not a UUID"),
        (("--project", PROJECT), "give --role or at least one --permission"),
        (("--project", PROJECT, "--role", "Boss"), "Invalid value for '--role'"),
        (("--project", PROJECT, "--role", "Viewer", "--expires", "later"), "neither a duration"),
    ]:
        bad = cli(env, "apikey", "create", *args)
        assert bad.exit_code == 2 and words in bad.output, bad.output
    missing = cli(env, "apikey", "revoke", "00000000-0000-4000-8000-000000000000")
    assert missing.exit_code == 1 and "no API key with id" in missing.output


@pytest.mark.kafka
def test_apikey_through_the_worker_that_owns_the_store(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)

    async def scenario() -> dict[str, Any]:
        async with running_worker(settings) as run:
            await produce(settings, [b.encode(e) for e in b.nobody_answers("keys-via-worker")])
            await run.drained()
            env = {
                "RINGLOG_CLICKHOUSE_URL": settings.clickhouse_url,
                "RINGLOG_DATABASE": settings.database,
                "RINGLOG_HTTP_PORT": str(run.worker.http_port),
            }
            created = await asyncio.to_thread(
                cli,
                env,
                "apikey",
                "create",
                "--project",
                PROJECT,
                "--role",
                "ProjectMember",
                "--json",
            )
            key = json.loads(created.stdout)
            base = f"http://127.0.0.1:{run.worker.http_port}"
            async with httpx.AsyncClient(base_url=base) as client:
                before = await client.post(
                    "/api/incoming-call-log/count", headers={"ApiKey": key["key"]}
                )
                revoked = await asyncio.to_thread(cli, env, "apikey", "revoke", key["id"])
                after = await client.post(
                    "/api/incoming-call-log/count", headers={"ApiKey": key["key"]}
                )
            listed = await asyncio.to_thread(
                cli, env, "apikey", "list", "--project", PROJECT, "--json"
            )
            return {"before": before, "after": after, "revoked": revoked, "listed": listed}

    seen = asyncio.run(scenario())
    assert (seen["before"].status_code, seen["before"].json()) == (200, {"count": 1})
    assert seen["revoked"].exit_code == 0
    # the worker's own registry forgets its cache on revoke: refused at once
    assert (seen["after"].status_code, seen["after"].json()) == (400, {"error": "Invalid API Key"})
    [listed] = [json.loads(line) for line in seen["listed"].stdout.splitlines()]
    assert listed["revoked_at"] is not None


@pytest.mark.kafka
def test_ringlog_api_serves_without_a_consumer(kafka_bootstrap: str, chdb_store_url: str) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url, http_port=free_port())
    events = b.answered_on_second_attempt("api-process")

    async def scenario() -> dict[str, Any]:
        # rows written by a worker first, then the worker gone (chDB: one process owns it)
        async with running_worker(settings) as run:
            await produce(settings, [b.encode(e) for e in events])
            await run.drained()
        with ClickHouseStore(settings.clickhouse_url, settings.database) as store:
            _, secret = KeyRegistry(store).create(
                PROJECT, None, [Permission.READ_INCOMING_CALL_LOG_ITEM], None, "api"
            )
        stop = asyncio.Event()
        serving = asyncio.create_task(serve_api(settings, stop))
        base = f"http://127.0.0.1:{settings.http_port}"
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(100):
                try:
                    if (await client.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)
            answers = {
                "items": await client.post(
                    "/api/incoming-call-log-item/get-list",
                    headers={"ApiKey": secret},
                    json={"select": {"dialId": True, "status": True}, "sort": {"dialId": "ASC"}},
                ),
                "parents": await client.post(
                    "/api/incoming-call-log/count", headers={"ApiKey": secret}
                ),
                "health": await client.get("/health"),
                "openapi": await client.get("/openapi.json"),
                "metrics": await client.get("/metrics"),
            }
        stop.set()
        await serving
        return answers

    got = asyncio.run(scenario())
    items = got["items"].json()
    assert [(d["dialId"], d["status"]) for d in items["data"]] == [
        ("api-process-1", "NoAnswer"),
        ("api-process-2", "Completed"),
    ]
    assert got["parents"].status_code == 422  # the key reads items only
    assert got["health"].json()["healthy"] is True
    assert "/api/calllogs" in got["openapi"].json()["paths"]
    counted = (
        'ringlog_api_requests_total{api="oneuptime",'
        'route="/api/incoming-call-log-item/get-list",status="200"} 1.0'
    )
    assert counted in got["metrics"].text
