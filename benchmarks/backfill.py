"""Backfill benchmark (issue 12, item 6): `ringlog replay` of a JSON Lines archive, the worker
ingesting it, and `ringlog rebuild` over the resulting store, in events per second.

    python -m benchmarks.backfill                    # 1M events, 4 partitions
    python -m benchmarks.backfill --events 50000     # a quick run

Steps, in one run (machines are shared and noisy: compare the ratios to the baselines):
1. write N generated events (`devtools.traffic.generate_events`, 2% invalid, 10% duplicates)
   to a JSON Lines file, one message value per line, and count what each line must become
   with the worker's decoder (not timed);
2. (a) baseline: read the file and `orjson.loads` every line;
3. (1) `ringlog replay FILE`, the command in a subprocess, into a fresh topic: events
   produced (acknowledged) per second of its wall time, start-up included;
4. (b) baseline: a bare aiokafka consumer reads and decodes the topic (benchmarks.ingest (a));
5. (2) the worker, exactly as `ringlog worker` starts it (the Faust app and lifecycle of
   `worker.service.faust_host`, in a child process that does nothing else; benchmarks.ingest
   (b)), from its first fetched message until every offset is committed, i.e. every row is
   durable in a fresh embedded ClickHouse (chDB) store;
6. (3) `ringlog rebuild`, the command in a subprocess, once the worker has stopped (an
   embedded store has one owner): events in call_event per second of its wall time, and
   calls per second.
Then every figure is checked against the file: every line produced or refused, every offset
committed, call_event rows = distinct valid events, every call rebuilt.

`--in-process` runs (2) and (3) in this process instead (the smoke test: chDB allows one
data path per process, so the test's session store is used).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from benchmarks.ingest import (
    DEFAULT_BATCH_MAX_EVENTS,
    ConsumerFigures,
    WorkerFigures,
    WorkerSpec,
    _positive,
    _worker_in_process,
    _worker_subprocess,
    bare_consumer,
    report_footer,
)
from devtools.kafka_local import topic_end_offsets
from devtools.producer import ensure_topic
from devtools.traffic import generate_events
from worker.core.decode import ValidEvent, decode

REPO_ROOT = Path(__file__).resolve().parents[1]
COMMAND_TIMEOUT_S = 3600.0  # replay, rebuild
WATCH_EVERY_S = 10.0  # progress lines while the worker runs
REPLAY_SUMMARY = re.compile(
    r"read (\d+) lines, produced (\d+) events, refused (\d+) lines, skipped (\d+) blank lines"
)
REBUILD_SUMMARY = re.compile(r"rebuilt (\d+) calls from (\d+) events")


# ---------------------------------------------------------------------------------------------
# results


@dataclass
class Expected:
    """What the file's lines must become, by the worker's own decoder (keyed by call_id)."""

    lines: int = 0
    blank: int = 0
    valid: int = 0  # lines `ringlog replay` produces
    refused: int = 0  # lines it dead-letters
    distinct_valid: int = 0  # distinct (project_id, call_id, event_id): call_event rows
    calls: int = 0  # distinct (project_id, call_id) of the valid events: calls rebuilt
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return self.valid - self.distinct_valid


@dataclass
class Timed:
    """One timed phase: `items` done in `seconds`."""

    name: str
    items: int = 0
    seconds: float = 0.0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.items / self.seconds if self.seconds > 0 else 0.0


@dataclass
class ReplayFigures(Timed):
    lines: int = 0
    produced: int = 0
    refused: int = 0
    blank: int = 0
    topic_messages: int = 0  # the topic's end offsets, summed
    dlq_messages: int = 0


@dataclass
class RebuildFigures(Timed):
    calls: int = 0
    events: int = 0  # as the command reports them (distinct events per call)

    @property
    def calls_rate(self) -> float:
        return self.calls / self.seconds if self.seconds > 0 else 0.0


@dataclass
class BackfillResult:
    command: str
    file: str
    file_bytes: int
    topic: str
    partitions: int
    batch_max_events: int
    generate_seconds: float
    expected: Expected
    startup_seconds: float  # `ringlog --help` in a subprocess: part of (1) and (3)
    read_decode: Timed  # (a)
    replay: ReplayFigures  # (1)
    bare: ConsumerFigures  # (b)
    worker: WorkerFigures  # (2)
    rebuild: RebuildFigures  # (3)
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def accounted_for(self) -> bool:
        return bool(self.checks) and all(self.checks.values())

    def ratios(self) -> dict[str, float]:
        def ratio(a: float, b: float) -> float:
            return a / b if b > 0 else 0.0

        base = self.read_decode.rate
        return {
            "replay_to_read_decode": ratio(self.replay.rate, base),
            "worker_to_bare_consumer": ratio(self.worker.rate, self.bare.rate),
            "worker_to_read_decode": ratio(self.worker.rate, base),
            "rebuild_to_read_decode": ratio(self.rebuild.rate, base),
        }

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["expected"]["duplicates"] = self.expected.duplicates
        for name in ("read_decode", "replay", "bare", "worker", "rebuild"):
            data[name]["rate"] = getattr(self, name).rate
        data["rebuild"]["calls_rate"] = self.rebuild.calls_rate
        data["ratios"] = self.ratios()
        data["accounted_for"] = self.accounted_for
        return data


@dataclass
class Options:
    events: int = 1_000_000
    partitions: int = 4
    brokers: str = "127.0.0.1:9092"
    seed: int = 1
    batch_max_events: int = DEFAULT_BATCH_MAX_EVENTS
    file: Path | None = None  # None: a temporary file, removed afterwards
    clickhouse_url: str | None = None  # None: a fresh temporary chDB directory
    database: str = "bench"
    in_process: bool = False
    progress: bool = True
    json: bool = False
    command: str = ""


def _say(text: str) -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# 1. the file and what it must become


def write_file(opts: Options, path: Path) -> float:
    """N generated messages, one value per line (the generator writes no newline byte inside
    a value, so every message is one line). Returns the seconds it took."""
    started = time.perf_counter()
    step = max(1, opts.events // 10)
    with path.open("wb", buffering=1024 * 1024) as out:
        for i, message in enumerate(
            generate_events(opts.events, seed=opts.seed, invalid_share=0.02, oversized=0), 1
        ):
            out.write(message.value + b"\n")
            if opts.progress and i % step == 0:
                _say(f"  {i:,} lines written")
    return time.perf_counter() - started


def expected_of(path: Path) -> Expected:
    """Each line as `ringlog replay` judges it: the worker's decoder, keyed by its call_id."""
    exp = Expected()
    events: set[tuple[str, str, str]] = set()
    calls: set[tuple[str, str]] = set()
    for line in _lines(path):
        exp.lines += 1
        value = line.rstrip(b"\r\n")
        if not value.strip():
            exp.blank += 1
            continue
        try:
            data = orjson.loads(value)
        except orjson.JSONDecodeError:
            data = None
        call_id = data.get("call_id") if isinstance(data, dict) else None
        key = call_id.encode() if isinstance(call_id, str) and call_id else None
        verdict = decode(key, value)
        if isinstance(verdict, ValidEvent):
            exp.valid += 1
            e = verdict.event
            events.add((str(e.project_id), e.call_id, e.event_id))
            calls.add((str(e.project_id), e.call_id))
        else:
            exp.refused += 1
            exp.reasons[verdict.code] = exp.reasons.get(verdict.code, 0) + 1
    exp.distinct_valid, exp.calls = len(events), len(calls)
    return exp


def _lines(path: Path) -> Iterator[bytes]:
    with path.open("rb", buffering=1024 * 1024) as stream:
        yield from stream


# ---------------------------------------------------------------------------------------------
# (a) the bare baseline


def read_decode(path: Path) -> Timed:
    """Read the file and orjson-decode every line: the floor of any per-line work."""
    figures = Timed("read + orjson.loads")
    undecodable = 0
    started = time.perf_counter()
    for line in _lines(path):
        figures.items += 1
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError:
            undecodable += 1
    figures.seconds = time.perf_counter() - started
    figures.note = f"{undecodable} lines not JSON"
    return figures


# ---------------------------------------------------------------------------------------------
# (1) and (3): the commands


def _command_env(**settings: str) -> dict[str, str]:
    """This environment without any RINGLOG_* of the caller's, with the run's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RINGLOG_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH")) if p)
    env["RINGLOG_LOG_LEVEL"] = "WARNING"
    env.update({f"RINGLOG_{name.upper()}": value for name, value in settings.items()})
    return env


def _ringlog(args: Sequence[str], env: dict[str, str], progress: bool) -> tuple[float, str]:
    """`ringlog ARGS` in a subprocess (`python -m worker.cli`, what the script runs): its
    wall time and stdout. Its progress bar (stderr) shows when this runs on a terminal."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "worker.cli", *args],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=None if progress else subprocess.PIPE,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(
            f"ringlog {shlex.join(args)} exited with {proc.returncode}:\n"
            f"{proc.stdout[-2000:]}{(proc.stderr or '')[-2000:]}"
        )
    return seconds, proc.stdout


def startup_seconds() -> float:
    seconds, _ = _ringlog(["replay", "--help"], _command_env(), progress=False)
    return seconds


def run_replay(opts: Options, path: Path, topic: str) -> ReplayFigures:
    env = _command_env(kafka_brokers=opts.brokers, topic=topic, dlq_topic=f"{topic}.dlq")
    seconds, stdout = _ringlog(["replay", str(path)], env, opts.progress)
    found = REPLAY_SUMMARY.search(stdout)
    if found is None:
        raise RuntimeError(f"no summary in ringlog replay's output:\n{stdout}")
    lines, produced, refused, blank = (int(n) for n in found.groups())
    figures = ReplayFigures(
        "ringlog replay FILE",
        items=produced,
        seconds=seconds,
        lines=lines,
        produced=produced,
        refused=refused,
        blank=blank,
        note=stdout.strip().splitlines()[0],  # the summary line (the reasons follow it)
    )
    figures.topic_messages = sum(asyncio.run(topic_end_offsets(opts.brokers, topic)).values())
    figures.dlq_messages = sum(
        asyncio.run(topic_end_offsets(opts.brokers, f"{topic}.dlq")).values()
    )
    return figures


def run_rebuild(opts: Options, url: str) -> RebuildFigures:
    env = _command_env(clickhouse_url=url, database=opts.database)
    if opts.in_process:
        seconds, stdout = _rebuild_in_process(env)
    else:
        seconds, stdout = _ringlog(["rebuild"], env, opts.progress)
    found = REBUILD_SUMMARY.search(stdout)
    if found is None:
        raise RuntimeError(f"no summary in ringlog rebuild's output:\n{stdout}")
    calls, events = (int(n) for n in found.groups())
    return RebuildFigures(
        "ringlog rebuild",
        items=events,
        seconds=seconds,
        calls=calls,
        events=events,
        note=" ".join(stdout.split()),
    )


def _rebuild_in_process(env: dict[str, str]) -> tuple[float, str]:
    """The same command in this process (chDB: one data path per process)."""
    from typer.testing import CliRunner

    from worker.cli.main import app

    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("RINGLOG_")}
    ringlog = {k: v for k, v in env.items() if k.startswith("RINGLOG_")}
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["rebuild"], env={**unset, **ringlog})
    seconds = time.perf_counter() - started
    if result.exit_code != 0:
        raise RuntimeError(f"ringlog rebuild exited with {result.exit_code}:\n{result.output}")
    return seconds, result.stdout


# ---------------------------------------------------------------------------------------------
# (2) the worker


@contextmanager
def watching_commits(opts: Options, group: str, topic: str, total: int) -> Iterator[None]:
    """Progress while the worker runs: the group's committed offsets, read from Kafka in a
    thread of its own every WATCH_EVERY_S."""
    if not opts.progress:
        yield
        return
    done = threading.Event()

    async def watch() -> None:
        from aiokafka.admin import AIOKafkaAdminClient

        admin = AIOKafkaAdminClient(bootstrap_servers=opts.brokers)
        await admin.start()
        started = time.perf_counter()
        try:
            # Wakes at once when the worker phase ends.
            while not await asyncio.to_thread(done.wait, WATCH_EVERY_S):
                offsets = await admin.list_consumer_group_offsets(group)
                committed = sum(m.offset for tp, m in offsets.items() if tp.topic == topic)
                elapsed = time.perf_counter() - started
                _say(f"  {committed:,} / {total:,} committed after {elapsed:.0f}s")
        finally:
            await admin.close()

    def run() -> None:
        try:
            asyncio.run(watch())
        except Exception as exc:  # progress only: never fails the run
            _say(f"  (progress unavailable: {exc!r})")

    thread = threading.Thread(target=run, name="commit-watch", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(30)


def run_worker(opts: Options, topic: str, url: str, ends: dict[int, int]) -> WorkerFigures:
    spec = WorkerSpec(
        brokers=opts.brokers,
        topic=topic,
        dlq_topic=f"{topic}.dlq",  # the replay's: one DLQ, as in production
        group_id=f"ringlog-backfill-{uuid.uuid4().hex[:12]}",
        clickhouse_url=url,
        database=opts.database,
        batch_max_events=opts.batch_max_events,
        ends=ends,
    )
    with watching_commits(opts, spec.group_id, topic, sum(ends.values())):
        if opts.in_process:
            return asyncio.run(_worker_in_process(spec))
        return _worker_subprocess(spec)


# ---------------------------------------------------------------------------------------------
# the run


def _store_url(opts: Options) -> tuple[str, str | None]:
    if opts.clickhouse_url is not None:
        return opts.clickhouse_url, None
    tmp_dir = tempfile.mkdtemp(prefix="ringlog-backfill-chdb-")
    return f"chdb://{tmp_dir}", tmp_dir


def run(opts: Options) -> BackfillResult:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    topic = f"ringlog-backfill-{stamp}-{uuid.uuid4().hex[:6]}"
    work_dir = None if opts.file is not None else tempfile.mkdtemp(prefix="ringlog-backfill-")
    path = opts.file if opts.file is not None else Path(str(work_dir)) / "events.jsonl"
    url, store_dir = _store_url(opts)
    try:
        _say(f"writing {opts.events:,} generated events (seed {opts.seed}) to {path} ...")
        generate_s = write_file(opts, path)
        size = path.stat().st_size
        _say(f"  {size / 1e6:,.1f} MB in {generate_s:.1f}s; checking each line as the worker ...")
        expected = expected_of(path)
        _say(
            f"  {expected.lines:,} lines: {expected.distinct_valid:,} distinct valid events + "
            f"{expected.duplicates:,} duplicates + {expected.refused:,} the worker refuses; "
            f"{expected.calls:,} calls"
        )
        startup = startup_seconds()

        _say("(a) read the file + orjson.loads every line ...")
        base = read_decode(path)
        _say(f"  {base.items:,} lines in {base.seconds:.2f}s = {base.rate:,.0f}/s")

        asyncio.run(ensure_topic(opts.brokers, topic, partitions=opts.partitions))
        asyncio.run(ensure_topic(opts.brokers, f"{topic}.dlq", partitions=1))
        _say(f"(1) ringlog replay {path} (the command; topic {topic}) ...")
        replay = run_replay(opts, path, topic)
        _say(f"  {replay.note}")
        _say(f"  {replay.produced:,} events in {replay.seconds:.2f}s = {replay.rate:,.0f}/s")
        ends = asyncio.run(topic_end_offsets(opts.brokers, topic))

        _say("(b) bare aiokafka consumer: getmany + orjson.loads + dict + commit ...")
        bare = asyncio.run(bare_consumer(opts.brokers, topic, ends))
        _say(f"  {bare.messages:,} messages in {bare.seconds:.2f}s = {bare.rate:,.0f}/s")

        where = "in this process" if opts.in_process else "in a subprocess"
        _say(f"(2) the worker as `ringlog worker` starts it ({where}; store {url}) ...")
        worker = run_worker(opts, topic, url, ends)
        _say(
            f"  {worker.messages:,} events durable in {worker.seconds:.2f}s = {worker.rate:,.0f}/s"
        )

        _say("(3) ringlog rebuild (the command; the worker has stopped) ...")
        rebuild = run_rebuild(opts, url)
        _say(f"  {rebuild.note}")
        _say(
            f"  {rebuild.events:,} events, {rebuild.calls:,} calls in {rebuild.seconds:.2f}s = "
            f"{rebuild.rate:,.0f} events/s, {rebuild.calls_rate:,.0f} calls/s"
        )
    finally:
        if store_dir is not None:
            shutil.rmtree(store_dir, ignore_errors=True)
        if work_dir is not None:
            shutil.rmtree(work_dir, ignore_errors=True)

    result = BackfillResult(
        command=opts.command,
        file=str(path),
        file_bytes=size,
        topic=topic,
        partitions=opts.partitions,
        batch_max_events=opts.batch_max_events,
        generate_seconds=generate_s,
        expected=expected,
        startup_seconds=startup,
        read_decode=base,
        replay=replay,
        bare=bare,
        worker=worker,
        rebuild=rebuild,
    )
    result.checks = checks(result)
    return result


def checks(r: BackfillResult) -> dict[str, bool]:
    exp, rep, w, reb = r.expected, r.replay, r.worker, r.rebuild
    return {
        "(1) read every line": rep.lines == exp.lines,
        "(1) produced every valid line": rep.produced == exp.valid == rep.topic_messages,
        "(1) refused every invalid line": rep.refused == exp.refused,
        "(b) read every message": r.bare.complete and r.bare.messages == rep.topic_messages,
        "(2) committed every offset": w.complete and w.messages == rep.topic_messages,
        "(2) call_event rows = distinct valid events": (
            w.rows.get("call_event") == exp.distinct_valid
        ),
        "(2) nothing rejected (the replay refused it)": w.rows.get("rejected_event") == 0,
        "DLQ messages = refused lines": w.dead_letters == rep.dlq_messages == exp.refused,
        "(3) rebuilt every call": reb.calls == exp.calls,
        "(3) rebuilt from every stored event": reb.events == exp.distinct_valid,
    }


# ---------------------------------------------------------------------------------------------
# output


def _row(name: str, items: int, unit: str, seconds: float, rate: float, ratio: str) -> str:
    return f"{name:<44} {items:>11,} {unit:<8} {seconds:>8.2f} {rate:>11,.0f} {ratio:>8}"


def summary(r: BackfillResult) -> str:
    ratios = r.ratios()
    exp, w = r.expected, r.worker
    lines = [
        "",
        "=" * 96,
        f"ringlog backfill benchmark: {exp.lines:,} lines ({r.file_bytes / 1e6:,.1f} MB), "
        f"{r.partitions} partitions, batch_max_events={r.batch_max_events}",
        f"file {r.file}; topic {r.topic}",
        "",
        f"{'phase':<44} {'items':>11} {'':<8} {'seconds':>8} {'per second':>11} {'ratio':>8}",
        _row(
            "(a) read the file + orjson.loads",
            r.read_decode.items,
            "lines",
            r.read_decode.seconds,
            r.read_decode.rate,
            "1.00",
        ),
        _row(
            "(1) ringlog replay FILE (wall time)",
            r.replay.produced,
            "events",
            r.replay.seconds,
            r.replay.rate,
            f"{ratios['replay_to_read_decode']:.3f}",
        ),
        _row(
            "(b) bare aiokafka consumer of the topic",
            r.bare.messages,
            "messages",
            r.bare.seconds,
            r.bare.rate,
            "1.00",
        ),
        _row(
            "(2) worker, until every offset committed",
            w.messages,
            "events",
            w.seconds,
            w.rate,
            f"{ratios['worker_to_bare_consumer']:.3f}",
        ),
        _row(
            "(3) ringlog rebuild (wall time)",
            r.rebuild.events,
            "events",
            r.rebuild.seconds,
            r.rebuild.rate,
            f"{ratios['rebuild_to_read_decode']:.3f}",
        ),
        _row(
            "    the same, in calls",
            r.rebuild.calls,
            "calls",
            r.rebuild.seconds,
            r.rebuild.calls_rate,
            "",
        ),
        "",
        "ratios: (1) and (3) against (a); (2) against (b), as in benchmarks.ingest "
        f"((2) against (a): {ratios['worker_to_read_decode']:.3f})",
        f"(1) and (3) include the command's start-up: `ringlog replay --help` takes "
        f"{r.startup_seconds:.2f}s here",
        f"(1) {r.replay.note}",
        f"(2) {w.batches} batches; prepare {w.prepare_seconds:.2f}s, write "
        f"{w.write_seconds:.2f}s (overlaps), commit {w.commit_seconds:.2f}s; "
        f"{w.seconds_from_start:.2f}s from consumer start; peak RSS {w.rss_peak_kib / 1024:,.0f}"
        " MiB",
        f"(3) {r.rebuild.note}",
        "",
        f"file: {exp.lines:,} lines = {exp.distinct_valid:,} distinct valid events + "
        f"{exp.duplicates:,} duplicates + {exp.refused:,} refused + {exp.blank:,} blank; "
        f"{exp.calls:,} calls (written in {r.generate_seconds:.1f}s)",
        "refused by reason: " + ", ".join(f"{k}={n:,}" for k, n in sorted(exp.reasons.items())),
        "rows per table (count() FINAL): "
        + ", ".join(f"{t}={n:,}" for t, n in sorted(w.rows.items())),
        f"dead letters on {r.topic}.dlq: {w.dead_letters:,}",
        *report_footer(r.checks, r.command),
    ]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.backfill",
        description="Backfill benchmark: ringlog replay of a JSON Lines file, the worker "
        "ingesting it, ringlog rebuild of the store; events/s against bare baselines.",
    )
    p.add_argument(
        "--events", type=_positive(int), default=1_000_000, help="events to write (1000000)"
    )
    p.add_argument(
        "--partitions", type=_positive(int), default=4, help="partitions of the fresh topic"
    )
    p.add_argument("--brokers", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    p.add_argument("--seed", type=int, default=1, help="traffic generator seed")
    p.add_argument(
        "--batch-max-events",
        type=_positive(int),
        default=DEFAULT_BATCH_MAX_EVENTS,
        help=f"the worker's batch size ({DEFAULT_BATCH_MAX_EVENTS})",
    )
    p.add_argument(
        "--file",
        type=Path,
        default=None,
        help="write the JSON Lines here and keep it "
        "(default: a temporary file, removed afterwards)",
    )
    p.add_argument("--clickhouse-url", default=None, help="store URL (default: fresh chDB dir)")
    p.add_argument("--database", default="bench", help="ClickHouse database (bench)")
    p.add_argument(
        "--in-process",
        action="store_true",
        help="run the worker and the rebuild in this process (default: subprocesses)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress output")
    p.add_argument("--json", action="store_true", help="also print every figure as JSON")
    return p


def main(
    argv: Sequence[str] | None = None,
    *,
    clickhouse_url: str | None = None,
    database: str | None = None,
) -> BackfillResult:
    """Run the benchmark; `clickhouse_url`/`database` override the flags (for tests, which
    must share the session's chDB path)."""
    args = _parser().parse_args(argv)
    if args.events < 1:
        _parser().error("--events must be >= 1")
    shown = list(sys.argv[1:] if argv is None else argv)
    opts = Options(
        events=args.events,
        partitions=args.partitions,
        brokers=args.brokers,
        seed=args.seed,
        batch_max_events=args.batch_max_events,
        file=args.file,
        clickhouse_url=clickhouse_url if clickhouse_url is not None else args.clickhouse_url,
        database=database if database is not None else args.database,
        in_process=args.in_process,
        progress=not args.no_progress,
        json=args.json,
        command=shlex.join(["python", "-m", "benchmarks.backfill", *shown]),
    )
    result = run(opts)
    _say(summary(result))
    if opts.json:
        _say(json.dumps(result.to_json()))
    return result


if __name__ == "__main__":
    sys.exit(0 if main().accounted_for else 1)
