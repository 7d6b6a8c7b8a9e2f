"""Storage per call, measured with the embedded engine: generated traffic through the worker's
own planner (decode, correlate, rows, call_event), written with the store, merged, then
ClickHouse's own compressed and uncompressed bytes per table (`system.parts`).

    python -m benchmarks.storage                 # 20000 calls
    python -m benchmarks.storage --calls 50000 --json

Prints rows, compressed bytes per row and bytes per million calls for every table: the
figures of docs/sizing.md. No Kafka is involved (the planner and the store are what the worker
runs; Kafka adds nothing to what is stored).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import timedelta
from typing import Any

import orjson

from devtools.planner_load import as_records, load
from devtools.traffic import generate_calls
from schemas.tables import ALL_TABLES
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.core.batch_plan import BatchPlanner
from worker.core.rates import load_rate_plan

BATCH = 20_000


def measure(calls: int, seed: int) -> dict[str, Any]:
    messages = as_records(generate_calls(calls, seed=seed, oversized=0))
    planner = BatchPlanner(load_rate_plan(None), timedelta(hours=4), 10 * calls)
    with tempfile.TemporaryDirectory() as path:
        store = ClickHouseStore(f"chdb://{path}", "storage")
        store.migrate()
        load(store, planner, messages, BATCH)
        for table in ALL_TABLES:
            store.command(f"OPTIMIZE TABLE storage.{table.name} FINAL")
        _, parts = store.query(
            "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes) "
            "FROM system.parts WHERE database = 'storage' AND active GROUP BY table"
        )
        store.close()
    tables = {}
    for part_table, part_rows, compressed, uncompressed in parts:
        rows_n, comp, raw = int(str(part_rows)), int(str(compressed)), int(str(uncompressed))
        if rows_n == 0:
            continue
        tables[str(part_table)] = {
            "rows": rows_n,
            "compressed_bytes_per_row": round(comp / rows_n, 1),
            "uncompressed_bytes_per_row": round(raw / rows_n, 1),
            "compressed_mib_per_million_calls": round(comp / calls * 1e6 / 2**20, 1),
        }
    total = sum(t["compressed_mib_per_million_calls"] for t in tables.values())
    return {
        "calls": calls,
        "messages": len(messages),
        "tables": tables,
        "compressed_mib_per_million_calls": round(total, 1),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls to generate (20000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = parser.parse_args(argv)
    result = measure(args.calls, args.seed)
    print(f"{result['calls']} calls, {result['messages']} messages")
    print(f"{'table':24} {'rows':>9} {'B/row (zst)':>12} {'B/row (raw)':>12} {'MiB/1M calls':>13}")
    for name, t in sorted(result["tables"].items()):
        print(
            f"{name:24} {t['rows']:>9} {t['compressed_bytes_per_row']:>12} "
            f"{t['uncompressed_bytes_per_row']:>12} {t['compressed_mib_per_million_calls']:>13}"
        )
    print(f"total: {result['compressed_mib_per_million_calls']} MiB per million calls")
    if args.json:
        print(orjson.dumps(result).decode())
    return result


if __name__ == "__main__":
    main()
