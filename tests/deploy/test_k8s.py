"""deploy/k8s, offline: rendered by devtools.kustomize_lite (the same objects as `kubectl
kustomize` where kubectl exists), core kinds by `kubernetes-validate --strict`, the CRD kinds
by the schemas vendored from datreeio/CRDs-catalog, the PrometheusRule equal to what
devtools.prometheus_rule generates from deploy/prometheus, and what the worker needs from
Kubernetes (grace above the batch grace, probes on the real endpoints, KEDA on the group)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from devtools import kustomize_lite, prometheus_rule
from tests.deploy.tools import ROOT, run, tool
from worker.service.lifecycle import STOP_GRACE_SECONDS
from worker.service.settings import Settings

K8S = ROOT / "deploy" / "k8s"
OVERLAYS = [K8S / "base", K8S / "overlays" / "example"]
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh/scaledobject_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh/triggerauthentication_v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com/servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com/prometheusrule_v1.json",
}
# The oldest Kubernetes minor still in wide support, and the newest the validator knows.
K8S_VERSIONS = ("1.30.0", "1.37.0")

Obj = dict[str, Any]


def _render(directory: Path) -> list[Obj]:
    return kustomize_lite.render(directory)


def _by_kind(objects: list[Obj], kind: str, name: str) -> Obj:
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"] == name)


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_validate_strict(directory: Path, version: str, tmp_path: Path) -> None:
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(yaml.safe_dump_all(_render(directory)))
    result = run(tool("kubernetes-validate"), "--strict", "-k", version, str(rendered))
    assert result.returncode == 0, result.stdout + result.stderr
    # Every core kind was really checked; only the CRD kinds are left to the schemas below.
    core = [o for o in _render(directory) if (o["apiVersion"], o["kind"]) not in CRD_SCHEMAS]
    assert result.stdout.count(" passed for resource ") == len(core), result.stdout


def test_kubernetes_validate_strict_rejects_a_misspelled_field(tmp_path: Path) -> None:
    worker = _by_kind(_render(K8S / "base"), "Deployment", "ringlog-worker")
    spec = worker["spec"]["template"]["spec"]
    spec["terminationGracePeriodSecond"] = spec.pop("terminationGracePeriodSeconds")
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(worker))
    result = run(tool("kubernetes-validate"), "--strict", str(tmp_path / "bad.yaml"))
    assert result.returncode != 0, result.stdout


def _crd_validator(obj: Obj) -> jsonschema.protocols.Validator:
    path = K8S / "crd-schemas" / CRD_SCHEMAS[(obj["apiVersion"], obj["kind"])]
    schema = json.loads(path.read_text())
    cls = jsonschema.validators.validator_for(schema)
    # Structure only: the patterns are Go RE2 (e.g. "^(?i)(abort|warn)?$"), not Python's re.
    meta_errors = [e.message for e in cls(cls.META_SCHEMA).iter_errors(schema)]
    assert not meta_errors, (path, meta_errors)
    return cls(schema)


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda p: p.name)
def test_crd_kinds_against_the_vendored_schemas(directory: Path) -> None:
    crds = [o for o in _render(directory) if (o["apiVersion"], o["kind"]) in CRD_SCHEMAS]
    assert {o["kind"] for o in crds} == {kind for _, kind in CRD_SCHEMAS}
    for obj in crds:
        errors = [e.message for e in _crd_validator(obj).iter_errors(obj)]
        assert not errors, (obj["kind"], errors)


def test_the_crd_schema_rejects_a_number_in_trigger_metadata() -> None:
    scaled = _by_kind(_render(K8S / "base"), "ScaledObject", "ringlog-worker")
    scaled["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 30000
    assert list(_crd_validator(scaled).iter_errors(scaled))


def test_kustomize_lite_matches_kubectl_kustomize() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: nothing to compare the offline renderer with")
    for directory in OVERLAYS:
        result = run(kubectl, "kustomize", str(directory))
        assert result.returncode == 0, result.stderr
        theirs = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(result.stdout)}
        ours = {(o["kind"], o["metadata"]["name"]): o for o in _render(directory)}
        assert ours == theirs


def test_kustomize_lite_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(kustomize_lite.KustomizeError, match="configMapGenerator"):
        kustomize_lite.render(tmp_path)
    with pytest.raises(kustomize_lite.KustomizeError, match="test failed"):
        kustomize_lite.apply_json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])


def test_prometheus_rule_is_generated_from_the_one_rules_file() -> None:
    committed = (K8S / "base" / "prometheusrule.yaml").read_text()
    rules = (ROOT / "deploy" / "prometheus" / "ringlog-alerts.yml").read_text()
    assert committed == prometheus_rule.render(rules), (
        "stale: run python -m devtools.prometheus_rule"
    )
    assert yaml.safe_load(committed)["spec"]["groups"] == yaml.safe_load(rules)["groups"]
    assert prometheus_rule.main(["--check"]) == 0


def test_promtool_checks_the_prometheus_rule_groups(tmp_path: Path) -> None:
    rule = yaml.safe_load((K8S / "base" / "prometheusrule.yaml").read_text())
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = run(tool("promtool"), "check", "rules", str(tmp_path / "rules.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def _container(deployment: Obj) -> Obj:
    container: Obj = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _env(objects: list[Obj], deployment: Obj) -> dict[str, str]:
    env: dict[str, str] = {}
    for source in _container(deployment).get("envFrom", []):
        env |= _by_kind(objects, "ConfigMap", source["configMapRef"]["name"])["data"]
    env |= {e["name"]: e["value"] for e in _container(deployment).get("env", [])}
    return env


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda p: p.name)
def test_worker_deployment(directory: Path) -> None:
    objects = _render(directory)
    worker = _by_kind(objects, "Deployment", "ringlog-worker")
    pod = worker["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= STOP_GRACE_SECONDS + 15
    container = _container(worker)
    assert container["args"] == ["worker"]
    port = next(p for p in container["ports"] if p["name"] == "http")
    env = _env(objects, worker)
    assert port["containerPort"] == int(env["RINGLOG_HTTP_PORT"]) == Settings().http_port
    assert container["startupProbe"]["httpGet"]["path"] == "/ready"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "http"
    # Measured peak RSS 964 MiB with a full default call cache (README "Performance"): the
    # request covers it with room.
    assert container["resources"]["requests"]["memory"] == "1536Mi"
    assert "cpu" not in container["resources"]["limits"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    pdb = _by_kind(objects, "PodDisruptionBudget", "ringlog-worker")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]


@pytest.mark.parametrize("directory", OVERLAYS, ids=lambda p: p.name)
def test_keda_scales_the_worker_on_its_group_and_topic(directory: Path) -> None:
    objects = _render(directory)
    worker = _by_kind(objects, "Deployment", "ringlog-worker")
    env = _env(objects, worker)
    scaled = _by_kind(objects, "ScaledObject", "ringlog-worker")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == worker["metadata"]["name"]
    assert 1 <= spec["minReplicaCount"] <= spec["maxReplicaCount"]
    (trigger,) = spec["triggers"]
    meta = trigger["metadata"]
    assert trigger["type"] == "kafka"
    assert meta["consumerGroup"] == env["RINGLOG_GROUP_ID"]
    assert meta["topic"] == env["RINGLOG_TOPIC"]
    assert meta["bootstrapServers"] == env["RINGLOG_KAFKA_BROKERS"]
    assert meta["offsetResetPolicy"] == "earliest"
    assert meta["allowIdleConsumers"] == "false"  # replicas capped at the partitions
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] >= 600
    assert behavior["scaleDown"]["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300}]
    auth = _by_kind(objects, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    assert auth["spec"]["secretTargetRef"]


def test_the_worker_rollout_never_adds_a_member_above_the_cap() -> None:
    worker = _by_kind(_render(K8S / "base"), "Deployment", "ringlog-worker")
    assert worker["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 0, "maxUnavailable": 1}


def test_api_and_gateway_deployments_services_and_scraping() -> None:
    objects = _render(K8S / "overlays" / "example")
    ports = {"ringlog-api": Settings().http_port, "ringlog-gateway": Settings().gateway_port}
    for name, port in ports.items():
        deployment = _by_kind(objects, "Deployment", name)
        service = _by_kind(objects, "Service", name)
        container = _container(deployment)
        assert container["args"] == [name.removeprefix("ringlog-")]
        assert container["ports"][0]["containerPort"] == port
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert container["livenessProbe"]["httpGet"]["path"] == "/health"
        assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    monitor = _by_kind(objects, "ServiceMonitor", "ringlog")
    scraped = [
        o
        for o in objects
        if o["kind"] == "Service" and monitor["spec"]["jobLabel"] in o["metadata"]["labels"]
    ]
    assert {s["metadata"]["name"] for s in scraped} == {
        "ringlog-worker",
        "ringlog-api",
        "ringlog-gateway",
    }
    # The alert rules select the workers as job "ringlog".
    worker_service = _by_kind(objects, "Service", "ringlog-worker")
    assert worker_service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == "ringlog"
    assert {e["port"] for e in monitor["spec"]["endpoints"]} == {"http"}
