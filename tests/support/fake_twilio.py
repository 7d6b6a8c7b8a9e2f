"""A stand-in for Twilio's Calls list (the price importer's tests): Basic auth with the account
SID and auth token, pages of `page_size` followed by `next_page_uri`."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ACCOUNT = "AC" + "b" * 32


class FakeTwilio:
    def __init__(self, calls: list[dict[str, Any]], token: str, page_size: int = 2) -> None:
        self.calls, self.token, self.page_size = calls, token, page_size
        self.requests: list[str] = []

    @contextmanager
    def serving(self) -> Iterator[str]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append(self.path)
                expected = base64.b64encode(f"{ACCOUNT}:{fake.token}".encode()).decode()
                if self.headers.get("Authorization") != f"Basic {expected}":
                    return self._send(401, {"code": 20003, "message": "Authenticate"})
                url = urlsplit(self.path)
                if url.path != f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json":
                    return self._send(404, {"code": 20404})
                page = int(parse_qs(url.query).get("Page", ["0"])[0])
                first = page * fake.page_size
                calls = fake.calls[first : first + fake.page_size]
                more = first + fake.page_size < len(fake.calls)
                next_uri = f"{url.path}?PageSize={fake.page_size}&Page={page + 1}" if more else None
                return self._send(200, {"calls": calls, "next_page_uri": next_uri, "page": page})

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
