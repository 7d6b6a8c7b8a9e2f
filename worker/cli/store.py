"""Store verbs: `ringlog migrate` and `ringlog rebuild`."""

from __future__ import annotations

from typing import Annotated

import typer

from worker.cli.options import (
    Brokers,
    ClickhouseUrl,
    Database,
    GroupId,
    RatesFile,
    console,
    out,
    run_async,
    settings_from,
)
from worker.service.settings import ConfigError, parse_duration


def migrate(
    clickhouse_url: ClickhouseUrl = None,
    database: Database = None,
    brokers: Brokers = None,
    group_id: GroupId = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Upgrade without asking Kafka whether workers run (when Kafka cannot be "
            "reached and you know every worker is stopped)",
        ),
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(
            "--cluster",
            help="A ClickHouse cluster (remote_servers name): ReplicatedReplacingMergeTree "
            "tables ON CLUSTER behind Distributed ones [RINGLOG_CLICKHOUSE_CLUSTER]",
        ),
    ] = None,
) -> None:
    """Create the database, tables and *_latest views (idempotent); record the schema version.

    With --cluster, each table is `<name>_local` (ReplicatedReplacingMergeTree ON CLUSTER)
    behind a Distributed `<name>` sharded so that every version of a row, and a call with its
    items, land on one shard (docs/clickhouse-cluster.md); give the workers the same
    RINGLOG_CLICKHOUSE_CLUSTER.

    A store at an older schema is upgraded in place (the item table is rebuilt and swapped
    in atomically; resumable after a crash). The upgrade refuses to start while a worker may
    write: with a ClickHouse server, while the consumer group has members or the store was
    written in the last minute; an embedded chDB store cannot be opened while a worker runs.
    """
    from datetime import UTC, datetime

    from worker.adapters.clickhouse.store import StoreError, StoreUnavailable
    from worker.service.upgrade_guard import writer_activity

    settings = settings_from(
        clickhouse_url=clickhouse_url,
        database=database,
        kafka_brokers=brokers,
        group_id=group_id,
        clickhouse_cluster=cluster,
    )
    try:
        with settings.store() as store:
            pending = store.pending_upgrade()
            if pending is not None and not store.embedded and not force:
                refusal = run_async(
                    writer_activity(
                        store,
                        settings.kafka_connection(),
                        settings.group_id,
                        now=datetime.now(UTC),
                    )
                )
                if refusal is not None:
                    console.print(
                        f"[bold red]migrate refused:[/] the upgrade ({pending.describe()}) "
                        f"must not run while a worker writes: {refusal}"
                    )
                    raise typer.Exit(1)
            if pending is not None:
                console.print(f"upgrading {settings.database}: {pending.describe()}")
            version = store.migrate(upgrade=True)
    except (StoreError, StoreUnavailable) as exc:
        console.print(f"[bold red]migrate failed:[/] {exc}")
        raise typer.Exit(1) from None
    out.print(f"schema version {version} applied to database {settings.database}")


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
    server (in development, `python -m devtools store serve`).
    """
    from datetime import UTC, datetime

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    from worker.adapters.clickhouse.rebuild import RebuildError
    from worker.adapters.clickhouse.rebuild import rebuild as run_rebuild
    from worker.adapters.clickhouse.store import StoreError, StoreUnavailable
    from worker.core.rates import RatePlanError, load_rate_plan

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
        with bar, settings.store() as store:
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
