"""What every `ringlog` command shares: the consoles, the RINGLOG_* options and how a
command turns flags plus environment into validated Settings."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from worker.service.settings import ConfigError, Settings, load_settings

# Diagnostics and progress go to stderr, results to stdout (so they pipe cleanly).
console = Console(stderr=True)
out = Console()

Brokers = Annotated[
    str | None,
    typer.Option(
        "--brokers", help="Kafka bootstrap servers [RINGLOG_KAFKA_BROKERS, default localhost:9092]"
    ),
]
Topic = Annotated[
    str | None,
    typer.Option("--topic", help="Input topic [RINGLOG_TOPIC, default telephony.call-events]"),
]
DlqTopic = Annotated[
    str | None, typer.Option("--dlq-topic", help="Dead-letter topic [RINGLOG_DLQ_TOPIC]")
]
GroupId = Annotated[
    str | None,
    typer.Option("--group-id", help="Consumer group [RINGLOG_GROUP_ID, default ringlog]"),
]
ClickhouseUrl = Annotated[
    str | None,
    typer.Option(
        "--clickhouse-url",
        help="http(s)://user:pass@host:8123 or chdb:///abs/path "
        "[RINGLOG_CLICKHOUSE_URL, default chdb://$PWD/var/clickhouse]",
    ),
]
Database = Annotated[
    str | None,
    typer.Option("--database", help="ClickHouse database [RINGLOG_DATABASE, default ringlog]"),
]
RatesFile = Annotated[
    Path | None,
    typer.Option("--rates-file", help="Rate plan YAML [RINGLOG_RATES_FILE, default: shipped plan]"),
]
HttpPort = Annotated[
    int | None,
    typer.Option(
        "--http-port", help="Port for /metrics, /health, /query [RINGLOG_HTTP_PORT, default 8321]"
    ),
]


def settings_from(**overrides: Any) -> Settings:
    """Environment first, then flags; a bad setting exits with a message naming it."""
    try:
        return load_settings().with_overrides(**overrides)
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


def run_async(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        console.print("interrupted")
        raise typer.Exit(130) from None
