"""The worker's HTTP port (/query, /health, /metrics), `ringlog sql` through it, the CLI."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from typing import Any

import pytest
from typer.testing import CliRunner

from devtools.cli import app as dev_app
from tests.support import builders as b
from tests.support.in_process_worker import fresh_settings, produce, running_worker
from worker.cli.main import app
from worker.cli.sql_client import QueryFailed, run_query
from worker.service.settings import ConfigError, load_settings


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.mark.kafka
def test_query_health_and_metrics_while_the_worker_runs(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    events = b.nobody_answers()

    async def scenario() -> dict[str, Any]:
        async with running_worker(settings) as run:
            await produce(settings, [b.encode(e) for e in events])
            await run.drained()
            port = run.worker.http_port
            live = settings.with_overrides(http_port=port)
            result: dict[str, Any] = {}
            # ringlog sql: the store is owned by the worker, so this goes over HTTP
            result["sql"] = await asyncio.to_thread(
                run_query,
                live,
                "SELECT call_provider_call_id, status, dial_attempts FROM incoming_call_log FINAL",
            )
            result["health"] = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/health")
            result["ready"] = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/ready")
            result["metrics"] = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
            with pytest.raises(QueryFailed, match="read-only"):
                run_query(live, "DROP TABLE call_event")
            return result

    result = asyncio.run(scenario())
    columns, rows = result["sql"]
    assert columns == ["call_provider_call_id", "status", "dial_attempts"]
    assert rows == [["call-none", "NoAnswer", 2]]
    status, body = result["health"]
    assert status == 200 and json.loads(body)["healthy"] is True
    assert result["ready"][0] == 200
    metrics = result["metrics"][1]
    assert 'ringlog_events_total{result="written",type="incoming_call.received"} 1.0' in metrics
    assert 'ringlog_rows_written_total{table="incoming_call_log_item"} 2.0' in metrics
    assert 'ringlog_rows_written_total{table="call_event"} 6.0' in metrics
    assert "ringlog_clickhouse_insert_seconds_bucket" in metrics
    assert "ringlog_last_commit_timestamp_seconds" in metrics
    # every produced record observed once, at the commit that made it durable
    assert "ringlog_event_commit_latency_seconds_count 6.0" in metrics


def test_help_explains_every_verb() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    verbs = ("worker", "api", "apikey", "replay", "migrate", "rebuild", "sql", "lag")
    for verb in (*verbs, "schema"):
        assert verb in result.output
    for verb in verbs:
        sub = runner.invoke(app, [verb, "--help"])
        assert sub.exit_code == 0, sub.output


def test_dev_tools_help_explains_every_verb() -> None:
    runner = CliRunner()
    result = runner.invoke(dev_app, ["--help"])
    assert result.exit_code == 0
    for verb in ("simulate", "replay", "demo", "kafka", "store"):
        assert verb in result.output
    for verb in ("simulate", "replay", "demo"):
        sub = runner.invoke(dev_app, [verb, "--help"])
        assert sub.exit_code == 0, sub.output


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"RINGLOG_HTTP_PORT": "eighty"}, "RINGLOG_HTTP_PORT"),
        ({"RINGLOG_CALL_TIMEOUT": "soon"}, "RINGLOG_CALL_TIMEOUT"),
        ({"RINGLOG_CLICKHOUSE_URL": "chdb://relative/path"}, "RINGLOG_CLICKHOUSE_URL"),
        ({"RINGLOG_CLICKHOUSE_URL": "mysql://x"}, "RINGLOG_CLICKHOUSE_URL"),
        ({"RINGLOG_KAFKA_BROKERS": "nohostport"}, "RINGLOG_KAFKA_BROKERS"),
        ({"RINGLOG_TOPIC": "bad topic"}, "RINGLOG_TOPIC"),
        ({"RINGLOG_RATES_FILE": "/nonexistent.yaml"}, "RINGLOG_RATES_FILE"),
        ({"RINGLOG_DATABASE": "drop table"}, "RINGLOG_DATABASE"),
        ({"RINGLOG_HEALTH_MAX_FAILURES": "0"}, "RINGLOG_HEALTH_MAX_FAILURES"),
        ({"RINGLOG_HEALTH_MAX_FAILURES": "many"}, "RINGLOG_HEALTH_MAX_FAILURES"),
        ({"RINGLOG_HEALTH_STALL_SECONDS": "-1"}, "RINGLOG_HEALTH_STALL_SECONDS"),
        ({"RINGLOG_HEALTH_STALL_SECONDS": "soon"}, "RINGLOG_HEALTH_STALL_SECONDS"),
    ],
)
def test_bad_configuration_names_the_setting(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        load_settings(env)


def test_bad_configuration_exits_with_a_message_from_the_cli() -> None:
    result = CliRunner().invoke(app, ["migrate"], env={"RINGLOG_CALL_TIMEOUT": "soon"})
    assert result.exit_code == 2
    assert "RINGLOG_CALL_TIMEOUT" in result.output


def test_secrets_from_files_and_never_in_the_redacted_url(tmp_path: Any) -> None:
    from worker.adapters.clickhouse.store import redact_url

    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    settings = load_settings(
        {
            "RINGLOG_CLICKHOUSE_URL": "http://ch.example:8123",
            "RINGLOG_CLICKHOUSE_PASSWORD_FILE": str(secret),
        }
    )
    assert "s3cret" in settings.clickhouse_url
    assert "s3cret" not in redact_url(settings.clickhouse_url)
