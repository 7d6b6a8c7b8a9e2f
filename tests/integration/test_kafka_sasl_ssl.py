"""Secure transport on the real broker: deploy/kafka.sh starts a private Apache Kafka whose
client listener is SASL_SSL (SCRAM-SHA-512, a CA and broker certificate made on the spot), and
the worker, `ringlog lag` and the gateway's producer run against it with the password and the
CA from files. A wrong password or an untrusted certificate stops them at start with a message
that names the setting to fix and shows no secret."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner

from devtools.fault_harness import LocalBroker
from tests.support import builders as b
from tests.support.call_rows import by_call, expected_tables, read_tables
from tests.support.in_process_worker import Running
from worker.adapters.kafka.connection import KafkaCredentialsRejected
from worker.adapters.kafka.event_publisher import KafkaEventPublisher
from worker.cli.main import app
from worker.service.faust_host import start_in_background
from worker.service.settings import Settings, load_settings

pytestmark = pytest.mark.kafka


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    broker = LocalBroker(
        tmp_path_factory.mktemp("sasl-kafka"), extra_env={"RINGLOG_KAFKA_SASL_SSL": "1"}
    )
    broker.up()
    try:
        yield broker
    finally:
        broker.down(purge=True)


def secure_env(
    broker: LocalBroker, chdb_url: str, name: str, **changes: str | None
) -> dict[str, str]:
    env: dict[str, str | None] = {
        "RINGLOG_KAFKA_BROKERS": broker.bootstrap,
        "RINGLOG_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
        "RINGLOG_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "RINGLOG_KAFKA_SASL_USERNAME": "ringlog",
        "RINGLOG_KAFKA_SASL_PASSWORD_FILE": str(broker.home / "sasl" / "ringlog.password"),
        "RINGLOG_KAFKA_SSL_CA_FILE": str(broker.home / "tls" / "ca.pem"),
        "RINGLOG_TOPIC": name,
        "RINGLOG_DLQ_TOPIC": f"{name}.dlq",
        "RINGLOG_GROUP_ID": name,
        "RINGLOG_CLICKHOUSE_URL": chdb_url,
        "RINGLOG_DATABASE": name.replace("-", "_"),
        "RINGLOG_RATES_FILE": str(b.RATES_FILE),
        "RINGLOG_HTTP_PORT": "0",
        "RINGLOG_BATCH_MAX_SECONDS": "0.2",
    }
    env.update(changes)
    return {k: v for k, v in env.items() if v is not None}


async def produce(settings: Settings, events: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(**settings.kafka_connection().client_options(), acks="all")
    await producer.start()
    try:
        for key, value in (b.encode(e) for e in events):
            await producer.send_and_wait(settings.topic, value, key=key)
    finally:
        await producer.stop()


def test_worker_lag_and_gateway_producer_over_sasl_ssl(
    secure_broker: LocalBroker, chdb_store_url: str
) -> None:
    env = secure_env(secure_broker, chdb_store_url, "sasl-ok")
    settings = load_settings(env)
    events = [*b.answered_on_second_attempt("sasl-call"), *b.nobody_answers("sasl-none")]

    async def scenario() -> dict[str, Any]:
        worker, stop, task = await start_in_background(settings)
        run = Running(worker, stop, task)
        try:
            await produce(settings, events)
            await run.drained(limit_s=120)
            rows = await asyncio.to_thread(read_tables, worker.store)
            publisher = KafkaEventPublisher(settings.kafka_connection(), settings.topic)
            await publisher.start()
            try:
                await publisher.publish("sasl-call", {"probe": "gateway producer"})
            finally:
                await publisher.stop()
            lag = await asyncio.to_thread(CliRunner().invoke, app, ["lag"], env=env)
        finally:
            stop.set()
            await task
        return {"rows": rows, "lag": lag}

    seen = asyncio.run(scenario())
    assert seen["rows"] == expected_tables(by_call(events))
    assert seen["lag"].exit_code == 0, seen["lag"].output


@pytest.mark.parametrize(
    ("changes", "setting"),
    [
        (
            {
                "RINGLOG_KAFKA_SASL_PASSWORD_FILE": None,
                "RINGLOG_KAFKA_SASL_PASSWORD": "not-the-password",
            },
            "RINGLOG_KAFKA_SASL_PASSWORD",
        ),
        ({"RINGLOG_KAFKA_SSL_CA_FILE": None}, "RINGLOG_KAFKA_SSL_CA_FILE"),
    ],
)
def test_a_wrong_password_or_an_untrusted_certificate_stops_at_start(
    secure_broker: LocalBroker, chdb_store_url: str, changes: dict[str, str | None], setting: str
) -> None:
    env = secure_env(secure_broker, chdb_store_url, "sasl-bad", **changes)
    settings = load_settings(env)
    password = (secure_broker.home / "sasl" / "ringlog.password").read_text()
    with pytest.raises(KafkaCredentialsRejected) as refused:
        asyncio.run(start_in_background(settings))
    message = str(refused.value)
    assert setting in message and password not in message and "not-the-password" not in message
    lag = CliRunner().invoke(app, ["lag"], env=env)
    assert lag.exit_code == 3 and setting in lag.output, lag.output
