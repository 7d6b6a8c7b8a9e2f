"""The gateway's webhook routes: `POST /{provider}/{tenant}/{route}`.

One handler serves every route; what differs per route is a `WebhookRoute`: how the body is
encoded, which normalizer reads it and what the provider expects back. The order of the
steps is the delivery guarantee: rate limit, tenant, authenticate, parse, normalize, deliver
(Kafka acknowledges everything), and only then 2xx.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from limits import RateLimitItemPerSecond
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.responses import Response

from worker.core.providers.base import Normalized, ProviderContext, Unmapped
from worker.gateway import metrics as outcome
from worker.gateway.auth import BasicAuth, SharedSecret, TwilioSignature
from worker.gateway.config import GatewayConfig, Provider
from worker.gateway.delivery import Delivery
from worker.gateway.metrics import GatewayMetrics
from worker.pipeline.ports import BrokerUnavailable, DeadLetterUnavailable

log = logging.getLogger("ringlog.gateway")

TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
NORMALIZER_ERROR = "normalizer_error"


@dataclass(frozen=True)
class WebhookBody:
    """A webhook as the normalizer sees it."""

    form: Mapping[str, str] | None  # form-encoded bodies (Twilio)
    json: Any  # JSON bodies (PortSIP, FreeSWITCH); None for form bodies
    query: Mapping[str, str]  # the URL's query parameters (callback URLs carry ids)
    received_at: dt.datetime  # when the gateway received it (UTC)


Normalizer = Callable[[WebhookBody, ProviderContext], Normalized]


@dataclass(frozen=True)
class WebhookRoute:
    provider: Provider
    name: str
    encoding: Literal["form", "json"]
    normalize: Normalizer
    reply: Literal["twiml", "json"] = "json"


@dataclass
class Guards:
    """Each provider's authenticator; a provider without one has no routes."""

    twilio: TwilioSignature | None = None
    portsip: SharedSecret | None = None
    freeswitch: BasicAuth | None = None


class BadBody(ValueError):
    pass


def gateway_router(
    routes: list[WebhookRoute],
    config: GatewayConfig,
    guards: Guards,
    delivery: Callable[[], Delivery | None],
    metrics: GatewayMetrics,
    rate_limit: int,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
) -> APIRouter:
    """`clock` gives a request's receipt time (the time of payloads that carry none)."""
    router = APIRouter(tags=["gateway"])
    limiter = MovingWindowRateLimiter(MemoryStorage())
    per_second = RateLimitItemPerSecond(rate_limit)

    def add(route: WebhookRoute) -> None:
        async def handle(request: Request, tenant: str) -> Response:
            started = time.perf_counter()
            provider = route.provider
            try:
                answer, result = await _handle(request, tenant)
            finally:
                metrics.seconds.labels(provider).observe(time.perf_counter() - started)
            metrics.requests.labels(provider, result).inc()
            return answer

        async def _handle(request: Request, tenant: str) -> tuple[Response, str]:
            provider = route.provider
            if not limiter.hit(per_second, provider):
                return _error(429, f"more than {rate_limit} requests/s for {provider}"), (
                    outcome.RATE_LIMITED
                )
            ctx = config.context(provider, tenant)
            if ctx is None:
                return _error(404, f"no {provider} tenant {tenant!r} in the gateway config"), (
                    outcome.UNKNOWN_TENANT
                )
            raw = await request.body()
            try:
                body = _parse(route, raw, request, clock())
            except BadBody as exc:
                return _error(400, str(exc)), outcome.BAD_BODY
            if not _authentic(guards, provider, request, body):
                log.warning(
                    "refused a %s webhook with a bad or missing credential",
                    provider,
                    extra={"route": route.name, "tenant": tenant, "remote": _remote(request)},
                )
                return _error(403, "bad or missing signature/credential"), outcome.BAD_SIGNATURE
            try:
                normalized = route.normalize(body, ctx)
            except Exception as exc:  # a normalizer bug must not lose the payload
                log.exception("the %s normalizer failed on %s", provider, route.name)
                normalized = Normalized(
                    unmapped=(Unmapped(NORMALIZER_ERROR, f"{type(exc).__name__}: {exc}"),)
                )
            sink = delivery()
            if sink is None:
                return _error(503, "the gateway is starting or stopping"), (
                    outcome.KAFKA_UNAVAILABLE
                )
            try:
                done = await sink.deliver(provider, route.name, normalized, raw)
            except (BrokerUnavailable, DeadLetterUnavailable) as exc:
                log.warning("Kafka unavailable for a %s webhook: %s", provider, exc)
                return _error(503, "Kafka is unavailable; retry later"), (outcome.KAFKA_UNAVAILABLE)
            for event in normalized.events:
                metrics.events.labels(provider, str(event.get("type"))).inc()
            for unmapped in normalized.unmapped:
                metrics.dead_letters.labels(provider, unmapped.code).inc()
            result = (
                outcome.DELIVERED if done.events or not done.dead_letters else (outcome.UNMAPPED)
            )
            return _reply(route), result

        router.add_api_route(
            f"/{route.provider}/{{tenant}}/{route.name}",
            handle,
            methods=["POST"],
            summary=f"{route.provider} {route.name} webhook",
            operation_id=f"{route.provider}_{route.name}".replace("-", "_"),
        )

    for route in routes:
        add(route)
    return router


def _parse(route: WebhookRoute, raw: bytes, request: Request, received: dt.datetime) -> WebhookBody:
    query = dict(request.query_params)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadBody("the body is not UTF-8 text") from None
    if route.encoding == "form":
        try:
            form = dict(parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text)))
        except ValueError:
            raise BadBody(f"a {route.provider} {route.name} webhook is form-encoded") from None
        return WebhookBody(form, None, query, received)
    if request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        # mod_json_cdr / mod_xml_cdr can post the CDR as a form field `cdr`
        text = dict(parse_qsl(text, keep_blank_values=True)).get("cdr", "")
    try:
        return WebhookBody(None, orjson.loads(text), query, received)
    except orjson.JSONDecodeError as exc:
        raise BadBody(f"a {route.provider} {route.name} webhook is JSON: {exc}") from None


def _authentic(guards: Guards, provider: Provider, request: Request, body: WebhookBody) -> bool:
    headers = request.headers  # case-insensitive already
    if provider == "twilio" and guards.twilio is not None:
        return guards.twilio.valid(
            str(request.url), body.form or {}, headers.get("x-twilio-signature")
        )
    if provider == "portsip" and guards.portsip is not None:
        return guards.portsip.valid(headers)
    if provider == "freeswitch" and guards.freeswitch is not None:
        return guards.freeswitch.valid(headers)
    return False  # no credential configured for this provider: nothing is accepted


def _reply(route: WebhookRoute) -> Response:
    if route.reply == "twiml":
        return Response(TWIML_EMPTY, media_type="text/xml")
    return Response(b'{"ok":true}', media_type="application/json")


def _error(status: int, message: str) -> Response:
    return Response(orjson.dumps({"error": message}), status, media_type="application/json")


def _remote(request: Request) -> str | None:
    return request.client.host if request.client else None
