"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import settings

# No per-example deadline in any property test: speed is measured by the benchmarks, never
# asserted in tests, and on a shared machine under load hypothesis's 200 ms deadline made a
# property test of test_metrics.py fail once; many tests had already opted out one by one.
settings.register_profile("ringlog", deadline=None)
settings.load_profile("ringlog")

# Let `pytest` (not only `python -m pytest`) import the project's packages from a checkout.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)


@pytest.fixture(scope="session")
def chdb_store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One chDB data path for the whole session (chDB allows one path per process).

    Tests isolate themselves by database name, not by path.
    """
    path = tmp_path_factory.mktemp("chdb-store")
    return f"chdb://{path}"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """The local Apache Kafka broker (deploy/kafka.sh), started once if it is not running."""
    from devtools.kafka_local import kafka_up

    return kafka_up()
