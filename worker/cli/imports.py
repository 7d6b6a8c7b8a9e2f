"""`ringlog import asterisk-cel | portsip`: a provider's records to the input topic.

The records are normalized exactly as the gateway does it, into events whose ids come from the
provider's own ids, so an import can be run again (or over overlapping ranges) without
changing a row. The context (project, users, numbers, time zone) comes from the gateway's
routing file: `--tenant` names the entry under `asterisk:` or `portsip:`.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from worker.adapters.portsip.calllogs import CalllogsClient, PortsipRefused, PortsipUnavailable
from worker.adapters.twilio.calls import CallsClient, TwilioRefused, TwilioUnavailable
from worker.cli.options import Brokers, Topic, console, out, settings_from
from worker.core.providers import asterisk_cel, portsip, twilio
from worker.core.providers.base import ProviderContext
from worker.gateway.config import Provider
from worker.pipeline.ports import BrokerUnavailable, DeadLetterUnavailable
from worker.service.gateway_host import gateway_config
from worker.service.importer import EventImporter, ImportSummary, ResumePoint
from worker.service.settings import ConfigError, Settings, parse_duration

import_app = typer.Typer(
    help="Import a telephony system's records (Asterisk CEL, PortSIP call logs) as events.",
    no_args_is_help=True,
)

Tenant = Annotated[
    str, typer.Option("--tenant", help="The entry of the routing file (RINGLOG_GATEWAY_CONFIG)")
]
Config = Annotated[
    Path | None, typer.Option("--config", help="Routing YAML [RINGLOG_GATEWAY_CONFIG]")
]


def _context(settings: Settings, provider: Provider, tenant: str) -> ProviderContext:
    try:
        config = gateway_config(settings)
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None
    ctx = config.context(provider, tenant)
    if ctx is None:
        known = ", ".join(config.tenants(provider)) or "none"
        console.print(
            f"[bold red]no {provider} tenant {tenant!r}[/] in {settings.gateway_config} "
            f"(known: {known})"
        )
        raise typer.Exit(2)
    return ctx


def _report(summary: ImportSummary, seconds: float) -> None:
    out.print(
        f"read {summary.read} records, produced {summary.produced} events, "
        f"dead-lettered {summary.rejected} in {seconds:.1f}s"
    )
    for code, n in sorted(summary.reasons.items()):
        out.print(f"  {code}: {n}")


@import_app.command("asterisk-cel")
def asterisk_cel_import(
    source: Annotated[
        str, typer.Argument(help="A cel_custom CSV or AMI CEL JSON lines; - = stdin")
    ],
    tenant: Tenant,
    config: Config = None,
    brokers: Brokers = None,
    topic: Topic = None,
) -> None:
    """Import Asterisk CEL records (the CSV cel_custom writes, or AMI `CEL` events as JSON
    lines), one record at a time, grouped into calls by linkedid."""
    settings = settings_from(kafka_brokers=brokers, topic=topic, gateway_config=config)
    ctx = _context(settings, "asterisk", tenant)
    if source != "-" and not Path(source).is_file():
        console.print(f"[bold red]no such file:[/] {source}")
        raise typer.Exit(2)

    def lines() -> Iterator[str]:
        if source == "-":
            yield from _non_empty(sys.stdin)
            return
        with Path(source).open(encoding="utf-8", newline="") as stream:
            yield from _non_empty(stream)

    async def run() -> ImportSummary:
        importer = EventImporter(settings, "asterisk")
        await importer.start()
        try:
            with _progress() as progress:
                task = progress.add_task("CEL records", total=None)
                for line in lines():
                    await importer.add(
                        asterisk_cel.normalize_line(line, ctx), line.encode("utf-8"), "cel"
                    )
                    progress.advance(task)
            await importer.flush()
        finally:
            await importer.stop()
        return importer.summary

    _run(run)


@import_app.command("portsip")
def portsip_import(
    tenant: Tenant,
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help="RFC 3339 start (default: where the last run stopped, from --state)",
        ),
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", help="Resume file (default ./var/import/portsip-<tenant>.json)"),
    ] = None,
    config: Config = None,
    brokers: Brokers = None,
    topic: Topic = None,
) -> None:
    """Import PortSIP call logs from its REST API (`GET /api/calllogs`, Bearer token from
    RINGLOG_PORTSIP_API_TOKEN at RINGLOG_PORTSIP_API_URL), oldest first, and remember where
    it stopped: a rerun resumes without duplicates."""
    settings = settings_from(kafka_brokers=brokers, topic=topic, gateway_config=config)
    ctx = _context(settings, "portsip", tenant)
    token = settings.secret("portsip_api_token")
    if not settings.portsip_api_url or not token:
        console.print(
            "[bold red]configuration error:[/] set RINGLOG_PORTSIP_API_URL (e.g. "
            "https://pbx.example.com:8887) and RINGLOG_PORTSIP_API_TOKEN (or _FILE)"
        )
        raise typer.Exit(2)
    point = ResumePoint.load(state or Path("var") / "import" / f"portsip-{tenant}.json")
    start = point.since
    if since is not None:
        try:
            start = dt.datetime.fromisoformat(since)
        except ValueError:
            console.print(f"[bold red]--since {since!r}[/] is not an RFC 3339 time")
            raise typer.Exit(2) from None
        start = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
    if start is None:
        console.print("[bold red]give --since[/]: there is no earlier run to resume from")
        raise typer.Exit(2)
    client = CalllogsClient(settings.portsip_api_url, token)
    # Ids the last run imported at its last started_at: this run skips them (it re-reads that
    # instant, since more records may share it).
    done_before = set(point.seen) if start == point.since else set()

    async def run() -> ImportSummary:
        importer = EventImporter(settings, "portsip")
        await importer.start()
        try:
            with _progress() as progress:
                task = progress.add_task("PortSIP call logs", total=None)
                pages = client.pages(start)
                while (page := await asyncio.to_thread(next, pages, None)) is not None:
                    for item in page:
                        record_id, started = str(item.get("id")), _started(item)
                        if started == start and record_id in done_before:
                            continue  # imported by the last run
                        await importer.add(
                            portsip.call_log(item, ctx), orjson.dumps(item), "calllogs"
                        )
                        if started is not None:
                            point.advance(started, record_id)
                        progress.advance(task)
                    await importer.flush()
                    point.save()  # only after Kafka has the page
        finally:
            await importer.stop()
            client.close()
        return importer.summary

    _run(run)


@import_app.command("twilio-prices")
def twilio_prices_import(
    tenant: Tenant,
    since: Annotated[
        str,
        typer.Option("--since", help="Calls started on or after: a date (2026-01-06) or 2d"),
    ] = "2d",
    config: Config = None,
    brokers: Brokers = None,
    topic: Topic = None,
) -> None:
    """Import the prices Twilio fills in after calls end (its Calls API, with
    RINGLOG_TWILIO_ACCOUNT_SID and RINGLOG_TWILIO_AUTH_TOKEN) as cost reports. Prices can
    come minutes after a call: run it from cron over the last days; a rerun changes nothing."""
    settings = settings_from(kafka_brokers=brokers, topic=topic, gateway_config=config)
    ctx = _context(settings, "twilio", tenant)
    token = settings.secret("twilio_auth_token")
    if not settings.twilio_account_sid or not token:
        console.print(
            "[bold red]configuration error:[/] set RINGLOG_TWILIO_ACCOUNT_SID and "
            "RINGLOG_TWILIO_AUTH_TOKEN (or _FILE)"
        )
        raise typer.Exit(2)
    try:
        if since[-1:].isalpha():  # a duration back from now
            start = (dt.datetime.now(dt.UTC) - parse_duration(since, "--since")).date()
        else:
            start = dt.date.fromisoformat(since)
    except (ConfigError, ValueError):
        console.print(f"[bold red]--since {since!r}[/] is neither a date nor a duration (2d)")
        raise typer.Exit(2) from None
    client = CallsClient(settings.twilio_account_sid, token, settings.twilio_api_url)

    async def run() -> ImportSummary:
        importer = EventImporter(settings, "twilio")
        await importer.start()
        try:
            with _progress() as progress:
                task = progress.add_task("Twilio call pages", total=None)
                pages = client.pages(start)
                while (page := await asyncio.to_thread(next, pages, None)) is not None:
                    for resource in page.get("calls") or []:
                        await importer.add(
                            twilio.call_resource(resource, ctx), orjson.dumps(resource), "calls"
                        )
                    progress.advance(task)
            await importer.flush()
        finally:
            await importer.stop()
            client.close()
        return importer.summary

    _run(run)


def _non_empty(stream: Iterable[str]) -> Iterator[str]:
    for line in stream:
        if line.strip():
            yield line.rstrip("\r\n")


def _started(item: dict[str, Any]) -> dt.datetime | None:
    try:
        value = dt.datetime.fromisoformat(str(item.get("started_at")))
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _progress() -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}: {task.completed}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


def _run(run: Any) -> None:
    started = time.monotonic()
    try:
        summary = asyncio.run(run())
    except (BrokerUnavailable, DeadLetterUnavailable) as exc:
        console.print(f"[bold red]Kafka unavailable:[/] {exc}. Rerun: nothing is doubled.")
        raise typer.Exit(1) from None
    except (PortsipRefused, PortsipUnavailable) as exc:
        console.print(f"[bold red]PortSIP:[/] {exc}")
        raise typer.Exit(1) from None
    except (TwilioRefused, TwilioUnavailable) as exc:
        console.print(f"[bold red]Twilio:[/] {exc}")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("interrupted: rerun to continue (nothing is doubled)")
        raise typer.Exit(130) from None
    _report(summary, time.monotonic() - started)
