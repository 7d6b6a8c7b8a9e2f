"""Calling a running worker's operator routes (/query, /admin/api-keys) from the CLI.

In embedded mode (chdb://) one process owns the store: while a worker runs, `ringlog sql` and
`ringlog apikey` go through its HTTP port, with the operator token (RINGLOG_QUERY_TOKEN)
when one is set.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from typing import Any

import orjson

from worker.service.settings import Settings


class WorkerRefused(Exception):
    """The worker answered with an error; the message is the worker's."""


def worker_url(settings: Settings, path: str) -> str:
    host = "127.0.0.1" if settings.http_host in ("0.0.0.0", "::", "") else settings.http_host
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address in a URL
    return f"http://{host}:{settings.http_port}{path}"


def call_worker(
    settings: Settings,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str = "application/json",
    timeout: float = 300,
) -> Any | None:
    """The worker's JSON answer; None when no worker listens (open the store instead)."""
    url = worker_url(settings, path)
    headers = {"Content-Type": content_type}
    token = settings.operator_token()
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            detail = orjson.loads(exc.read() or b"{}").get("error", exc.reason)
        except orjson.JSONDecodeError:
            detail = exc.reason
        raise WorkerRefused(f"{detail} (via the worker at {url})") from None
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None
