"""Development tooling's command line: `python -m devtools` (not shipped in the wheel).

Local Kafka, simulated traffic, JSONL replays, the demo and a shared chDB store over HTTP.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer

from worker.cli.options import Brokers, Topic, console, out, run_async, settings_from
from worker.service.logs import setup_logging

app = typer.Typer(
    name="devtools",
    help=(
        "ringlog's development tools: a local Apache Kafka, simulated call traffic, JSONL "
        "replays, the end-to-end demo and a shared chDB store over HTTP. Run from the "
        "repository root: python -m devtools COMMAND."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
kafka_app = typer.Typer(
    help="Run a local single-node Apache Kafka (KRaft) for development.", no_args_is_help=True
)
app.add_typer(kafka_app, name="kafka")


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
    as_provider: Annotated[
        str | None,
        typer.Option(
            "--as",
            help="Send the calls in this provider's own format instead of ringlog events: "
            "twilio | portsip | freeswitch (webhooks to --gateway) or asterisk (a CEL file). "
            "Skipped, and counted: PBX CDR calls; calls left open (CDR/CEL providers); "
            "outbound calls (PortSIP, Asterisk) and those ended Low Balance or dropped after "
            "the answer; dials answered without an answer time (FreeSWITCH, Asterisk; "
            "PortSIP unless the talk time is known); Twilio calls whose dials started in one "
            "second with different rule fields (whole-second times lose their order); late "
            "cost reports (never sent)",
        ),
    ] = None,
    gateway: Annotated[
        str, typer.Option(help="With --as: the running `ringlog gateway`")
    ] = "http://127.0.0.1:8322",
    tenant: Annotated[
        str, typer.Option(help="With --as: the routing file's tenant of the provider")
    ] = "sim",
    concurrency: Annotated[int, typer.Option(help="With --as: requests in flight")] = 8,
    out_file: Annotated[
        Path | None,
        typer.Option("--out", help="With --as asterisk: the CEL CSV [./var/simulated-cel.csv]"),
    ] = None,
    run_import: Annotated[
        bool, typer.Option("--import", help="With --as asterisk: run ringlog import too")
    ] = False,
    print_config: Annotated[
        bool,
        typer.Option(help="With --as: print the routing-file entries the traffic needs, exit"),
    ] = False,
    start: Annotated[
        datetime | None,
        typer.Option(
            formats=["%Y-%m-%dT%H:%M:%S%z"], help="With --as: the first call's time [now]"
        ),
    ] = None,
) -> None:
    """Produce realistic call traffic: incoming calls with escalations, repeats, answers and
    hang-ups; outbound calls; PBX CDRs; late cost reports; duplicates; a few invalid events.
    With --as, send it as a telephony provider would, through the gateway or the importer."""
    from devtools.producer import ensure_topic, produce
    from devtools.traffic import generate_calls

    if as_provider is not None:
        code = _simulate_as(
            as_provider, calls, seed, gateway, tenant, concurrency, out_file, run_import,
            print_config, start,
        )  # fmt: skip
        raise typer.Exit(code)

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

    run_async(go())


def _simulate_as(
    provider: str,
    calls: int,
    seed: int,
    gateway: str,
    tenant: str,
    concurrency: int,
    out_file: Path | None,
    run_import: bool,
    print_config: bool,
    start: datetime | None,
) -> int:
    from devtools import simulate_as as sim

    if provider not in sim.ENCODERS:
        console.print(f"[bold red]--as {provider}:[/] use one of {', '.join(sim.ENCODERS)}")
        return 2
    if print_config:
        out.print(sim.config_snippet(provider, seed, tenant), end="", markup=False)
        return 0
    encoded = sim.encode(provider, calls, seed, start)
    sim.print_skipped(encoded, out)
    if provider == "asterisk":
        target = out_file or sim.DEFAULT_CEL_FILE
        return sim.run_asterisk(
            encoded, out_file=target, tenant=tenant, do_import=run_import, out=out
        )
    settings = settings_from()
    return sim.run_webhooks(
        provider,
        encoded,
        settings=settings,
        gateway=gateway,
        tenant=tenant,
        concurrency=concurrency,
        out=out,
    )


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
    from devtools.producer import ensure_topic, produce, read_jsonl

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

    run_async(go())


@app.command()
def demo(
    calls: Annotated[int, typer.Option(help="Calls to simulate")] = 3000,
    keep_kafka: Annotated[bool, typer.Option(help="Leave the local broker running")] = False,
) -> None:
    """The whole path on this machine: local Kafka, migrate the embedded store, run the
    worker, simulate calls, wait until ClickHouse has them, print a summary, shut down."""
    from devtools.demo import run_demo

    settings = settings_from()
    setup_logging(settings.log_format, "WARNING")
    code = run_demo(settings, calls=calls, keep_kafka=keep_kafka, console=out)
    raise typer.Exit(code)


@kafka_app.command("up")
def kafka_up(
    port: Annotated[
        int | None, typer.Option(help="Broker port [RINGLOG_KAFKA_PORT, default 9092]")
    ] = None,
) -> None:
    """Start the broker (first run resolves the jars from Maven Central into a cache)."""
    from devtools.kafka_local import KafkaLocalError
    from devtools.kafka_local import kafka_up as up

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
    from devtools.kafka_local import kafka_down as down

    down(purge)
    out.print("Kafka is down")


@kafka_app.command("status")
def kafka_status() -> None:
    """Say whether the local broker runs (exit 0) or not (exit 3)."""
    from devtools.kafka_local import kafka_status as status

    running = status()
    out.print("running" if running else "stopped")
    raise typer.Exit(0 if running else 3)


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

    from rich.markup import escape

    from devtools.chdb_http import serve
    from worker.service.settings import ConfigError, secret_from_env

    try:
        password = secret_from_env(os.environ, "RINGLOG_STORE_PASSWORD")
    except ConfigError as exc:
        console.print(f"[bold red]configuration error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
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


@app.command("worker")
def faulty_worker(
    store_down_while: Annotated[
        Path,
        typer.Option(
            "--store-down-while",
            help="While this file exists, every ClickHouse write and reload of the worker "
            "fails as if ClickHouse were down",
        ),
    ],
) -> None:
    """`ringlog worker` (same settings, same lifecycle) with an injected store fault, for
    fault tests and drills."""
    from devtools.fault_injection import StoreDownWhileFileExists
    from worker.pipeline.ports import Store
    from worker.service.faust_host import run_faust_worker

    def wrap(store: Store) -> Store:
        return StoreDownWhileFileExists(store, store_down_while)

    run_faust_worker(settings_from(), wrap_store=wrap)


def main() -> None:
    app()
