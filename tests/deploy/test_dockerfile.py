"""deploy/docker/Dockerfile, parsed (hadolint is not packaged for Debian, and CI has no Docker):
multi-stage, a pinned slim Python 3.11 base, only the wheels in the runtime (ringlog's and the
native fast path's, compiled in the builder by a pinned Rust toolchain that stays there),
non-root, exec-form entrypoint so SIGTERM reaches the worker, a HEALTHCHECK on /health, OCI
labels."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from dockerfile_parse import DockerfileParser

from worker.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"
BUILD_TOOLS = re.compile(r"\b(apt-get|apt|apk|gcc|g\+\+|make|build-essential|curl|wget)\b")
RUST_TOOLS = re.compile(r"\b(cargo|rustc|rustup|rustup-init|maturin|RUSTUP_HOME|CARGO_HOME)\b")
# native/Cargo.toml's rust-version (Option::is_none_or); Cargo.lock version 4 needs cargo 1.78.
OLDEST_RUST = (1, 82)


def _instructions() -> list[dict[str, Any]]:
    parser = DockerfileParser(path=str(DOCKERFILE))
    return [dict(i) for i in parser.structure]


def _stages(instructions: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    stages: list[list[dict[str, Any]]] = []
    for ins in instructions:
        if ins["instruction"] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(ins)
    return stages


def _base_image() -> str:
    args = [i["value"] for i in _instructions() if i["instruction"] == "ARG"]
    value = next(a for a in args if a.startswith("PYTHON_IMAGE="))
    return str(value.split("=", 1)[1])


def test_base_is_a_pinned_slim_python_311() -> None:
    # An exact patch release, never a floating tag like python:3.11 or :latest.
    assert re.fullmatch(r"python:3\.11\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", _base_image())


def test_two_stages_builder_then_runtime_on_the_same_base() -> None:
    stages = _stages(_instructions())
    froms = [stage[0]["value"] for stage in stages]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    builder, runtime = stages
    assert any("pip wheel" in i["value"] for i in builder if i["instruction"] == "RUN")
    # The runtime copies no sources: it installs only the builder's wheels, offline.
    assert not [i for i in runtime if i["instruction"] in ("COPY", "ADD")]
    runs = [i["value"] for i in runtime if i["instruction"] == "RUN"]
    assert any("from=builder" in r and "--no-index" in r and "ringlog" in r for r in runs)


def test_runtime_installs_no_build_tools() -> None:
    runtime = _stages(_instructions())[-1]
    for ins in runtime:
        if ins["instruction"] == "RUN":
            assert not BUILD_TOOLS.search(ins["value"]), ins["value"]


def _runs(stage: list[dict[str, Any]]) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == "RUN"]


def test_the_native_wheel_is_built_in_the_builder_and_installed_in_the_runtime() -> None:
    instructions = _instructions()
    builder, runtime = _stages(instructions)
    copies = [i["value"].split() for i in builder if i["instruction"] == "COPY"]
    assert ["native", "./native"] in copies
    assert any(re.search(r"pip wheel .*--wheel-dir /wheels \./native\b", r) for r in _runs(builder))
    # One pinned release, the minimal profile, from a checksummed rustup-init.
    rustup = next(r for r in _runs(builder) if "rustup-init" in r)
    assert "--profile minimal" in rustup and "sha256sum -c" in rustup
    assert '--default-toolchain "$RUST_VERSION"' in rustup
    args = [i["value"] for i in builder if i["instruction"] == "ARG"]
    version = next(a.split("=", 1)[1] for a in args if a.startswith("RUST_VERSION="))
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert tuple(int(p) for p in version.split(".")[:2]) >= OLDEST_RUST
    # The runtime installs both wheels, offline, from the builder's /wheels.
    installs = [r for r in _runs(runtime) if "from=builder" in r and "--no-index" in r]
    assert len(installs) == 1
    packages = installs[0].split("--find-links /wheels", 1)[1].split("&&", 1)[0].split()
    assert packages == ["ringlog", "ringlog-native"]
    # The build context holds native/ but not its local build output.
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert "!native/" in lines
    assert "native/target/" in lines[lines.index("!native/") :]


def test_no_rust_toolchain_reaches_the_runtime() -> None:
    builder, runtime = _stages(_instructions())
    assert any(RUST_TOOLS.search(r) for r in _runs(builder))  # the check below can fail
    # A fresh stage from the base image, never from the builder (whose ENV has the toolchain).
    assert "builder" not in runtime[0]["value"].split(" AS ")[0]
    for ins in runtime:
        if ins["instruction"] in ("RUN", "ENV", "ARG", "COPY", "ADD"):
            assert not RUST_TOOLS.search(ins["value"]), ins["value"]
    # What the runtime takes from the builder: its /wheels, bind-mounted (no layer keeps it).
    sources = [
        option.split("source=", 1)[1].split(",", 1)[0]
        for r in _runs(runtime)
        for option in r.split()
        if option.startswith("--mount=") and "from=builder" in option
    ]
    assert sources == ["/wheels"]


def test_runs_as_a_numeric_non_root_user() -> None:
    runtime = _stages(_instructions())[-1]
    users = [i["value"] for i in runtime if i["instruction"] == "USER"]
    assert users, "no USER in the runtime stage"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, users[-1]


def _exec_form(value: str) -> list[str]:
    parsed = json.loads(value)  # shell form is not JSON: the test fails
    assert isinstance(parsed, list) and all(isinstance(p, str) for p in parsed)
    return parsed


def test_exec_form_entrypoint_ringlog_with_worker_by_default() -> None:
    runtime = _stages(_instructions())[-1]
    last = {i["instruction"]: i["value"] for i in runtime}
    assert _exec_form(last["ENTRYPOINT"]) == ["ringlog"]
    assert _exec_form(last["CMD"]) == ["worker"]


def test_healthcheck_asks_health_on_the_default_port_without_curl() -> None:
    runtime = _stages(_instructions())[-1]
    checks = [i["value"] for i in runtime if i["instruction"] == "HEALTHCHECK"]
    assert len(checks) == 1
    command = _exec_form(checks[0].split("CMD", 1)[1].strip())
    assert command[:2] == ["python", "-c"]
    assert "/health" in command[2] and "urllib.request" in command[2]
    default_port = re.search(r"'RINGLOG_HTTP_PORT', '(\d+)'", command[2])
    assert default_port and int(default_port.group(1)) == Settings().http_port


def test_oci_labels() -> None:
    labels = DockerfileParser(path=str(DOCKERFILE)).labels
    for key in ("title", "description", "version", "revision"):
        assert labels.get(f"org.opencontainers.image.{key}"), key


def test_dockerignore_keeps_the_context_to_the_wheel_sources() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    assert lines[lines.index("*") :][:1] == ["*"]
    kept = {line[1:].rstrip("/") for line in lines if line.startswith("!")}
    copied = {
        part.rstrip("/").removeprefix("./")
        for i in _instructions()
        if i["instruction"] == "COPY"
        for part in i["value"].split()[:-1]
    }
    assert copied <= kept, copied - kept


@pytest.mark.parametrize(
    "bad",
    ["ENTRYPOINT ringlog", "CMD worker"],
)
def test_a_shell_form_entrypoint_would_fail(bad: str) -> None:
    with pytest.raises(json.JSONDecodeError):
        _exec_form(bad.split(" ", 1)[1])
