"""A stand-in for PortSIP's `GET /api/calllogs` (the importer's tests): its query options as
the importer uses them (`filter=started_at ge '...'`, `orderby=started_at asc, id asc`, `top`,
`skip`), a Bearer token, and a switch to answer 503 for a while."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.json_http import json_server

TOKEN = "portsip-api-token-7f3e"
_SINCE = re.compile(r"^started_at ge '([^']+)'$")


class FakePortsip:
    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records
        self.failures_left = 0  # answer 503 this many times first
        self.requests: list[dict[str, str]] = []

    def page(self, params: dict[str, str]) -> list[dict[str, Any]]:
        match = _SINCE.match(params.get("filter", ""))
        since = dt.datetime.fromisoformat(match.group(1)) if match else None
        chosen = [
            r
            for r in self.records
            if since is None or dt.datetime.fromisoformat(r["started_at"]) >= since
        ]
        chosen.sort(key=lambda r: (dt.datetime.fromisoformat(r["started_at"]), r["id"]))
        skip, top = int(params.get("skip", "0")), int(params.get("top", "100"))
        return chosen[skip : skip + top]

    def answer(self, path: str, headers: Mapping[str, str]) -> tuple[int, object]:
        url = urlsplit(path)
        params = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append(params)
        if headers.get("Authorization") != f"Bearer {TOKEN}":
            return 401, {"errors": [{"code": "UNAUTHORIZED"}]}
        if self.failures_left > 0:
            self.failures_left -= 1
            return 503, {"errors": [{"code": "UNKNOWN"}]}
        if url.path != "/api/calllogs":
            return 404, {"errors": [{"code": "NOT_FOUND"}]}
        items = self.page(params)
        return 200, {"count": len(items), "items": items}

    def serving(self) -> AbstractContextManager[str]:
        return json_server(self.answer)
