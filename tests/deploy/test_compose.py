"""deploy/compose/docker-compose.yml, offline: the compose JSON Schema (check-jsonschema's
vendored compose-spec) and Compose v2's own `config -q` (references, secrets, depends_on),
plus what the stack must do for ringlog: one group of 2 workers, a stop grace above the
worker's batch grace, the migrate one-shot first, the alert rules and dashboard from their
one copy in deploy/, and a Prometheus config promtool accepts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.tools import ROOT, compose_binary, run, tool
from worker.gateway.config import load_gateway_config
from worker.service.lifecycle import STOP_GRACE_SECONDS

COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def _config_q(path: Path) -> tuple[int, str]:
    result = run(compose_binary(), "-f", str(path), "config", "-q", cwd=path.parent)
    return result.returncode, result.stdout + result.stderr


def test_compose_json_schema() -> None:
    result = run(tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_v2_config_q() -> None:
    code, output = _config_q(COMPOSE)
    assert code == 0, output


def test_compose_v2_config_q_fails_on_an_undefined_dependency(tmp_path: Path) -> None:
    # The exit code is really read: a depends_on on a missing service must fail.
    for item in COMPOSE_DIR.iterdir():
        if item.is_dir():
            shutil.copytree(item, tmp_path / item.name)
        else:
            shutil.copy(item, tmp_path / item.name)
    broken = _compose()
    broken["services"]["worker"]["depends_on"]["nowhere"] = {"condition": "service_started"}
    (tmp_path / "docker-compose.yml").write_text(yaml.safe_dump(broken))
    code, output = _config_q(tmp_path / "docker-compose.yml")
    assert code != 0, output


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def test_workers_two_replicas_one_group_stop_grace_above_batch_grace() -> None:
    services = _compose()["services"]
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["command"] == ["worker"]
    assert _seconds(worker["stop_grace_period"]) >= STOP_GRACE_SECONDS + 10
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "gateway"):
        assert services[name]["command"] == [name]


def test_kafka_is_the_official_image_in_kraft_mode() -> None:
    kafka = _compose()["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert kafka["environment"]["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == 1
    clickhouse = _compose()["services"]["clickhouse"]
    assert "healthcheck" in clickhouse and "healthcheck" in kafka


def test_prometheus_and_grafana_mount_the_one_copy_in_deploy() -> None:
    services = _compose()["services"]
    mounts = services["prometheus"]["volumes"] + services["grafana"]["volumes"]
    sources = {(COMPOSE_DIR / m.split(":")[0]).resolve() for m in mounts if m.startswith(".")}
    assert (ROOT / "deploy" / "prometheus" / "ringlog-alerts.yml").resolve() in sources
    assert (ROOT / "deploy" / "grafana" / "ringlog-dashboard.json").resolve() in sources
    rules_target = next(m.split(":")[1] for m in mounts if "ringlog-alerts.yml" in m)
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    assert config["rule_files"] == [rules_target]
    # The alert rules select the workers by job "ringlog".
    assert "ringlog" in {job["job_name"] for job in config["scrape_configs"]}
    dash_target = next(m.split(":")[1] for m in mounts if "ringlog-dashboard.json" in m)
    provider = yaml.safe_load(
        (COMPOSE_DIR / "grafana/provisioning/dashboards/ringlog.yml").read_text()
    )["providers"][0]
    assert Path(dash_target).parent == Path(provider["options"]["path"])


def test_promtool_accepts_the_prometheus_config(tmp_path: Path) -> None:
    config = yaml.safe_load((COMPOSE_DIR / "prometheus.yml").read_text())
    config["rule_files"] = [str(ROOT / "deploy" / "prometheus" / "ringlog-alerts.yml")]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run(tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_secrets_and_the_sample_routing_exist_and_load() -> None:
    compose = _compose()
    for name, secret in compose["secrets"].items():
        assert (COMPOSE_DIR / secret["file"]).read_text().strip(), name
    routing = COMPOSE_DIR / compose["configs"]["gateway_routing"]["file"]
    config = load_gateway_config(routing)  # the gateway would start with it
    assert config.twilio and config.portsip and config.freeswitch
