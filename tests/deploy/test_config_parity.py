"""Configuration parity (issue 9, point 7): every RINGLOG_* variable the image, the Compose
stack and the Kubernetes manifests use is one the settings code reads, a `_FILE` variant is
one it really reads a secret from, and a value that restates a default equals the code's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from devtools import kustomize_lite
from tests.deploy.tools import ROOT
from worker.service import settings as settings_module
from worker.service.settings import SETTING_NAMES, Settings, load_settings, setting_name

NAME = re.compile(r"RINGLOG_[A-Z0-9_]+")
SECRET_FIELDS = sorted(settings_module._SECRETS)
# Read by _EnvironmentSource beside the fields: merged into an http(s) ClickHouse URL.
CLICKHOUSE_CREDENTIALS = ("RINGLOG_CLICKHOUSE_USER", "RINGLOG_CLICKHOUSE_PASSWORD")
PRODUCT = frozenset(
    {*SETTING_NAMES, *CLICKHOUSE_CREDENTIALS, "RINGLOG_CLICKHOUSE_PASSWORD_FILE"}
    | {f"{setting_name(field)}_FILE" for field in SECRET_FIELDS}
)
# Values a deployment sets on purpose, unlike the code's defaults (which suit one machine).
DEPLOYMENT_VALUES = frozenset(
    {
        "RINGLOG_KAFKA_BROKERS",  # the cluster's brokers, not localhost
        "RINGLOG_CLICKHOUSE_URL",  # a ClickHouse server, not the embedded chDB
        "RINGLOG_CLICKHOUSE_USER",
        "RINGLOG_HTTP_HOST",  # probes and scrapes come from outside the container
        "RINGLOG_GATEWAY_HOST",
        "RINGLOG_GATEWAY_CONFIG",  # the mounted routing file
        "RINGLOG_GATEWAY_PUBLIC_URL",
        "RINGLOG_LOG_FORMAT",  # JSON lines for the log shipper
    }
)

MANIFESTS = [
    ROOT / "deploy" / "docker" / "Dockerfile",
    *sorted((ROOT / "deploy" / "compose").rglob("*.yml")),
    *sorted((ROOT / "deploy" / "compose").rglob("*.yaml")),
    *sorted((ROOT / "deploy" / "k8s").rglob("*.yaml")),
]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def names_in(text: str) -> set[str]:
    """RINGLOG_* names; a pattern (`RINGLOG_KAFKA_*`) or a bare prefix names no variable."""
    found = set()
    for match in NAME.finditer(text):
        if match.group().endswith("_") or text[match.end() : match.end() + 1] == "*":
            continue
        found.add(match.group())
    return found


def _dev_only() -> set[str]:
    """What the local broker script, dev.sh and devtools read (README calls them dev tools)."""
    sources = [*(ROOT / "deploy").glob("*.sh"), *(ROOT / "devtools").rglob("*.py")]
    return {n for path in sources for n in names_in(path.read_text())} - PRODUCT


def test_the_scan_finds_names_and_ignores_patterns() -> None:
    text = "RINGLOG_TOPIC, RINGLOG_KAFKA_* and `RINGLOG_QUERY_TOKEN` (or `_FILE`), RINGLOG_"
    assert names_in(text) == {"RINGLOG_TOPIC", "RINGLOG_QUERY_TOKEN"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_manifests_name_only_settings_the_code_reads(path: Path) -> None:
    unknown = sorted(names_in(path.read_text()) - PRODUCT)
    assert not unknown, f"{path.relative_to(ROOT)} names variables ringlog does not read: {unknown}"


def test_the_manifests_use_settings_at_all() -> None:
    used = {n for path in MANIFESTS for n in names_in(path.read_text())}
    assert {"RINGLOG_KAFKA_BROKERS", "RINGLOG_GROUP_ID", "RINGLOG_QUERY_TOKEN_FILE"} <= used


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_name_only_settings_or_dev_tool_variables(path: Path) -> None:
    unknown = sorted(names_in(path.read_text()) - PRODUCT - _dev_only())
    assert not unknown, f"{path.relative_to(ROOT)} names unknown variables: {unknown}"


def test_a_misspelled_name_is_caught() -> None:
    assert names_in("RINGLOG_GROUPID: ringlog") - PRODUCT == {"RINGLOG_GROUPID"}


def test_every_file_variant_the_manifests_use_is_read(tmp_path: Path) -> None:
    used = {n for path in MANIFESTS for n in names_in(path.read_text())}
    variants = sorted(n for n in used if n.endswith("_FILE"))
    assert variants
    secret = tmp_path / "secret"
    secret.write_text("s3cret-from-a-mounted-file\n")
    for variant in variants:
        env = {variant: str(secret), "RINGLOG_CLICKHOUSE_URL": "http://ch:8123"}
        loaded = load_settings(env)
        if variant == "RINGLOG_CLICKHOUSE_PASSWORD_FILE":
            assert ":s3cret-from-a-mounted-file@" in loaded.clickhouse_url
        else:
            field = variant.removeprefix("RINGLOG_").removesuffix("_FILE").lower()
            assert loaded.secret(field) == "s3cret-from-a-mounted-file", variant


def _compose_env() -> list[tuple[str, dict[str, str]]]:
    found = []
    for path in (ROOT / "deploy" / "compose").glob("docker-compose*.yml"):
        data = yaml.safe_load(path.read_text())
        for name, service in data["services"].items():
            env = service.get("environment", {})
            found.append((f"compose {name}", {k: str(v) for k, v in env.items()}))
    return found


def _k8s_env() -> list[tuple[str, dict[str, str]]]:
    found = []
    for directory in (ROOT / "deploy" / "k8s" / "base", ROOT / "deploy" / "k8s" / "overlays"):
        for kustomization in [directory, *sorted(p for p in directory.iterdir() if p.is_dir())]:
            if not (kustomization / "kustomization.yaml").exists():
                continue
            for obj in kustomize_lite.render(kustomization):
                where = f"k8s {kustomization.name} {obj['kind']}/{obj['metadata']['name']}"
                if obj["kind"] == "ConfigMap":
                    found.append((where, dict(obj.get("data", {}))))
                pod: dict[str, Any] = obj.get("spec", {}).get("template", {}).get("spec", {})
                for container in pod.get("containers", []):
                    env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
                    found.append((where, env))
    return found


def test_restated_defaults_equal_the_codes() -> None:
    defaults = load_settings({})
    checked = 0
    for where, env in _compose_env() + _k8s_env():
        for name, value in env.items():
            if not name.startswith("RINGLOG_") or name in DEPLOYMENT_VALUES:
                continue
            if name.endswith("_FILE") or name not in SETTING_NAMES:
                continue
            field = name.removeprefix("RINGLOG_").lower()
            stated = getattr(load_settings({name: value}), field)
            assert stated == getattr(defaults, field), (
                f"{where}: {name}={value!r} but the code's default is {getattr(defaults, field)!r}"
                " (add it to DEPLOYMENT_VALUES with the reason if the difference is meant)"
            )
            checked += 1
    assert checked >= 10  # topic, group, ports, batch and cache sizes across the manifests


def test_settings_fields_and_names_agree() -> None:
    assert set(SETTING_NAMES) == {setting_name(f) for f in Settings.model_fields}
