"""Pages of Twilio's Calls list (`GET /2010-04-01/Accounts/{AccountSid}/Calls.json`), for the
prices Twilio fills in after a call ends ("may not be immediately available").

Basic auth with the account SID and auth token; pages followed by `next_page_uri`; 5xx and
connection errors retried with backoff (tenacity); 401/403 refused with a message naming the
settings. The API URL is a setting so that a test can stand in for Twilio.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any, Final

import httpx

from worker.adapters.backoff import with_backoff

PAGE_SIZE: Final = 1000  # Twilio's maximum PageSize
TWILIO_API: Final = "https://api.twilio.com"


class TwilioUnavailable(ConnectionError):
    pass


class TwilioRefused(PermissionError):
    pass


class CallsClient:
    def __init__(self, account_sid: str, auth_token: str, api_url: str = TWILIO_API) -> None:
        self._account = account_sid
        self._client = httpx.Client(
            base_url=api_url.rstrip("/"), auth=(account_sid, auth_token), timeout=30.0
        )

    def close(self) -> None:
        self._client.close()

    def pages(self, since: dt.date) -> Iterator[dict[str, Any]]:
        """Calls pages (Twilio's JSON) of calls started on or after `since`."""
        path: str | None = f"/2010-04-01/Accounts/{self._account}/Calls.json"
        params: dict[str, str] | None = {
            "StartTime>": since.isoformat(),
            "PageSize": str(PAGE_SIZE),
        }
        while path:
            page = self._get(path, params)
            yield page
            path, params = page.get("next_page_uri"), None  # the next URI carries the query

    def _get(self, path: str, params: dict[str, str] | None) -> dict[str, Any]:
        return with_backoff(lambda: self._once(path, params), TwilioUnavailable)

    def _once(self, path: str, params: dict[str, str] | None) -> dict[str, Any]:
        try:
            response = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise TwilioUnavailable(f"Twilio at {self._client.base_url}: {exc}") from exc
        if response.status_code in (401, 403):
            raise TwilioRefused(
                f"Twilio refused the credentials ({response.status_code}): check "
                "RINGLOG_TWILIO_ACCOUNT_SID and RINGLOG_TWILIO_AUTH_TOKEN"
            )
        if response.status_code >= 500 or response.status_code == 429:
            raise TwilioUnavailable(f"Twilio answered {response.status_code}")
        if response.status_code != 200:
            raise TwilioRefused(f"Twilio answered {response.status_code}: {response.text[:300]}")
        body = response.json()
        if not isinstance(body, dict):
            raise TwilioRefused("Twilio's answer is not a Calls page")
        return body
