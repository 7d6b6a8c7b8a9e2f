#!/usr/bin/env bash
# One entry point for a fresh checkout: installs what ringlog needs into .venv, then
#   bash deploy/dev.sh demo   -> local Kafka + worker + embedded ClickHouse + simulated calls
#   bash deploy/dev.sh test   -> local Kafka + the whole test suite (pure, pipeline, faults)
#   bash deploy/dev.sh lint   -> ruff, mypy --strict and the import contracts (lint-imports)
#   bash deploy/dev.sh validate -> offline checks of deploy/ (image, Compose, Kubernetes, parity)
#   bash deploy/dev.sh shell  -> a shell with the venv active (ringlog on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV="${RINGLOG_VENV:-$ROOT/.venv}"
PY="${PYTHON:-python3}"

ensure_venv() {
  local stamp="$VENV/.ringlog-installed"
  if [[ ! -x "$VENV/bin/python" ]]; then
    echo "==> creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
  fi
  # Reinstall when pyproject.toml changed since the last install.
  if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" ]]; then
    echo "==> installing ringlog and its dependencies (first run takes a minute)"
    # pip's and setuptools' chatter (build warnings) goes to a log, shown only on failure.
    local log="$VENV/install.log"
    if ! { "$VENV/bin/python" -m pip install --quiet --upgrade pip &&
           "$VENV/bin/python" -m pip install --quiet -e ".[dev]"; } >"$log" 2>&1; then
      cat "$log" >&2
      echo "==> installing failed (full output above, also in $log)" >&2
      exit 1
    fi
    touch "$stamp"
  fi
  export PATH="$VENV/bin:$PATH"
}

cmd="${1:-help}"
shift || true
case "$cmd" in
  demo)
    ensure_venv
    exec python -m devtools demo "$@"
    ;;
  test)
    ensure_venv
    bash deploy/kafka.sh up
    exec python -m pytest "$@"
    ;;
  lint)
    ensure_venv
    ruff check .
    ruff format --check .
    mypy
    lint-imports --no-cache
    ;;
  validate)
    ensure_venv
    python -m devtools.prometheus_rule --check
    exec python -m pytest tests/deploy "$@"
    ;;
  shell)
    ensure_venv
    exec "${SHELL:-bash}"
    ;;
  *)
    sed -n '2,7p' "$0" | sed 's/^# \{0,1\}//'
    ;;
esac
