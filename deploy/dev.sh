#!/usr/bin/env bash
# One entry point for a fresh checkout: installs ringlog (and native/, with cargo) into .venv, then
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
  ensure_native
  export PATH="$VENV/bin:$PATH"
}

# ringlog_native, the decoder's fast path in Rust (native/, native/README.md): built and
# installed (not editable: its .pyi and py.typed go to site-packages) when it is missing or a
# source under native/ is newer than the last build. Without cargo the worker still works,
# with the pure-Python validator; in CI (CI=true) a missing cargo is an error. Cargo builds in
# $CARGO_TARGET_DIR if set, else in native/target (gitignored), so rebuilds are incremental.
ensure_native() {
  local stamp="$VENV/.ringlog-native-installed"
  local sources=(native/src native/Cargo.toml native/Cargo.lock native/pyproject.toml
                 native/ringlog_native.pyi)
  local installed=false
  if "$VENV/bin/python" -c 'import importlib.util as u, sys; sys.exit(not u.find_spec("ringlog_native"))'; then
    installed=true
  fi
  if [[ $installed == true && -f "$stamp" &&
        -z "$(find "${sources[@]}" -newer "$stamp" -print -quit)" ]]; then
    return 0
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    local message="cargo not found: ringlog_native (native/) is not built, so the worker uses the pure-Python validator (same results, slower); install Rust with rustup (https://rustup.rs) and rerun"
    if [[ $installed == true ]]; then
      message="cargo not found: ringlog_native is not rebuilt from native/ (the build installed earlier stays in use); install Rust with rustup (https://rustup.rs) and rerun"
    fi
    if [[ "${CI:-}" =~ ^[Tt][Rr][Uu][Ee]$ ]]; then
      echo "==> error: $message (CI must build it)" >&2
      exit 1
    fi
    echo "==> warning: $message" >&2
    return 0
  fi
  echo "==> building ringlog_native from native/ with cargo (the first build takes 30-60 s)"
  # pip -v keeps cargo's output; the log is shown only on failure. The stamp is taken before
  # the build, so a source edited during it is rebuilt next time.
  local log="$VENV/install-native.log"
  touch "$stamp.new"
  if ! "$VENV/bin/python" -m pip install -v ./native >"$log" 2>&1; then
    cat "$log" >&2
    echo "==> building ringlog_native failed (full output above, also in $log)" >&2
    exit 1
  fi
  mv "$stamp.new" "$stamp"
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
