"""`ringlog replay FILE|-`: a JSON Lines file of canonical events (an archive, an export) to
the input topic."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Final

import orjson
import typer
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from worker.adapters.kafka.connection import KafkaCredentialsRejected
from worker.cli.options import Brokers, DlqTopic, Topic, console, out, settings_from
from worker.pipeline.ports import BrokerUnavailable, DeadLetterUnavailable
from worker.service.replay import Replayer, ReplaySummary
from worker.service.settings import Settings

READ_BUFFER = 1024 * 1024


def replay(
    source: Annotated[
        str,
        typer.Argument(
            metavar="FILE|-",
            help="JSON Lines, one event per line (an archive, an export); - = stdin",
        ),
    ],
    brokers: Brokers = None,
    topic: Topic = None,
    dlq_topic: DlqTopic = None,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print the summary as one JSON object on stdout, and nothing else there "
            "(errors and the progress bar go to stderr)",
        ),
    ] = False,
) -> None:
    """Publish canonical events, one JSON object per line, to the input topic, each
    keyed by its call_id and byte for byte (the event's exact text is what
    call_event keeps), in batches acknowledged by Kafka (acks=all); then
    print what was read, produced and refused.

    Each line is checked with the worker's own decoder first. A line the worker
    would refuse (invalid JSON or UTF-8, not an object, no call_id to key
    by, a field against the event contract) is NOT published: it goes at
    once to the dead-letter topic with the worker's reason, its line number
    and its text, and the summary counts it by reason. Why: whoever
    backfills an archive wants to know now, line by line, what did not go in
    (the DLQ names the line to fix and replay), and the input topic keeps
    only events: published, an invalid line would be refused again by every
    consumer that reads the topic from the start. Those lines are in the DLQ
    only (not in rejected_event: they never had an offset); run the replay
    with the workers' ringlog version, whose decoder decides.

    A valid line too large for Kafka (above the input topic's own
    max.message.bytes, read from the brokers at the start; at most 4 MiB) is
    refused the same way, as message_too_large; a dead letter too large for
    the dead-letter topic keeps the longest prefix of its line that fits.

    Valid duplicates are published (the worker drops them), so a replay run
    twice, or resumed from the start after a failure, changes no row. Blank
    lines are skipped and counted.
    """
    settings = settings_from(kafka_brokers=brokers, topic=topic, dlq_topic=dlq_topic)
    path = None if source == "-" else Path(source)
    if path is not None and not path.is_file():
        console.print(f"[bold red]no such file:[/] {escape(source)}", soft_wrap=True)
        raise typer.Exit(2)
    started = time.monotonic()
    summary = ReplaySummary()
    try:
        with _opened(path) as stream:
            total = path.stat().st_size if path is not None else None
            summary = asyncio.run(_replay(settings, source, stream, total, summary))
    except (BrokerUnavailable, DeadLetterUnavailable) as exc:
        console.print(f"[bold red]Kafka unavailable:[/] {escape(str(exc))}")
        if summary.lines:
            _report(summary, settings, source, time.monotonic() - started, as_json)
            console.print("Rerun the replay: the worker drops what was already produced.")
        raise typer.Exit(1) from None
    except KafkaCredentialsRejected as exc:
        console.print(f"[bold red]Kafka refused the connection:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        _report(summary, settings, source, time.monotonic() - started, as_json)
        console.print("interrupted: rerun the replay (the worker drops what was produced)")
        raise typer.Exit(130) from None
    _report(summary, settings, source, time.monotonic() - started, as_json)


async def _replay(
    settings: Settings,
    source: str,
    stream: BinaryIO,
    total: int | None,
    summary: ReplaySummary,
) -> ReplaySummary:
    replayer = Replayer(settings, source)
    replayer.summary = summary  # shared, so an interrupted run still reports what was acked
    with _progress() as bar:
        task = bar.add_task("lines", total=total)

        def advance(done: ReplaySummary) -> None:
            bar.update(task, completed=done.size, description=f"{done.lines:,} lines")

        try:
            await replayer.start()
            # Bytes, not text: a line that is not UTF-8 is refused with the worker's reason,
            # not a crash of the replay.
            await replayer.replay(stream, advance)
        finally:
            await replayer.stop()
    return replayer.summary


@contextmanager
def _opened(path: Path | None) -> Iterator[BinaryIO]:
    if path is None:
        yield sys.stdin.buffer
        return
    with path.open("rb", buffering=READ_BUFFER) as stream:
        yield stream


def _progress() -> Progress:
    # On a terminal only (stderr): redirected, it would still print a blank line.
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )


def summary_json(
    summary: ReplaySummary, settings: Settings, source: str, seconds: float
) -> dict[str, Any]:
    """The summary as `ringlog replay --json` prints it."""
    return {
        "source": source,
        "topic": settings.topic,
        "dlq_topic": settings.dlq_topic,
        "lines": summary.lines,
        "blank": summary.blank,
        "produced": summary.produced,
        "refused": summary.refused,
        "bytes": summary.size,
        "reasons": dict(sorted(summary.reasons.items())),
        "examples": [
            {"line": number, "code": why.code, "message": why.message, "field": why.field}
            for number, why in summary.examples
        ],
        "seconds": round(seconds, 3),
        "events_per_second": round(summary.produced / seconds, 1) if seconds > 0 else 0.0,
    }


def _report(
    summary: ReplaySummary, settings: Settings, source: str, seconds: float, as_json: bool
) -> None:
    if as_json:
        # Not through rich: the JSON text must reach stdout exactly (no markup, no wrapping).
        typer.echo(orjson.dumps(summary_json(summary, settings, source, seconds)).decode())
        return
    out.print(
        f"read {summary.lines} lines, produced {summary.produced} events, refused "
        f"{summary.refused} lines, skipped {summary.blank} blank lines in {seconds:.1f}s "
        f"({source} to {settings.topic}; refused lines to {settings.dlq_topic})",
        **_PLAIN,
    )
    for code, n in sorted(summary.reasons.items()):
        out.print(f"  {code}: {n}", **_PLAIN)
    for number, why in summary.examples:
        out.print(f"  line {number}: {why.code}: {why.message}", **_PLAIN)


# Plain lines for scripts: no wrapping at the terminal width, no markup or highlighting.
_PLAIN: Final[dict[str, Any]] = {"soft_wrap": True, "markup": False, "highlight": False}
