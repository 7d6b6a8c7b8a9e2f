"""Setup: one isolated run (its own topics, group, database and store) and the environment
its worker child processes run with."""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

# The checkout holding devtools/ (this file is devtools/fault_harness/setup.py): the worker
# child processes run there (cwd and PYTHONPATH), and deploy/kafka.sh is found from it.
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Setup:
    """One isolated run: its own topics, group, database and store."""

    brokers: str
    store_url: str
    name: str = field(default_factory=lambda: f"fault-{uuid.uuid4().hex[:10]}")
    rates_file: Path | None = None
    extra_env: dict[str, str] = field(default_factory=dict)
    # With a path: workers run with the store unavailable while that file exists
    # (`python -m devtools worker --store-down-while`, the same lifecycle as `ringlog worker`).
    store_down_file: Path | None = None

    def worker_command(self) -> list[str]:
        if self.store_down_file is None:
            return [sys.executable, "-m", "worker.cli", "worker"]
        return [
            sys.executable, "-m", "devtools", "worker",
            "--store-down-while", str(self.store_down_file),
        ]  # fmt: skip

    @property
    def topic(self) -> str:
        return self.name

    @property
    def dlq_topic(self) -> str:
        return f"{self.name}.dlq"

    @property
    def database(self) -> str:
        return self.name.replace("-", "_")

    def env(self, http_port: int) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            {
                "RINGLOG_KAFKA_BROKERS": self.brokers,
                "RINGLOG_TOPIC": self.topic,
                "RINGLOG_DLQ_TOPIC": self.dlq_topic,
                "RINGLOG_GROUP_ID": self.name,
                "RINGLOG_CLICKHOUSE_URL": self.store_url,
                "RINGLOG_DATABASE": self.database,
                "RINGLOG_HTTP_PORT": str(http_port),
                "RINGLOG_LOG_FORMAT": "json",
                "RINGLOG_LOG_LEVEL": "WARNING",
                # Timeout closes depend on which calls happen to be cached at a scan; the
                # fault tests compare everything else, so keep them out of the way.
                "RINGLOG_CALL_TIMEOUT": "100000h",
                "PYTHONPATH": str(ROOT),
            }
        )
        if self.rates_file is not None:
            env["RINGLOG_RATES_FILE"] = str(self.rates_file)
        env.update(self.extra_env)
        return env
