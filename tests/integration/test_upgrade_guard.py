"""`ringlog migrate` refuses to upgrade while a worker may write (worker.service.upgrade_guard),
on the real broker: a running worker is seen through its consumer group, a recent writer
through the store's newest ingested_at, and an unreachable Kafka proves nothing."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from tests.support import builders as b
from tests.support.in_process_worker import fresh_settings, produce, running_worker
from tests.support.schema_v1 import create_v1_store
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.adapters.kafka.connection import KafkaConnection
from worker.cli.main import app
from worker.service.upgrade_guard import QUIET_SECONDS, writer_activity

pytestmark = pytest.mark.kafka

UNREACHABLE = KafkaConnection(brokers="127.0.0.1:1")


def test_a_running_worker_then_its_recent_writes_refuse_the_upgrade(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    connection = settings.kafka_connection()

    async def scenario() -> tuple[str | None, str | None, str | None, datetime]:
        async with running_worker(settings) as run:
            await produce(settings, [b.encode(e) for e in b.caller_hangs_up("guarded")])
            await run.drained()
            store = run.worker.store
            while_running = await writer_activity(
                store, connection, settings.group_id, now=datetime.now(UTC)
            )
        with ClickHouseStore(settings.clickhouse_url, settings.database) as store:
            newest = store.newest_write()
            assert newest is not None
            just_stopped = await writer_activity(
                store, connection, settings.group_id, now=newest + timedelta(seconds=5)
            )
            quiet = await writer_activity(
                store,
                connection,
                settings.group_id,
                now=newest + timedelta(seconds=QUIET_SECONDS + 1),
            )
        return while_running, just_stopped, quiet, newest

    while_running, just_stopped, quiet, newest = asyncio.run(scenario())
    assert while_running is not None
    assert f"1 worker(s) still consume in consumer group {settings.group_id!r}" in while_running
    assert "stop every worker" in while_running
    assert just_stopped is not None
    assert just_stopped.startswith("the store was written 5s ago")
    assert newest.isoformat() in just_stopped
    assert quiet is None


def test_unreachable_kafka_proves_nothing(chdb_store_url: str) -> None:
    with ClickHouseStore(chdb_store_url, f"g_{uuid.uuid4().hex[:10]}") as store:
        refusal = asyncio.run(writer_activity(store, UNREACHABLE, "ringlog", now=datetime.now(UTC)))
    assert refusal is not None
    assert refusal.startswith("cannot tell whether workers are running")
    assert "ringlog migrate --force" in refusal


def test_cli_upgrades_an_embedded_store_without_asking_kafka(
    chdb_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """chDB's lock is the proof for an embedded store: no worker has it open."""
    database = f"cli_{uuid.uuid4().hex[:10]}"
    with ClickHouseStore(chdb_store_url, database) as store:
        create_v1_store(store)
    monkeypatch.setenv("RINGLOG_KAFKA_BROKERS", "127.0.0.1:1")  # nobody to ask
    args = ["migrate", "--clickhouse-url", chdb_store_url, "--database", database]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert "upgrading" in first.output
    assert f"schema version 2 applied to database {database}" in first.output
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, second.output
    assert "upgrading" not in second.output
    with ClickHouseStore(chdb_store_url, database) as store:
        assert store.pending_upgrade() is None
        store.command(f"DROP DATABASE `{database}` SYNC")
