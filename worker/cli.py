"""The `ringlog` command line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from worker.config import ConfigError, Settings, load_settings, parse_duration
from worker.logs import setup_logging

console = Console(stderr=True)
out = Console()

app = typer.Typer(
    name="ringlog",
    help=(
        "ringlog: ingest telephony call events from Kafka, correlate them into call logs, "
        "CDRs and costs, and write them to ClickHouse.\n\n"
        "Every option can also be set with the RINGLOG_* environment variable named in its "
        "help; flags win over the environment. Start with `ringlog demo` to see it all run."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kafka_app = typer.Typer(
    help="Run a local single-node Apache Kafka (KRaft) for development.", no_args_is_help=True
)
schema_app = typer.Typer(help="Event JSON Schema for producers.", no_args_is_help=True)
app.add_typer(kafka_app, name="kafka")
app.add_typer(schema_app, name="schema")

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


def _run(coro: Any) -> Any:
    try:
        return asyncio.run(coro)
    except KeyboardInterrupt:
        console.print("interrupted")
        raise typer.Exit(130) from None


@app.command()
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

    A faust-streaming app: Faust runs the services and the HTTP port (/metrics, /health,
    /ready, /query); the input topic is consumed by an aiokafka batch loop inside it, which
    dead-letters invalid events, writes call_event and the correlated rows to ClickHouse, and
    commits offsets only after they are durable.
    """
    from worker.faust_app import run_faust_worker

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


@app.command()
def migrate(clickhouse_url: ClickhouseUrl = None, database: Database = None) -> None:
    """Create the database, tables and *_latest views (idempotent); record the schema version."""
    from worker.clickhouse_store import ClickHouseStore, StoreError, StoreUnavailable

    settings = settings_from(clickhouse_url=clickhouse_url, database=database)
    try:
        with ClickHouseStore(settings.clickhouse_url, settings.database) as store:
            version = store.migrate()
    except (StoreError, StoreUnavailable) as exc:
        console.print(f"[bold red]migrate failed:[/] {exc}")
        raise typer.Exit(1) from None
    out.print(f"schema version {version} applied to database {settings.database}")


@app.command()
def rebuild(
    project: Annotated[
        str | None, typer.Option("--project", help="Only calls of this project (UUID)")
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="Only calls with an event at/after this time: RFC 3339 (naive = UTC) or a "
            "duration back from now (24h, 7d); each selected call is rebuilt from ALL its events",
        ),
    ] = None,
    rates_file: RatesFile = None,
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    chunk: Annotated[int, typer.Option(help="Calls loaded and rebuilt per step")] = 1000,
) -> None:
    """Recompute rows from the call_event log with the current rate plan (no Kafka), e.g.
    after a rate-plan change or a rule fix.

    A rebuilt row has the same version as the row it replaces (same event set), and
    ClickHouse keeps the LAST inserted row on equal versions, so the rebuild wins; run the
    worker with the same rate plan, or its next rows for a call will use the old one. In
    embedded mode (chdb://) stop the worker first (it owns the store), or use a ClickHouse
    server / `ringlog store serve`.
    """
    from datetime import UTC, datetime

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from worker.clickhouse_store import ClickHouseStore, StoreError, StoreUnavailable
    from worker.rates import RatePlanError, load_rate_plan
    from worker.rebuild import RebuildError
    from worker.rebuild import rebuild as run_rebuild

    settings = settings_from(
        clickhouse_url=clickhouse_url, database=database, rates_file=rates_file
    )
    since_at: datetime | None = None
    if since is not None:
        try:
            since_at = datetime.fromisoformat(since)
        except ValueError:
            try:
                since_at = datetime.now(UTC) - parse_duration(since, "--since")
            except ConfigError:
                console.print(f"[bold red]--since {since!r}:[/] not a timestamp or a duration")
                raise typer.Exit(2) from None
    if project is not None:
        import uuid

        try:
            project = str(uuid.UUID(project))
        except ValueError:
            console.print(f"[bold red]--project {project!r}:[/] not a UUID")
            raise typer.Exit(2) from None
    try:
        rates = load_rate_plan(settings.rates_file)
    except RatePlanError as exc:
        console.print(f"[bold red]rebuild failed:[/] {exc}")
        raise typer.Exit(2) from None
    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
    task = bar.add_task("calls rebuilt", total=None)
    try:
        with bar, ClickHouseStore(settings.clickhouse_url, settings.database) as store:
            stats = run_rebuild(
                store,
                rates,
                project=project,
                since=since_at,
                timeout=settings.call_timeout,
                chunk=chunk,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except (RebuildError, StoreError, StoreUnavailable) as exc:
        console.print(f"[bold red]rebuild failed:[/] {exc}")
        raise typer.Exit(1) from None
    rows = ", ".join(f"{n} {t}" for t, n in sorted(stats.rows.items())) or "no rows"
    skipped = f" ({stats.skipped_events} stored events skipped)" if stats.skipped_events else ""
    out.print(
        f"rebuilt {stats.calls} calls from {stats.events} events with rate plan {rates.name}: "
        f"{rows}{skipped}"
    )


@app.command()
def sql(
    query: Annotated[
        str,
        typer.Argument(
            help='A read-only statement, e.g. "SELECT status, '
            'count() FROM incoming_call_log FINAL GROUP BY status"'
        ),
    ],
    fmt: Annotated[str, typer.Option("--format", "-f", help="table, json or csv")] = "table",
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    http_port: HttpPort = None,
) -> None:
    """Print query results from the configured store.

    In embedded mode (chdb://) a running worker owns the store, so the query goes through its
    HTTP port; with no worker running the store is opened directly. Tables resolve in the
    configured database (unqualified names work).
    """
    from worker.query_client import QueryFailed, run_query

    settings = settings_from(clickhouse_url=clickhouse_url, database=database, http_port=http_port)
    try:
        columns, rows = run_query(settings, query)
    except QueryFailed as exc:
        console.print(f"[bold red]query failed:[/] {exc}")
        raise typer.Exit(1) from None
    print_rows(columns, rows, fmt)


def print_rows(columns: list[str], rows: list[Any], fmt: str) -> None:
    if fmt == "json":
        for row in rows:
            out.print_json(json.dumps(dict(zip(columns, row, strict=False)), default=str))
    elif fmt == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns, show_lines=False)
        for row in rows:
            table.add_row(*("NULL" if v is None else str(v) for v in row))
        out.print(table)
        out.print(f"{len(rows)} row(s)")


@app.command()
def simulate(
    calls: Annotated[int, typer.Option(help="How many calls to simulate")] = 1000,
    rate: Annotated[
        float | None, typer.Option(help="Events per second (default: as fast as possible)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed (same seed, same traffic)")] = 1,
    invalid_share: Annotated[float, typer.Option(help="Share of invalid messages")] = 0.02,
    duplicate_share: Annotated[float, typer.Option(help="Share of events sent twice")] = 0.1,
    brokers: Brokers = None,
    topic: Topic = None,
) -> None:
    """Produce realistic call traffic: incoming calls with escalations, repeats, answers and
    hang-ups; outbound calls; PBX CDRs; late cost reports; duplicates; a few invalid events."""
    from worker.producer import ensure_topic, produce
    from worker.traffic import generate_calls

    settings = settings_from(kafka_brokers=brokers, topic=topic)

    async def go() -> None:
        await ensure_topic(settings.kafka_brokers, settings.topic)
        stats = await produce(
            generate_calls(
                calls, seed=seed, invalid_share=invalid_share, duplicate_share=duplicate_share
            ),
            brokers=settings.kafka_brokers,
            topic=settings.topic,
            rate=rate,
        )
        out.print(
            f"produced {stats.sent} events ({stats.failed} failed) to {settings.topic} "
            f"in {stats.elapsed_s:.1f}s, {stats.rate:,.0f} events/s"
        )
        if stats.failed:
            raise typer.Exit(1)

    _run(go())


@app.command()
def replay(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="JSONL file, one event per line")
    ],
    rate: Annotated[float | None, typer.Option(help="Events per second")] = None,
    brokers: Brokers = None,
    topic: Topic = None,
) -> None:
    """Produce a JSONL file of events to the topic (key = each line's call_id), for
    backfills and tests. Lines are sent byte for byte, invalid ones included."""
    from worker.producer import ensure_topic, produce, read_jsonl

    settings = settings_from(kafka_brokers=brokers, topic=topic)

    async def go() -> None:
        await ensure_topic(settings.kafka_brokers, settings.topic)
        total = sum(1 for _ in read_jsonl(file))
        stats = await produce(
            read_jsonl(file),
            brokers=settings.kafka_brokers,
            topic=settings.topic,
            rate=rate,
            total=total,
        )
        out.print(
            f"replayed {stats.sent} lines of {file} to {settings.topic} ({stats.failed} failed)"
        )
        if stats.failed:
            raise typer.Exit(1)

    _run(go())


@app.command()
def demo(
    calls: Annotated[int, typer.Option(help="Calls to simulate")] = 3000,
    keep_kafka: Annotated[bool, typer.Option(help="Leave the local broker running")] = False,
) -> None:
    """The whole path on this machine: local Kafka, migrate the embedded store, run the
    worker, simulate calls, wait until ClickHouse has them, print a summary, shut down."""
    from worker.demo import run_demo

    settings = settings_from()
    setup_logging(settings.log_format, "WARNING")
    code = run_demo(settings, calls=calls, keep_kafka=keep_kafka, console=out)
    raise typer.Exit(code)


@app.command()
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
    from worker.lag import UNKNOWN, LagUnavailable, evaluate, read_lag

    try:
        settings = load_settings().with_overrides(
            kafka_brokers=brokers, topic=topic, group_id=group_id
        )
    except ConfigError as exc:
        console.print(f"UNKNOWN - configuration error: {exc}", markup=False)
        raise typer.Exit(UNKNOWN) from None
    try:
        report = _run(read_lag(settings, with_age=max_seconds is not None, limit_s=timeout))
    except LagUnavailable as exc:
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


@kafka_app.command("up")
def kafka_up(
    port: Annotated[
        int | None, typer.Option(help="Broker port [RINGLOG_KAFKA_PORT, default 9092]")
    ] = None,
) -> None:
    """Start the broker (first run resolves the jars from Maven Central into a cache)."""
    from worker.kafka_local import KafkaLocalError
    from worker.kafka_local import kafka_up as up

    try:
        bootstrap = up(port)
    except KafkaLocalError as exc:
        console.print(f"[bold red]kafka up failed:[/] {exc}")
        raise typer.Exit(1) from None
    out.print(f"Kafka is up at {bootstrap}")


@kafka_app.command("down")
def kafka_down(
    purge: Annotated[bool, typer.Option(help="Also delete the broker's data")] = False,
) -> None:
    """Stop the local broker."""
    from worker.kafka_local import kafka_down as down

    down(purge)
    out.print("Kafka is down")


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the local broker runs (exit 0) or not (exit 3)."""
    from worker.kafka_local import kafka_status as status

    running = status()
    out.print("running" if running else "stopped")
    raise typer.Exit(0 if running else 3)


@schema_app.command("export")
def schema_export(
    out_dir: Annotated[Path, typer.Option("--out", help="Directory to write into")] = Path(
        "schemas"
    ),
) -> None:
    """Write the JSON Schema of the events (events.schema.json) for producers."""
    from schemas.export import write_json_schema

    path = write_json_schema(out_dir)
    out.print(f"wrote {path}")


store_app = typer.Typer(
    help="Share one embedded chDB store between processes (dev and tests).", no_args_is_help=True
)
app.add_typer(store_app, name="store")


@store_app.command("serve")
def store_serve(
    path: Annotated[Path, typer.Option("--path", help="chDB data directory to own")],
    port: Annotated[int, typer.Option(help="TCP port (0 = any free port)")] = 8123,
    host: Annotated[str, typer.Option(help="Interface to bind")] = "127.0.0.1",
    user: Annotated[
        str | None,
        typer.Option(envvar="RINGLOG_STORE_USER", help="Require this user [RINGLOG_STORE_USER]"),
    ] = None,
    max_concurrency: Annotated[int, typer.Option(help="Queries run at once")] = 8,
) -> None:
    """Serve a chDB store over ClickHouse's HTTP interface until SIGTERM/Ctrl-C.

    chDB lets one process open a data directory. This server owns it and speaks enough of
    ClickHouse's HTTP interface for clickhouse-connect and ringlog, so several workers
    (scale-out, rebalance tests) and external tools can share ONE store, and tests exercise
    ringlog's real HTTP path. Point them at the printed RINGLOG_CLICKHOUSE_URL. Not a
    production ClickHouse. The password (with --user) comes from RINGLOG_STORE_PASSWORD or
    RINGLOG_STORE_PASSWORD_FILE.
    """
    import os

    from worker.chdb_http import serve

    password = os.environ.get("RINGLOG_STORE_PASSWORD")
    password_file = os.environ.get("RINGLOG_STORE_PASSWORD_FILE")
    if password is None and password_file:
        password = Path(password_file).read_text().strip()
    setup_logging("text", os.environ.get("RINGLOG_LOG_LEVEL", "INFO"))

    def ready(server: Any) -> None:
        print(f"RINGLOG_CLICKHOUSE_URL={server.url}", flush=True)
        console.print(f"chDB store {path} served at {server.url} (not a production ClickHouse)")

    try:
        serve(path, host=host, port=port, user=user, password=password,
              max_concurrency=max_concurrency, on_ready=ready)  # fmt: skip
    except (OSError, RuntimeError) as exc:
        console.print(f"[bold red]store serve failed:[/] {exc}")
        raise typer.Exit(1) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
