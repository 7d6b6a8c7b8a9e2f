"""A stand-in for Twilio's Calls list (the price importer's tests): Basic auth with the account
SID and auth token, pages of `page_size` followed by `next_page_uri`."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.support.json_http import json_server

ACCOUNT = "AC" + "b" * 32


class FakeTwilio:
    def __init__(self, calls: list[dict[str, Any]], token: str, page_size: int = 2) -> None:
        self.calls, self.token, self.page_size = calls, token, page_size
        self.requests: list[str] = []

    def answer(self, path: str, headers: Mapping[str, str]) -> tuple[int, object]:
        self.requests.append(path)
        expected = base64.b64encode(f"{ACCOUNT}:{self.token}".encode()).decode()
        if headers.get("Authorization") != f"Basic {expected}":
            return 401, {"code": 20003, "message": "Authenticate"}
        url = urlsplit(path)
        if url.path != f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json":
            return 404, {"code": 20404}
        page = int(parse_qs(url.query).get("Page", ["0"])[0])
        first = page * self.page_size
        calls = self.calls[first : first + self.page_size]
        more = first + self.page_size < len(self.calls)
        next_uri = f"{url.path}?PageSize={self.page_size}&Page={page + 1}" if more else None
        return 200, {"calls": calls, "next_page_uri": next_uri, "page": page}

    def serving(self) -> AbstractContextManager[str]:
        return json_server(self.answer)
