"""Property-based tests of the query APIs from their own OpenAPI document: schemathesis (its
CLI, every check but "schema-valid data is accepted") against a live worker. Generated
requests, valid and invalid, for every operation: never a 5xx, every answer with a documented
status, content type, headers and body schema, undeclared methods answered 405 with `Allow`.

`positive_data_acceptance` is left out on purpose: the document cannot say that an item of
another project is a 404 or that a read-only resource refuses writes (422), so schema-valid
requests are legitimately refused.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.live_api import live_api

pytestmark = pytest.mark.kafka

EXAMPLES_PER_OPERATION = 30
SEED = int(os.environ.get("RINGLOG_SCHEMATHESIS_SEED", "1"))


def test_schemathesis_finds_no_failure(
    kafka_bootstrap: str, chdb_store_url: str, tmp_path: Path
) -> None:
    report = tmp_path / "schemathesis.json"
    with live_api(kafka_bootstrap, chdb_store_url, calls=60) as api:
        key = api.keys[api.projects[0]]["ProjectOwner"]
        run = subprocess.run(
            [
                str(Path(sys.executable).with_name("schemathesis")),
                "run",
                f"{api.base}/openapi.json",
                "--header",
                f"ApiKey: {key}",
                "--header",
                f"Authorization: Bearer {key}",
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                str(EXAMPLES_PER_OPERATION),
                "--seed",
                str(SEED),
                "--report",
                "json",
                "--report-json-path",
                str(report),
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
        )
        # the worker still answers afterwards
        assert api.call("GET", "/health").status_code == 200
    summary = json.loads(report.read_text())
    assert run.returncode == 0, run.stdout[-8000:]
    assert summary["failures"] == [] and summary["errors"] == []
    assert summary["operations"]["tested"] == summary["operations"]["total"] >= 38
    assert summary["test_cases"]["generated"] >= 1000
