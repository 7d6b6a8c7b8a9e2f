"""The `ringlog` command line: one Typer app, one module per group of verbs."""

from __future__ import annotations

import typer

from worker.cli import apikey, imports, ops, query, replay, run, schema, store

app = typer.Typer(
    name="ringlog",
    help=(
        "ringlog: ingest telephony call events from Kafka, correlate them into call logs, "
        "CDRs and costs, and write them to ClickHouse.\n\n"
        "Every option can also be set with the RINGLOG_* environment variable named in its "
        "help; flags win over the environment. From a checkout, `python -m devtools demo` runs "
        "it all end to end."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
schema_app = typer.Typer(help="Event JSON Schema for producers.", no_args_is_help=True)
app.add_typer(schema_app, name="schema")

app.command()(run.worker)
app.command()(run.api)
app.command()(run.gateway)
app.add_typer(apikey.apikey_app, name="apikey")
app.add_typer(imports.import_app, name="import")
app.command()(replay.replay)
app.command()(store.migrate)
app.command()(store.rebuild)
app.command()(query.sql)
app.command()(ops.lag)
schema_app.command("export")(schema.schema_export)


def main() -> None:
    app()
