"""A stand-in for PortSIP's `GET /api/calllogs` (the importer's tests): its query options as
the importer uses them (`filter=started_at ge '...'`, `orderby=started_at asc, id asc`, `top`,
`skip`), a Bearer token, and a switch to answer 503 for a while."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

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

    @contextmanager
    def serving(self) -> Iterator[str]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                params = {k: v[0] for k, v in parse_qs(url.query).items()}
                fake.requests.append(params)
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                if fake.failures_left > 0:
                    fake.failures_left -= 1
                    return self._send(503, {"errors": [{"code": "UNKNOWN"}]})
                if url.path != "/api/calllogs":
                    return self._send(404, {"errors": [{"code": "NOT_FOUND"}]})
                items = fake.page(params)
                return self._send(200, {"count": len(items), "items": items})

            def _send(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()
