"""Query API benchmark: latency and throughput of the OneUptime- and PortSIP-compatible routes
on a large embedded store, beside the same queries as raw SQL through clickhouse-connect in the
same run (the ratio is the API's own cost: HTTP, auth, validation, JSON).

    python -m benchmarks.api                       # 1M incoming calls, ~2.5M items, 200k CDRs
    python -m benchmarks.api --calls 100000 --requests 100 --json

Steps:
1. a fresh chDB store, migrated; rows synthesized in the engine (`INSERT ... SELECT FROM
   numbers(N)`: ingesting 1M calls through Kafka would take the better part of an hour and
   measures the worker, not the API) over 10 projects: N incoming calls, 1-4 items each, N/5
   CDRs;
2. an API key of project 0 (a tenth of the rows);
3. the query API started exactly as `ringlog api` starts it (`serve_api`), in this process;
4. per query: warm-up, then `--requests` sequential requests (p50, p99, requests/s), then the
   same SQL the route runs (a count and a page for lists) through clickhouse-connect on the same
   store; finally requests/s with `--clients` concurrent clients on the default list.
Machines are shared and noisy: compare the API/SQL ratios, not absolute times.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from devtools.kafka_local import kafka_up
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.api.keys import KeyRegistry, Role
from worker.service.api_host import serve_api
from worker.service.settings import Settings

PROJECTS = 10


def project_id(n: int) -> str:
    return f"00000000-0000-4000-8000-{n:012d}"


def synthesize(store: ClickHouseStore, calls: int) -> dict[str, int]:
    """Rows of `calls` incoming calls (1-4 items each) and calls/5 CDRs, made by the engine."""
    db = store.database
    uuid_of = "toUUID(concat('{prefix}', leftPad(toString({n}), 12, '0')))"
    project = uuid_of.format(prefix="00000000-0000-4000-8000-", n=f"number % {PROJECTS}")
    parent = uuid_of.format(prefix="10000000-0000-4000-8000-", n="number")
    started = "toDateTime64('2026-01-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 2500)"
    statuses = "['Completed', 'NoAnswer', 'Busy', 'Failed', 'CallerHungUp']"
    store.command(
        f"INSERT INTO {db}.incoming_call_log (id, project_id, incoming_call_policy_id, "
        "caller_phone_number, routing_phone_number, call_provider_call_id, status, "
        "call_duration_in_seconds, call_cost_in_usd_cents, incoming_call_cost_in_usd_cents, "
        "outgoing_call_cost_in_usd_cents, started_at, ended_at, dial_attempts, created_at, "
        "updated_at, ingested_at, version) "
        f"SELECT {parent}, {project}, {project}, "
        "concat('+1555', leftPad(toString(number % 9973), 7, '0')), "
        "'+15550100', concat('CA', hex(number)), "
        f"{statuses}[1 + number % 5], toUInt32(number % 600), "
        "toDecimal64(number % 1000 / 100, 4), toDecimal64(number % 300 / 100, 4), "
        f"toDecimal64(number % 700 / 100, 4), {started}, "
        f"{started} + toIntervalSecond(number % 600), "
        f"toUInt32(1 + number % 4), {started}, {started}, now64(3), 10 FROM numbers({calls})"
    )
    items = 0
    for attempt in range(4):
        store.command(
            f"INSERT INTO {db}.incoming_call_log_item (id, project_id, incoming_call_log_id, "
            "dial_id, user_id, user_phone_number, status, dial_duration_in_seconds, "
            "talk_duration_in_seconds, call_cost_in_usd_cents, cost_source, started_at, ended_at, "
            "is_answered, created_at, updated_at, ingested_at, version) "
            f"SELECT {uuid_of.format(prefix=f'2000000{attempt}-0000-4000-8000-', n='number')}, "
            f"{project}, {parent}, concat('dial-', toString(number), '-{attempt}'), "
            f"{project}, concat('+1555', leftPad(toString((number + {attempt}) % 997), 7, '0')), "
            f"{statuses}[1 + (number + {attempt}) % 5], toUInt32((number * 7 + {attempt}) % 120), "
            f"toUInt32((number * 3 + {attempt}) % 90), toDecimal64((number % 500) / 100, 4), "
            f"'rated', {started}, {started} + toIntervalSecond(30), "
            f"(number + {attempt}) % 5 = 0, {started} + toIntervalSecond({attempt}), "
            f"{started}, now64(3), 10 FROM numbers({calls}) WHERE number % 4 >= {attempt}"
        )
        items += sum(1 for n in range(4) if n >= attempt) * calls // 4
    store.command(
        f"INSERT INTO {db}.cdr (id, project_id, session_id, cdr_id, caller, caller_domain, "
        "caller_display_name, callee, callee_domain, callee_display_name, started_at, "
        "answered_at, ended_at, sip_call_id, direction, end_reason, status_code, duration, cost, "
        "cost_source, ingested_at, version) "
        f"SELECT {uuid_of.format(prefix='30000000-0000-4000-8000-', n='number')}, {project}, "
        "toString(number), toString(700000000000 + number), toString(100 + number % 50), "
        "'pbx.example.com', concat('Agent ', toString(number % 50)), "
        "concat('+4915', leftPad(toString(number % 99991), 8, '0')), 'pbx.example.com', "
        f"'Helpdesk', {started}, {started} + toIntervalSecond(5), "
        f"{started} + toIntervalSecond(5 + number % 300), concat(hex(number), '@pbx'), "
        "['INBOUND_CALL', 'OUTBOUND_CALL', 'EXTENSION_CALL'][1 + number % 3], "
        "'CALLER_DISCONNECTED', 200, toInt32(number % 300), toDecimal64(number % 90 / 10, 4), "
        f"'provider', now64(3), 1 FROM numbers({calls // 5})"
    )
    return {"incoming_call_log": calls, "incoming_call_log_item": items, "cdr": calls // 5}


@dataclass
class Figure:
    name: str
    api_p50_ms: float
    api_p99_ms: float
    api_rps: float
    sql_p50_ms: float
    sql_p99_ms: float
    rows: int

    @property
    def ratio(self) -> float:
        return self.api_p50_ms / self.sql_p50_ms if self.sql_p50_ms else float("inf")


def timed(call: Callable[[int], Any], n: int, warmup: int = 5) -> tuple[list[float], Any]:
    last: Any = None
    for i in range(warmup):
        last = call(i)
    times: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        last = call(i)
        times.append((time.perf_counter() - started) * 1000)
    return times, last


def p(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run(args: argparse.Namespace) -> dict[str, Any]:
    brokers = args.brokers or kafka_up()
    workdir = Path(args.store or tempfile.mkdtemp(prefix="ringlog-api-bench-"))
    url = f"chdb://{workdir}"
    database = "apibench"
    started = time.perf_counter()
    with ClickHouseStore(url, database) as store:
        store.migrate()
        rows = synthesize(store, args.calls)
        key = KeyRegistry(store).create(project_id(0), Role.OWNER, [], None, "bench")[1]
        item_ids = [
            str(r[0])
            for r in store.query(
                f"SELECT id FROM {database}.incoming_call_log_item WHERE project_id = %(p)s "
                "ORDER BY rand() LIMIT 1000",
                {"p": project_id(0)},
            )[1]
        ]
    print(f"store: {rows} in {time.perf_counter() - started:.1f}s at {workdir}", file=sys.stderr)

    settings = Settings(
        kafka_brokers=brokers,
        clickhouse_url=url,
        database=database,
        http_port=args.port,
        topic="ringlog-api-bench",
    )
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    serving = threading.Thread(
        target=loop.run_until_complete, args=(serve_api(settings, stop),), daemon=True
    )
    serving.start()
    base = f"http://127.0.0.1:{args.port}"
    client = httpx.Client(
        base_url=base, timeout=120, headers={"ApiKey": key, "Authorization": f"Bearer {key}"}
    )
    for _ in range(200):
        try:
            if client.get("/ready").status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)

    sql_store = ClickHouseStore(url, database)  # a second client on the same store, same process
    scope = {"p": project_id(0)}
    item = f"{database}.incoming_call_log_item"
    parent = f"{database}.incoming_call_log"
    cdr = f"{database}.cdr"
    filtered_where = "project_id = %(p)s AND status = 'Completed' AND dial_duration_in_seconds > 30"
    queries: list[tuple[str, Callable[[int], httpx.Response], list[str]]] = [
        (
            "items get-list (default)",
            lambda i: client.post("/api/incoming-call-log-item/get-list", json={}),
            [
                f"SELECT count() FROM {item} FINAL WHERE project_id = %(p)s",
                f"SELECT id FROM {item} FINAL WHERE project_id = %(p)s "
                "ORDER BY created_at DESC, toString(id) LIMIT 10",
            ],
        ),
        (
            "items get-list (filtered + sorted)",
            lambda i: client.post(
                "/api/incoming-call-log-item/get-list",
                json={
                    "query": {
                        "status": "Completed",
                        "dialDurationInSeconds": {"_type": "GreaterThan", "value": 30},
                    },
                    "select": {
                        "status": True,
                        "userPhoneNumber": True,
                        "dialDurationInSeconds": True,
                        "callCostInUSDCents": True,
                        "startedAt": True,
                    },
                    "sort": {"dialDurationInSeconds": "DESC"},
                    "limit": 50,
                },
            ),
            [
                f"SELECT count() FROM {item} FINAL WHERE {filtered_where}",
                "SELECT id, status, user_phone_number, dial_duration_in_seconds, "
                f"call_cost_in_usd_cents, started_at FROM {item} FINAL WHERE {filtered_where} "
                "ORDER BY dial_duration_in_seconds DESC, toString(id) LIMIT 50",
            ],
        ),
        (
            "incoming-call-log count",
            lambda i: client.post(
                "/api/incoming-call-log/count", json={"query": {"status": "Completed"}}
            ),
            [
                f"SELECT count() FROM {parent} FINAL "
                "WHERE project_id = %(p)s AND status = 'Completed'"
            ],
        ),
        (
            "item get-item",
            lambda i: client.get(
                f"/api/incoming-call-log-item/{item_ids[i % len(item_ids)]}/get-item"
            ),
            [f"SELECT id FROM {item} FINAL WHERE project_id = %(p)s AND id = %(id)s LIMIT 1"],
        ),
        (
            "calllogs (filter + orderby)",
            lambda i: client.get(
                "/api/calllogs",
                params={"filter": "direction eq 'INBOUND_CALL'", "orderby": "started_at desc"},
            ),
            [
                f"SELECT count() FROM {cdr} FINAL WHERE project_id = %(p)s "
                "AND direction = 'INBOUND_CALL'",
                f"SELECT * FROM {cdr} FINAL WHERE project_id = %(p)s "
                "AND direction = 'INBOUND_CALL' ORDER BY started_at DESC, cdr_id LIMIT 100",
            ],
        ),
    ]
    figures: list[Figure] = []
    for name, request, statements in queries:
        api_times, last = timed(request, args.requests)
        if last.status_code != 200:
            raise SystemExit(f"{name}: {last.status_code} {last.text[:300]}")

        def raw(i: int, statements: list[str] = statements) -> int:
            params = {**scope, "id": item_ids[i % len(item_ids)]}
            return sum(len(sql_store.query(s, params)[1]) for s in statements)

        sql_times, _ = timed(raw, args.requests)
        body = last.json()
        returned = len(body.get("data", body.get("items", [])) or [body])
        figures.append(
            Figure(
                name,
                round(p(api_times, 0.5), 2),
                round(p(api_times, 0.99), 2),
                round(1000 / statistics.fmean(api_times), 1),
                round(p(sql_times, 0.5), 2),
                round(p(sql_times, 0.99), 2),
                returned,
            )
        )
        print(f"  {name}: done", file=sys.stderr)

    def burst(_: int) -> None:
        with httpx.Client(base_url=base, timeout=120, headers={"ApiKey": key}) as own:
            for _ in range(args.requests // args.clients + 1):
                own.post("/api/incoming-call-log-item/get-list", json={})

    began = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(burst, range(args.clients)))
    concurrent_rps = (
        args.clients * (args.requests // args.clients + 1) / (time.perf_counter() - began)
    )

    client.close()
    sql_store.close()
    loop.call_soon_threadsafe(stop.set)
    serving.join(timeout=60)
    return {
        "rows": rows,
        "requests_per_query": args.requests,
        "figures": [{**asdict(f), "api_over_sql_p50": round(f.ratio, 2)} for f in figures],
        "concurrent_clients": args.clients,
        "concurrent_rps_default_list": round(concurrent_rps, 1),
    }


def print_report(result: dict[str, Any]) -> None:
    print(f"rows: {result['rows']}; {result['requests_per_query']} requests per query")
    columns = ("API p50", "API p99", "API r/s", "SQL p50", "SQL p99", "API/SQL")
    header = f"{'query':38} " + " ".join(f"{c:>8}" for c in columns)
    print(header)
    print("-" * len(header))
    for f in result["figures"]:
        print(
            f"{f['name']:38} {f['api_p50_ms']:>8.2f} {f['api_p99_ms']:>8.2f} {f['api_rps']:>8.1f} "
            f"{f['sql_p50_ms']:>8.2f} {f['sql_p99_ms']:>8.2f} {f['api_over_sql_p50']:>8.2f}"
        )
    print(
        f"default get-list with {result['concurrent_clients']} concurrent clients: "
        f"{result['concurrent_rps_default_list']} requests/s"
    )
    print("(times in ms; API/SQL = API p50 over raw SQL p50 in the same run)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=1_000_000, help="incoming calls (1000000)")
    parser.add_argument("--requests", type=int, default=200, help="requests per query (200)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent clients (4)")
    parser.add_argument("--brokers", default=None, help="Kafka (default: start the local one)")
    parser.add_argument("--port", type=int, default=18421, help="HTTP port for the API")
    parser.add_argument("--store", default=None, help="chDB directory (default: a fresh one)")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    return parser


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    result = run(args)
    print_report(result)
    if args.json:
        print(orjson.dumps(result).decode())
    return result


if __name__ == "__main__":
    main()
