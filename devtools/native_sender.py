"""`python -m devtools simulate --as PROVIDER`: the encoded traffic to a running `ringlog
gateway` (webhook providers), or to a CEL file for `ringlog import asterisk-cel`.

Requests are authenticated as the provider would, with the settings the gateway itself reads
(RINGLOG_TWILIO_AUTH_TOKEN + RINGLOG_GATEWAY_PUBLIC_URL, RINGLOG_PORTSIP_WEBHOOK_SECRET,
RINGLOG_FREESWITCH_USER / _PASSWORD), and sent by a bounded pool of concurrent senders.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import httpx
from twilio.request_validator import RequestValidator

from devtools.traffic.native.model import Post
from worker.service.settings import Settings

WEBHOOK_PROVIDERS = ("twilio", "portsip", "freeswitch")


class MissingSecret(ValueError):
    """The setting the gateway checks this provider's requests with is not set."""


@dataclass
class SendStats:
    posted: int = 0
    ok: int = 0  # 2xx
    refused: Counter[int] = field(default_factory=Counter)  # other statuses
    errors: Counter[str] = field(default_factory=Counter)  # no answer at all
    elapsed_s: float = 0.0

    @property
    def failed(self) -> int:
        return sum(self.refused.values()) + sum(self.errors.values())


class Signer:
    """Builds one request as the provider sends it."""

    def __init__(self, provider: str, settings: Settings, gateway: str, tenant: str) -> None:
        self.provider, self.gateway, self.tenant = provider, gateway.rstrip("/"), tenant
        self.headers: dict[str, str] = {}
        self.validator: RequestValidator | None = None
        if provider == "twilio":
            token = settings.twilio_auth_token
            if token is None:
                raise MissingSecret("RINGLOG_TWILIO_AUTH_TOKEN is not set")
            self.validator = RequestValidator(token.get_secret_value())
            # Twilio signs the URL it calls: the public one when the gateway is behind a proxy
            self.public = urlsplit(settings.gateway_public_url or self.gateway)
        elif provider == "portsip":
            secret = settings.portsip_webhook_secret
            if secret is None:
                raise MissingSecret("RINGLOG_PORTSIP_WEBHOOK_SECRET is not set")
            self.headers = {"X-Ringlog-Secret": secret.get_secret_value()}
        else:
            password = settings.freeswitch_password
            if password is None:
                raise MissingSecret("RINGLOG_FREESWITCH_PASSWORD is not set")
            cred = f"{settings.freeswitch_user}:{password.get_secret_value()}"
            self.headers = {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}

    def request(self, post: Post) -> httpx.Request:
        url = httpx.URL(f"{self.gateway}/{self.provider}/{self.tenant}/{post.route}")
        if post.query:
            url = url.copy_merge_params(post.query)
        if post.form is not None:
            headers = dict(self.headers)
            if self.validator is not None:
                signed = url.copy_with(
                    scheme=self.public.scheme, netloc=self.public.netloc.encode()
                )
                headers["X-Twilio-Signature"] = self.validator.compute_signature(
                    str(signed), post.form
                )
            return httpx.Request("POST", url, data=post.form, headers=headers)
        headers = {**self.headers, "Content-Type": "application/json"}
        return httpx.Request("POST", url, content=post.body, headers=headers)


async def send_posts(
    provider: str,
    posts: Sequence[Post],
    *,
    settings: Settings,
    gateway: str,
    tenant: str,
    concurrency: int = 8,
    progress: Callable[[SendStats, int], None] | None = None,
) -> SendStats:
    """POST every request; a refused one is counted by status, never retried."""
    signer = Signer(provider, settings, gateway, tenant)
    stats = SendStats()
    queue: asyncio.Queue[Post] = asyncio.Queue()
    for post in posts:
        queue.put_nowait(post)
    began = time.monotonic()
    step = max(1, len(posts) // 10)

    async def sender(client: httpx.AsyncClient) -> None:
        while not queue.empty():
            post = queue.get_nowait()
            try:
                answer = await client.send(signer.request(post))
            except httpx.HTTPError as exc:
                stats.errors[type(exc).__name__] += 1
            else:
                if 200 <= answer.status_code < 300:
                    stats.ok += 1
                else:
                    stats.refused[answer.status_code] += 1
            stats.posted += 1
            if progress is not None and (stats.posted % step == 0 or stats.posted == len(posts)):
                progress(stats, len(posts))

    async with httpx.AsyncClient(timeout=30.0) as client:
        await asyncio.gather(*(sender(client) for _ in range(max(1, concurrency))))
    stats.elapsed_s = time.monotonic() - began
    return stats
