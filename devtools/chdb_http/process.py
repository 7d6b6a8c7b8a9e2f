"""The server as a subprocess: `spawn_server` starts `python -m devtools store serve` and waits
until it answers; `ServerProcess` stops it."""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass
class ServerProcess:
    """A `python -m devtools store serve` subprocess (see `spawn_server`)."""

    process: subprocess.Popen[bytes]
    url: str
    port: int
    path: Path

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait; SIGKILL if it does not exit in time. Returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return int(self.process.returncode)

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def spawn_server(
    path: str | os.PathLike[str],
    port: int = 0,
    host: str = "127.0.0.1",
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> ServerProcess:
    """Start `python -m devtools store serve` in its own process; wait until it answers."""
    cmd = [
        sys.executable, "-m", "devtools", "store", "serve",
        "--path", str(path), "--port", str(port), "--host", host,
    ]  # fmt: skip
    root = Path(__file__).resolve().parents[2]  # the checkout holding devtools/
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(root), full_env.get("PYTHONPATH", "")) if p
    )
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=full_env, cwd=root)
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    url = ""
    buffered = b""
    try:
        while not url:
            left = deadline - time.monotonic()
            if left <= 0 or proc.poll() is not None:
                raise RuntimeError(
                    f"the chDB HTTP server did not start (exit code {proc.poll()}): "
                    f"{buffered.decode(errors='replace')[-2000:]}"
                )
            ready, _, _ = select.select([proc.stdout], [], [], min(left, 0.5))
            if ready:
                line = proc.stdout.readline()
                buffered += line
                text = line.decode(errors="replace").strip()
                if text.startswith("RINGLOG_CLICKHOUSE_URL="):
                    url = text.split("=", 1)[1]
        actual_port = int(url.rsplit(":", 1)[1])
        while not _pings(host, actual_port):
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the chDB HTTP server does not answer /ping")
            time.sleep(0.05)
    except BaseException:
        proc.kill()
        proc.wait(10)
        raise
    return ServerProcess(proc, url, actual_port, Path(path))


def _pings(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return b"Ok." in sock.recv(4096)
    except OSError:
        return False
