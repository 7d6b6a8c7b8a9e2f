"""`python -m devtools demo`: the whole product path on one machine, ending in a summary from
ClickHouse."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import orjson
from aiokafka import TopicPartition
from rich.console import Console
from rich.table import Table

from devtools.kafka_local import (
    KafkaLocalError,
    kafka_down,
    kafka_status,
    kafka_up,
    topic_end_offsets,
    wait_for_group_coordinator,
)
from devtools.producer import ensure_topic, produce
from devtools.traffic import generate_calls
from worker.adapters.clickhouse.store import redact_url
from worker.api.keys import KeyRegistry, Role
from worker.service.faust_host import start_in_background
from worker.service.lifecycle import Worker
from worker.service.settings import Settings

SUMMARY_QUERIES: dict[str, str] = {
    "Incoming calls by status": (
        "SELECT status, count() AS calls FROM incoming_call_log FINAL "
        "GROUP BY status ORDER BY calls DESC"
    ),
    "Incoming calls": (
        "SELECT count() AS calls, "
        "round(100 * countIf(answered_by_user_id IS NOT NULL) / count(), 1) AS answer_rate_pct, "
        "round(avg(dial_attempts), 2) AS avg_dial_attempts "
        "FROM incoming_call_log FINAL"
    ),
    "Talk time of answered dials": (
        "SELECT count() AS answered_dials, round(avg(talk_duration_in_seconds), 1) AS avg_talk_s "
        "FROM incoming_call_log_item FINAL WHERE is_answered"
    ),
    "Cost (US cents)": (
        "SELECT what, cents FROM ("
        "SELECT 1 AS n, 'incoming calls' AS what, sum(call_cost_in_usd_cents) AS cents "
        "FROM incoming_call_log FINAL "
        "UNION ALL SELECT 2, 'outbound calls', sum(call_cost_in_usd_cents) FROM call_log FINAL "
        "UNION ALL SELECT 3, 'PBX CDRs', sum(cost) FROM cdr FINAL) ORDER BY n"
    ),
    "Outbound calls by status": (
        "SELECT ifNull(status, '(in progress)') AS status, count() AS calls "
        "FROM call_log FINAL GROUP BY status ORDER BY calls DESC"
    ),
    "Dead letters": (
        "SELECT error_code, count() AS events FROM rejected_event FINAL "
        "GROUP BY error_code ORDER BY events DESC"
    ),
}


async def _demo(settings: Settings, calls: int, console: Console) -> int:
    await ensure_topic(settings.kafka_brokers, settings.topic)
    await ensure_topic(settings.kafka_brokers, settings.dlq_topic, partitions=1)
    await wait_for_group_coordinator(settings.kafka_brokers, settings.group_id)
    try:
        worker, stop, task = await start_in_background(settings)
    except Exception as exc:
        console.print(f"[bold red]the worker did not start:[/] {exc}")
        return 1
    console.print(
        f"[bold]2/4[/] worker running (metrics on http://{settings.http_host}:"
        f"{worker.http_port}/metrics)"
    )
    console.print(f"[bold]3/4[/] simulating {calls} calls")
    messages = list(generate_calls(calls, seed=7))
    stats = await produce(
        messages, brokers=settings.kafka_brokers, topic=settings.topic, total=len(messages)
    )
    console.print(f"      produced {stats.sent} events in {stats.elapsed_s:.1f}s")
    ends = await topic_end_offsets(settings.kafka_brokers, settings.topic)
    targets = {TopicPartition(settings.topic, p): end for p, end in ends.items()}
    started_at = time.monotonic()
    with console.status("waiting for every event to be durable in ClickHouse") as status:
        while True:
            committed = worker.loop.committed
            remaining = sum(max(0, end - committed.get(tp, 0)) for tp, end in targets.items())
            status.update(f"waiting for ClickHouse: {remaining} events left to commit")
            if remaining == 0:
                break
            if task.done():
                task.result()
                return 1
            if time.monotonic() - started_at > 600:
                console.print("[red]timed out waiting for the worker[/]")
                break
            await asyncio.sleep(0.25)
    console.print(
        f"      all events ingested in {time.monotonic() - started_at:.1f}s after producing"
    )
    console.print("[bold]4/4[/] summary from ClickHouse (rows read with FINAL)")
    for title, sql in SUMMARY_QUERIES.items():
        columns, rows = await asyncio.to_thread(worker.store.query, sql)
        _print_table(console, title, list(columns), list(rows))
    await _show_api(worker, settings, console)
    stop.set()
    await task
    return 0


async def _show_api(worker: Worker, settings: Settings, console: Console) -> None:
    """The same rows through the OneUptime-compatible API, with a key made for the demo."""
    _, rows = await asyncio.to_thread(
        worker.store.query, "SELECT project_id FROM incoming_call_log FINAL LIMIT 1"
    )
    if not rows:
        return
    project = str(rows[0][0])
    registry = KeyRegistry(worker.store)
    _, key = await asyncio.to_thread(registry.create, project, Role.VIEWER, [], None, "demo")
    body = {"select": {"status": True, "callCostInUSDCents": True}, "limit": 3}
    url = f"http://127.0.0.1:{worker.http_port}/api/incoming-call-log/get-list"
    async with httpx.AsyncClient() as client:
        answer = await client.post(url, headers={"ApiKey": key}, json=body)
    console.print(
        f"\n[bold]The same rows through the query API[/] (OneUptime-compatible; a Viewer key "
        f"of project {project}, made with `ringlog apikey create`):"
    )
    console.print(f"  curl -s {url} -H 'ApiKey: ...' -d '{orjson.dumps(body).decode()}'")
    console.print(f"  -> {answer.status_code} {answer.text}")
    console.print(f"  (every route: http://127.0.0.1:{worker.http_port}/docs while it runs)")


def _print_table(console: Console, title: str, columns: list[str], rows: list[Any]) -> None:
    table = Table(*columns, title=title, title_justify="left")
    for row in rows:
        table.add_row(*("-" if v is None else str(v) for v in row))
    console.print(table)


def run_demo(settings: Settings, *, calls: int, keep_kafka: bool, console: Console) -> int:
    was_running = kafka_status()
    console.print("[bold]1/4[/] starting local Apache Kafka (first run fetches the jars)")
    try:
        bootstrap = kafka_up()
    except KafkaLocalError as exc:
        console.print(f"[bold red]could not start Kafka:[/] {exc}")
        return 1
    settings = settings.with_overrides(kafka_brokers=bootstrap)
    console.print(
        f"      Kafka at {bootstrap}; store {redact_url(settings.clickhouse_url)} "
        f"database {settings.database}"
    )
    try:
        return asyncio.run(_demo(settings, calls, console))
    finally:
        if not keep_kafka and not was_running:
            kafka_down()
            console.print("local Kafka stopped (use --keep-kafka to leave it running)")
