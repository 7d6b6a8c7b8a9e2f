"""Fault harness: the real worker in separate processes, real Kafka, real ClickHouse engine.

`WorkerProcess` runs `ringlog worker` as a child process (and kills it with SIGKILL when told).
`expected_rows` computes with the pure core the rows that a set of produced messages defines;
`compare` reads the rows back with FINAL through a worker's /query and prints every mismatch
row by row. Used by tests/faults/ (small, in CI) and benchmarks/soak.py (long runs).

Modules:

- `setup`: Setup (one isolated run: its topics, group, database, the workers' environment)
  and ROOT (the checkout the workers run in).
- `worker_process`: WorkerProcess (start, SIGKILL, stop, /query, /ready), `free_port`,
  `log_tail`.
- `kafka`: `produce_all`, `committed_and_end`, `wait_drained`, LocalBroker (a private broker).
- `expected`: `expected_rows` from the pure core, `compare` against the rows read back with
  FINAL, `event_counts`, `totals`, `verify` and ZERO_RESULT.
- `crashes`: `crash_run` (produce while killing the worker, then the exact-rows result).
- `probes`: `health`, `metric` (a worker's /health and /metrics) and `wait_until`.
"""

from devtools.fault_harness.crashes import crash_run
from devtools.fault_harness.expected import (
    NOT_COMPARED,
    ZERO_RESULT,
    compare,
    event_counts,
    expected_rows,
    messages_of,
    totals,
    verify,
)
from devtools.fault_harness.kafka import LocalBroker, committed_and_end, produce_all, wait_drained
from devtools.fault_harness.probes import health, metric, wait_until
from devtools.fault_harness.setup import ROOT, Setup
from devtools.fault_harness.worker_process import WorkerProcess, free_port, log_tail

__all__ = [
    "NOT_COMPARED",
    "ROOT",
    "ZERO_RESULT",
    "LocalBroker",
    "Setup",
    "WorkerProcess",
    "committed_and_end",
    "compare",
    "crash_run",
    "event_counts",
    "expected_rows",
    "free_port",
    "health",
    "log_tail",
    "messages_of",
    "metric",
    "produce_all",
    "totals",
    "verify",
    "wait_drained",
    "wait_until",
]
