"""WorkerProcess: `ringlog worker` as a child process (start, SIGKILL, stop, its HTTP
endpoints), free ports, and the tail of the workers' logs."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from devtools.fault_harness.setup import ROOT, Setup


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class WorkerProcess:
    """`ringlog worker` as a child process."""

    def __init__(self, setup: Setup, log_dir: Path) -> None:
        self.setup = setup
        self.port = free_port()
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"worker-{self.port}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            self.setup.worker_command(),
            env=self.setup.env(self.port),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def kill(self) -> None:
        """SIGKILL: no shutdown hook, no final commit, a batch possibly half written."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def stop(self) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                return self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                return self.proc.wait(10)
        return self.proc.returncode

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def http(self, path: str, body: bytes | None = None, timeout: float = 30) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                status: int = response.status
                return status, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def query(self, sql: str) -> list[dict[str, Any]]:
        status, body = self.http("/query", sql.encode())
        if status != 200:
            raise AssertionError(f"/query failed ({status}): {body[:500]!r}")
        data = orjson.loads(body)
        return [dict(zip(data["columns"], row, strict=True)) for row in data["rows"]]

    def wait_ready(self, limit_s: float = 60) -> None:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            if not self.alive():
                raise AssertionError(f"worker exited with {self.proc and self.proc.returncode}")
            try:
                status, _ = self.http("/ready", timeout=2)
                if status == 200:
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise AssertionError("worker not ready in time")


def log_tail(log_dir: Path, lines: int = 30) -> str:
    """The last lines of every worker log in `log_dir` (for assertion messages)."""
    parts = []
    for path in sorted(log_dir.glob("worker-*.log")):
        text = path.read_text(errors="replace").splitlines()[-lines:]
        parts.append(f"---- {path.name}\n" + "\n".join(text))
    return "\n".join(parts)
