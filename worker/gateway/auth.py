"""How each provider proves a webhook is its own.

- Twilio signs every request: `X-Twilio-Signature`, an HMAC-SHA1 with the account's auth token
  over the URL Twilio called and the POST parameters. Checked with Twilio's own
  `RequestValidator`. Behind a proxy the URL the gateway sees is not the one Twilio called:
  RINGLOG_GATEWAY_PUBLIC_URL gives the scheme and host Twilio uses.
- PortSIP sends a shared secret in a header of the webhook's configuration
  (`X-Ringlog-Secret`, or `Authorization: Bearer <secret>`).
- FreeSWITCH's mod_json_cdr / mod_xml_cdr post with HTTP Basic auth (`cred=user:password`).
Secrets are compared in constant time and never logged.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from urllib.parse import urlsplit

from twilio.request_validator import RequestValidator


class TwilioSignature:
    def __init__(self, auth_token: str, public_url: str | None) -> None:
        self._validator = RequestValidator(auth_token)
        self._public = urlsplit(public_url) if public_url else None

    def url_called(self, seen_url: str) -> str:
        """The URL Twilio signed: the one the gateway saw, with the public scheme and host."""
        if self._public is None:
            return seen_url
        seen = urlsplit(seen_url)
        return seen._replace(scheme=self._public.scheme, netloc=self._public.netloc).geturl()

    def valid(self, seen_url: str, params: Mapping[str, str], signature: str | None) -> bool:
        if not signature:
            return False
        return bool(self._validator.validate(self.url_called(seen_url), dict(params), signature))


class SharedSecret:
    HEADER = "x-ringlog-secret"

    def __init__(self, secret: str) -> None:
        self._secret = secret.encode("utf-8")

    def valid(self, headers: Mapping[str, str]) -> bool:
        given = headers.get(self.HEADER)
        if given is None:
            scheme, _, token = headers.get("authorization", "").partition(" ")
            given = token.strip() if scheme.lower() == "bearer" else None
        return given is not None and hmac.compare_digest(given.encode("utf-8"), self._secret)


class BasicAuth:
    def __init__(self, user: str, password: str) -> None:
        self._expected = f"{user}:{password}".encode()

    def valid(self, headers: Mapping[str, str]) -> bool:
        scheme, _, encoded = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            given = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        return hmac.compare_digest(given, self._expected)
