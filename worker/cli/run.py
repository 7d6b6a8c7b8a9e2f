"""`ringlog worker`: the ingestion worker."""

from __future__ import annotations

from pathlib import Path
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
    console,
    settings_from,
)
from worker.service.settings import ConfigError, parse_duration


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
    processes: Annotated[
        int | None,
        typer.Option(
            help="Worker processes on this host, in one consumer group: each owns some of the "
            "topic's partitions and a core; one HTTP endpoint serves them all "
            "[RINGLOG_PROCESSES, default 1]",
        ),
    ] = None,
) -> None:
    """Run the ingestion worker until SIGTERM/Ctrl-C.

    A faust-streaming app: Faust runs the services; the input topic is consumed by an aiokafka
    batch loop inside it, which dead-letters invalid events, writes call_event and the
    correlated rows to ClickHouse, and commits offsets only after they are durable. The HTTP
    port serves /metrics, /health, /ready, the query APIs (/api/..., /docs) and /query.

    With --processes N, this process supervises N such workers in one consumer group: it
    owns the embedded store and serves it to them, and its HTTP port reports them all
    (/metrics labels each worker's series with `process`).
    """

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
        processes=processes,
    )
    if settings.processes > 1:
        from worker.service.supervisor import run_supervisor

        try:
            code = run_supervisor(settings)
        except ConfigError as exc:
            console.print(f"[bold red]configuration error:[/] {exc}")
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        raise typer.Exit(code)
    from worker.service.faust_host import run_faust_worker

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


def gateway(
    brokers: Brokers = None,
    topic: Topic = None,
    dlq_topic: DlqTopic = None,
    config: Annotated[
        Path | None,
        typer.Option(
            "--config", help="Routing YAML: tenants per provider [RINGLOG_GATEWAY_CONFIG]"
        ),
    ] = None,
    port: Annotated[
        int | None, typer.Option("--port", help="Webhook port [RINGLOG_GATEWAY_PORT, default 8322]")
    ] = None,
) -> None:
    """Receive telephony webhooks and publish them as canonical events.

    Twilio (`/twilio/{tenant}/voice|status|dial-action`, X-Twilio-Signature), PortSIP
    (`/portsip/{tenant}/call-cdr`, shared secret) and FreeSWITCH (`/freeswitch/{tenant}/cdr`,
    Basic auth). A webhook is answered 2xx only once Kafka has every event it produced;
    what cannot be mapped is dead-lettered with its reason. docs/providers.md has the setup.
    """
    from worker.gateway.provider_routes import default_routes
    from worker.service.gateway_host import run_gateway

    settings = settings_from(
        kafka_brokers=brokers,
        topic=topic,
        dlq_topic=dlq_topic,
        gateway_config=config,
        gateway_port=port,
    )
    try:
        run_gateway(settings, default_routes())
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
