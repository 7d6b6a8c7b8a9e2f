"""The webhook routes `ringlog gateway` serves, each bound to its provider's normalizer."""

from __future__ import annotations

from worker.core.providers import freeswitch
from worker.core.providers.base import NOT_PROVIDER_FORMAT, Normalized, ProviderContext, Unmapped
from worker.gateway.routes import WebhookBody, WebhookRoute


def _freeswitch_cdr(body: WebhookBody, ctx: ProviderContext) -> Normalized:
    if not isinstance(body.json, dict):
        return Normalized(
            unmapped=(Unmapped(NOT_PROVIDER_FORMAT, "a mod_json_cdr CDR is a JSON object"),)
        )
    return freeswitch.normalize_cdr(body.json, ctx)


def default_routes() -> list[WebhookRoute]:
    return [
        WebhookRoute("freeswitch", "cdr", "json", _freeswitch_cdr),
    ]
