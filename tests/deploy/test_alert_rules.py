"""Prometheus alert rules (promtool check + unit tests) and the Grafana dashboard: both only
use metrics the worker really exports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from worker.service.lifecycle import worker_metrics

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "ringlog-alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "ringlog-alerts.test.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "ringlog-dashboard.json"
METRIC = re.compile(r"\bringlog_[a-z0-9_]+\b")


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is missing in CI: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool not installed (apt-get install prometheus); .ci/run installs it")
    return path


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args, cwd=RULES.parent, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_check_rules() -> None:
    result = _run(_promtool(), "check", "rules", RULES.name)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_pass() -> None:
    result = _run(_promtool(), "test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, result.stdout + result.stderr


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def test_every_rule_has_runbook_annotations_and_tests() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    for rule in _rules():
        name = rule["alert"]
        annotations = rule["annotations"]
        assert annotations["summary"].strip(), name
        for part in ("Meaning:", "Check:", "Do:"):
            assert part in annotations["description"], (name, part)
        assert name in firing, f"{name} has no firing test case"
        assert name in quiet, f"{name} has no not-firing test case"


def _exported_names() -> set[str]:
    names: set[str] = set()
    for metric in worker_metrics().registry.collect():
        if metric.type != "counter":
            names.add(metric.name)
        for sample in metric.samples:
            names.add(sample.name)
        if metric.type == "counter":  # collect() names a counter without its _total
            names.add(f"{metric.name}_total")
        if metric.type == "histogram":
            names |= {f"{metric.name}_{s}" for s in ("bucket", "sum", "count")}
    return names


def _dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def test_dashboard_structure() -> None:
    dash = _dashboard()
    assert 30 <= dash["schemaVersion"] <= 45
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in panels:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip(), panel["title"]
        for key in ("x", "y", "w", "h"):
            assert isinstance(panel["gridPos"][key], int)
    titles = " | ".join(p["title"].lower() for p in panels)
    for wanted in ("lag per partition", "event-time lag", "throughput in", "throughput out"):
        assert wanted in titles
    for wanted in ("insert latency", "dead letters", "open calls", "last commit age"):
        assert wanted in titles
    exprs = " ".join(t["expr"] for p in panels for t in p["targets"])
    for quantile in ("0.5", "0.95", "0.99"):
        assert f"histogram_quantile({quantile}, " in exprs


def test_dashboard_and_alerts_use_only_exported_metrics() -> None:
    exported = _exported_names()
    dashboard_exprs = [t["expr"] for p in _dashboard()["panels"] for t in p["targets"]]
    rule_exprs = [str(rule["expr"]) for rule in _rules()]
    used = {name for expr in dashboard_exprs + rule_exprs for name in METRIC.findall(expr)}
    assert used, "no ringlog_* metric found"
    missing = sorted(used - exported)
    assert not missing, f"not exported by the worker's /metrics: {missing}"
    # and the dashboard covers the core series
    for name in (
        "ringlog_consumer_lag_messages",
        "ringlog_event_lag_seconds",
        "ringlog_events_total",
        "ringlog_rows_written_total",
        "ringlog_clickhouse_insert_seconds_bucket",
        "ringlog_dead_letters_total",
        "ringlog_open_calls",
        "ringlog_last_commit_timestamp_seconds",
    ):
        assert any(name in expr for expr in dashboard_exprs), name
