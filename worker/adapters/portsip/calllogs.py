"""Pages of PortSIP's `GET /api/calllogs`, oldest first, from a start time.

PortSIP's query options (`filter`, `orderby`, `skip`, `top` <= 100) with a Bearer token. A
page is fetched with retries and backoff on 5xx and connection errors (tenacity); a 401/403
is not retried: the token is wrong, and the message says which setting to fix.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, Final

import httpx

from worker.adapters.backoff import with_backoff

PAGE_SIZE: Final = 100  # PortSIP's maximum `top`


class PortsipUnavailable(ConnectionError):
    pass


class PortsipRefused(PermissionError):
    pass


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class CalllogsClient:
    def __init__(self, base_url: str, token: str, timeout: float = 30.0) -> None:
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            timeout=timeout,
        )

    def close(self) -> None:
        self._client.close()

    def pages(self, since: dt.datetime) -> Iterator[list[dict[str, Any]]]:
        """Pages of call log items started at or after `since`, in `started_at` order."""
        skip = 0
        while True:
            page = self._page(since, skip)
            if page:
                yield page
            if len(page) < PAGE_SIZE:
                return
            skip += len(page)

    def _page(self, since: dt.datetime, skip: int) -> list[dict[str, Any]]:
        params = {
            "filter": f"started_at ge '{iso(since)}'",
            "orderby": "started_at asc, id asc",
            "top": str(PAGE_SIZE),
            "skip": str(skip),
        }
        return with_backoff(lambda: self._get("/api/calllogs", params), PortsipUnavailable)

    def _get(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        try:
            response = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise PortsipUnavailable(f"PortSIP at {self._client.base_url}: {exc}") from exc
        if response.status_code in (401, 403):
            raise PortsipRefused(
                f"PortSIP refused the token ({response.status_code}): check "
                "RINGLOG_PORTSIP_API_TOKEN (a token of an admin, from PortSIP's OAuth endpoint)"
            )
        if response.status_code >= 500:
            raise PortsipUnavailable(f"PortSIP answered {response.status_code}")
        if response.status_code != 200:
            raise PortsipRefused(f"PortSIP answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            raise PortsipRefused("PortSIP's answer has no `items` list: is this /api/calllogs?")
        return [item for item in items if isinstance(item, dict)]
