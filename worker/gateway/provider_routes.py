"""The webhook routes `ringlog gateway` serves, each bound to its provider's normalizer.

The gateway adds what a payload lacks: the time it received the request (Twilio's voice
webhook and `<Dial action>` carry none) and, for Twilio, the callback URL's query (the routing
service puts the dialled user's ids there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

from worker.core.providers import freeswitch, portsip, twilio
from worker.core.providers.base import NOT_PROVIDER_FORMAT, Normalized, ProviderContext, Unmapped
from worker.gateway.routes import WebhookBody, WebhookRoute

TwilioNormalizer = Callable[[Mapping[str, str], ProviderContext, Mapping[str, str]], Normalized]


def _received(body: WebhookBody, ctx: ProviderContext) -> ProviderContext:
    return dataclasses.replace(ctx, received_at=body.received_at)


def _twilio(normalize: TwilioNormalizer) -> Callable[[WebhookBody, ProviderContext], Normalized]:
    def route(body: WebhookBody, ctx: ProviderContext) -> Normalized:
        return normalize(body.form or {}, _received(body, ctx), body.query)

    return route


def _twilio_voice(body: WebhookBody, ctx: ProviderContext) -> Normalized:
    return twilio.voice_webhook(body.form or {}, _received(body, ctx))


def _json_object(
    normalize: Callable[[Mapping[str, object], ProviderContext], Normalized], what: str
) -> Callable[[WebhookBody, ProviderContext], Normalized]:
    def route(body: WebhookBody, ctx: ProviderContext) -> Normalized:
        if not isinstance(body.json, dict):
            return Normalized(unmapped=(Unmapped(NOT_PROVIDER_FORMAT, f"{what} is a JSON object"),))
        return normalize(body.json, _received(body, ctx))

    return route


def default_routes() -> list[WebhookRoute]:
    return [
        WebhookRoute("twilio", "voice", "form", _twilio_voice, reply="twiml"),
        WebhookRoute("twilio", "status", "form", _twilio(twilio.status_callback), reply="twiml"),
        WebhookRoute("twilio", "dial-action", "form", _twilio(twilio.dial_action), reply="twiml"),
        WebhookRoute(
            "portsip", "call-cdr", "json", _json_object(portsip.webhook, "a PortSIP webhook")
        ),
        WebhookRoute(
            "freeswitch",
            "cdr",
            "json",
            _json_object(freeswitch.normalize_cdr, "a mod_json_cdr CDR"),
        ),
    ]
