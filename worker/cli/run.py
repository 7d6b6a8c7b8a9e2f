"""`ringlog worker`: the ingestion worker."""

from __future__ import annotations

from typing import Annotated

import typer

from worker.cli.options import (
    Brokers,
    ClickhouseUrl,
    Database,
    DlqTopic,
    GroupId,
    HttpPort,
    RatesFile,
    Topic,
    settings_from,
)
from worker.service.settings import parse_duration


def worker(
    brokers: Brokers = None,
    topic: Topic = None,
    dlq_topic: DlqTopic = None,
    group_id: GroupId = None,
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    rates_file: RatesFile = None,
    http_port: HttpPort = None,
    call_timeout: Annotated[
        str | None,
        typer.Option(
            help="Close calls silent this long in event time [RINGLOG_CALL_TIMEOUT, default 4h]"
        ),
    ] = None,
) -> None:
    """Run the ingestion worker until SIGTERM/Ctrl-C.

    A faust-streaming app: Faust runs the services; the input topic is consumed by an aiokafka
    batch loop inside it, which dead-letters invalid events, writes call_event and the
    correlated rows to ClickHouse, and commits offsets only after they are durable. The HTTP
    port serves /metrics, /health, /ready, the query APIs (/api/..., /docs) and /query.
    """
    from worker.service.faust_host import run_faust_worker

    timeout = parse_duration(call_timeout, "--call-timeout") if call_timeout else None
    settings = settings_from(
        kafka_brokers=brokers,
        topic=topic,
        dlq_topic=dlq_topic,
        group_id=group_id,
        clickhouse_url=clickhouse_url,
        database=database,
        rates_file=rates_file,
        http_port=http_port,
        call_timeout=timeout,
    )
    try:
        run_faust_worker(settings)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def api(
    brokers: Brokers = None,
    topic: Topic = None,
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    http_port: HttpPort = None,
) -> None:
    """Serve the query APIs without consuming: OneUptime- and PortSIP-compatible routes,
    /openapi.json and /docs, /metrics, /health.

    For replicas in front of a ClickHouse server (run `ringlog migrate` first). Item writes
    are published to the input topic (--topic) for the workers to apply. In embedded mode the
    worker serves the same routes on its own port: `ringlog api` cannot open a chDB store that
    a worker owns.
    """
    from worker.service.api_host import run_api

    settings = settings_from(
        kafka_brokers=brokers,
        topic=topic,
        clickhouse_url=clickhouse_url,
        database=database,
        http_port=http_port,
    )
    try:
        run_api(settings)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
