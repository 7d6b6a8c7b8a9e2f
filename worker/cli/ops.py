"""`ringlog lag`: the consumer group's lag, read from Kafka (a Nagios-style check)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table

from worker.cli.options import Brokers, GroupId, Topic, console, out, run_async
from worker.service.settings import ConfigError, load_settings


def lag(
    brokers: Brokers = None,
    topic: Topic = None,
    group_id: GroupId = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts)")] = False,
    max_messages: Annotated[
        int | None,
        typer.Option(help="CRITICAL (exit 2) when the total lag exceeds this many messages"),
    ] = None,
    max_seconds: Annotated[
        float | None,
        typer.Option(
            help="CRITICAL (exit 2) when the oldest uncommitted message is older than this "
            "(seconds; see the method above)"
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Give up on Kafka after this many seconds")] = 30.0,
) -> None:
    """Show the consumer group's lag per partition, read straight from Kafka (works while
    the worker is down); a Nagios-style check with thresholds.

    Lag = log-end offset - the group's committed offset: every message not yet durable in
    ClickHouse (a partition never committed counts from its log start). Time lag
    (--max-seconds) = now - the Kafka timestamp of the oldest uncommitted message of each
    partition (the record at the committed offset, read without joining the group), maximum
    over partitions; 0 for a partition without lag.

    Exit 0 OK (within the thresholds), 2 CRITICAL (above one), 3 UNKNOWN (Kafka unreachable,
    topic or group unknown, bad setting, or the oldest message could not be read).
    """
    from worker.adapters.kafka.connection import KafkaCredentialsRejected, check_credentials
    from worker.adapters.kafka.lag_reader import UNKNOWN, LagUnavailable, evaluate, read_lag

    try:
        settings = load_settings().with_overrides(
            kafka_brokers=brokers, topic=topic, group_id=group_id
        )
    except ConfigError as exc:
        console.print(f"UNKNOWN - configuration error: {exc}", markup=False)
        raise typer.Exit(UNKNOWN) from None
    connection = settings.kafka_connection()

    async def read() -> Any:
        await check_credentials(connection)  # a refused password is not "unreachable"
        return await read_lag(
            connection,
            settings.topic,
            settings.group_id,
            with_age=max_seconds is not None,
            limit_s=timeout,
        )

    try:
        report = run_async(read())
    except (LagUnavailable, KafkaCredentialsRejected) as exc:
        if as_json:
            out.print_json(json.dumps({"status": "UNKNOWN", "error": str(exc)}))
        else:
            out.print(f"UNKNOWN - {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(UNKNOWN) from None
    verdict = evaluate(report, max_messages, max_seconds)
    if as_json:
        data = report.as_dict()
        data["status"] = verdict.line.split(" ", 1)[0]
        data["message"] = verdict.line
        data["thresholds"] = {"max_messages": max_messages, "max_seconds": max_seconds}
        out.print_json(json.dumps(data))
    else:
        table = Table(
            "partition", "committed", "end", "lag", title=f"{report.topic} / {report.group}"
        )
        if max_seconds is not None:
            table.add_column("oldest uncommitted age (s)")
        for p in report.partitions:
            row = [str(p.partition), "none" if p.committed is None else str(p.committed)]
            row += [str(p.end), str(p.lag)]
            if max_seconds is not None:
                age = p.oldest_uncommitted_age_seconds
                row.append("unknown" if age is None else f"{age:.1f}")
            table.add_row(*row)
        out.print(table)
        out.print(
            f"total lag: {report.total_lag} messages over {len(report.partitions)} partitions"
        )
        out.print(verdict.line, markup=False, soft_wrap=True)
    raise typer.Exit(verdict.code)
