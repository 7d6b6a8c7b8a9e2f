"""The gateway's webhook handling on in-memory sinks: authentication per provider, the order
of the steps (nothing produced before authentication, 2xx only after delivery), dead letters
for what cannot be mapped, and every refusal with its status and metric."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from worker.core.providers.base import Normalized, ProviderContext, Unmapped
from worker.gateway.auth import BasicAuth, SharedSecret, TwilioSignature
from worker.gateway.config import GatewayConfig
from worker.gateway.delivery import Delivery
from worker.gateway.metrics import GatewayMetrics
from worker.gateway.routes import Guards, WebhookBody, WebhookRoute, gateway_router
from worker.pipeline.ports import BrokerUnavailable
from worker.service.http import BodyLimit

PROJECT = "1fb17c23-90c1-42cf-93ac-94af0f21ddb6"
TOKEN = "twilio-auth-token-0123456789"
PUBLIC = "https://ringlog.example.com"


class Sinks:
    def __init__(self) -> None:
        self.events: list[tuple[str, Mapping[str, Any]]] = []
        self.dead: list[tuple[bytes | None, bytes]] = []
        self.down = False

    async def publish_all(self, records: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        if self.down:
            raise BrokerUnavailable("broker down")
        self.events.extend(records)

    async def send(self, records: Sequence[tuple[bytes | None, bytes]]) -> None:
        self.dead.extend(records)


def echo(body: WebhookBody, ctx: ProviderContext) -> Normalized:
    """A test normalizer: one event per call id named in the body, the rest unmapped."""
    source = body.form if body.form is not None else body.json
    if not isinstance(source, Mapping) or "CallSid" not in source:
        return Normalized(unmapped=(Unmapped("not_provider_format", "no CallSid", "CallSid"),))
    event = {"event_id": f"e-{source['CallSid']}", "call_id": source["CallSid"], "type": "t"}
    return Normalized(events=({**event, "project_id": ctx.project_id},))


def boom(body: WebhookBody, ctx: ProviderContext) -> Normalized:
    raise KeyError("a bug")


def make(rate: int = 1000) -> tuple[TestClient, Sinks, GatewayMetrics]:
    sinks = Sinks()
    metrics = GatewayMetrics()
    config = GatewayConfig.model_validate(
        {
            "twilio": {"acme": {"project_id": PROJECT}},
            "portsip": {"hq": {"project_id": PROJECT}},
            "freeswitch": {"lab": {"project_id": PROJECT}},
        }
    )
    guards = Guards(
        twilio=TwilioSignature(TOKEN, PUBLIC),
        portsip=SharedSecret("portsip-secret-42"),
        freeswitch=BasicAuth("freeswitch", "fs-password"),
    )
    routes = [
        WebhookRoute("twilio", "status", "form", echo, reply="twiml"),
        WebhookRoute("portsip", "call-cdr", "json", echo),
        WebhookRoute("freeswitch", "cdr", "json", echo),
        WebhookRoute("portsip", "broken", "json", boom),
    ]
    delivery = Delivery(sinks, sinks)
    app = FastAPI()
    app.include_router(gateway_router(routes, config, guards, lambda: delivery, metrics, rate))
    app.add_middleware(BodyLimit)
    return TestClient(app), sinks, metrics


def signed(path: str, params: dict[str, str]) -> dict[str, str]:
    signature = RequestValidator(TOKEN).compute_signature(PUBLIC + path, params)
    return {"X-Twilio-Signature": signature}


def count(metrics: GatewayMetrics, provider: str, outcome: str) -> float:
    value = metrics.registry.get_sample_value(
        "ringlog_gateway_requests_total", {"provider": provider, "outcome": outcome}
    )
    return value or 0.0


def test_twilio_signed_by_the_public_url_is_delivered_then_answered() -> None:
    client, sinks, metrics = make()
    params = {"CallSid": "CA1", "CallStatus": "ringing"}
    # the gateway sees http://testserver/...; Twilio signed https://ringlog.example.com/...
    got = client.post(
        "/twilio/acme/status", data=params, headers=signed("/twilio/acme/status", params)
    )
    assert got.status_code == 200
    assert got.text == '<?xml version="1.0" encoding="UTF-8"?><Response/>'
    assert got.headers["content-type"].startswith("text/xml")
    assert sinks.events == [
        ("CA1", {"event_id": "e-CA1", "call_id": "CA1", "type": "t", "project_id": PROJECT})
    ]
    assert count(metrics, "twilio", "delivered") == 1


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Twilio-Signature": "forged"},
        signed("/twilio/acme/status", {"CallSid": "CA1", "CallStatus": "busy"}),  # other params
        signed("/twilio/other/status", {"CallSid": "CA1", "CallStatus": "ringing"}),  # other URL
    ],
)
def test_twilio_bad_signature_is_403_and_produces_nothing(headers: dict[str, str]) -> None:
    client, sinks, metrics = make()
    got = client.post(
        "/twilio/acme/status", data={"CallSid": "CA1", "CallStatus": "ringing"}, headers=headers
    )
    assert (got.status_code, got.json()) == (403, {"error": "bad or missing signature/credential"})
    assert sinks.events == [] and sinks.dead == []
    assert count(metrics, "twilio", "bad_signature") == 1


def test_portsip_secret_and_freeswitch_basic_auth() -> None:
    client, sinks, _ = make()
    body = orjson.dumps({"CallSid": "S1"})
    for headers, status in [
        ({"X-Ringlog-Secret": "portsip-secret-42"}, 200),
        ({"Authorization": "Bearer portsip-secret-42"}, 200),
        ({"X-Ringlog-Secret": "nope"}, 403),
        ({}, 403),
    ]:
        assert (
            client.post("/portsip/hq/call-cdr", content=body, headers=headers).status_code == status
        )
    basic = base64.b64encode(b"freeswitch:fs-password").decode()
    wrong = base64.b64encode(b"freeswitch:guess").decode()
    assert (
        client.post(
            "/freeswitch/lab/cdr", content=body, headers={"Authorization": f"Basic {basic}"}
        ).status_code
        == 200
    )
    assert (
        client.post(
            "/freeswitch/lab/cdr", content=body, headers={"Authorization": f"Basic {wrong}"}
        ).status_code
        == 403
    )
    assert (
        client.post(
            "/freeswitch/lab/cdr", content=body, headers={"Authorization": "Basic !!"}
        ).status_code
        == 403
    )
    # mod_json_cdr may post the CDR as a form field
    form = {"cdr": '{"CallSid": "S2"}'}
    assert (
        client.post(
            "/freeswitch/lab/cdr", data=form, headers={"Authorization": f"Basic {basic}"}
        ).status_code
        == 200
    )
    assert [key for key, _ in sinks.events] == ["S1", "S1", "S1", "S2"]


def test_unmappable_payloads_are_dead_lettered_with_their_reason_and_answered() -> None:
    client, sinks, metrics = make()
    got = client.post(
        "/portsip/hq/call-cdr",
        content=b'{"hello": 1}',
        headers={"X-Ringlog-Secret": "portsip-secret-42"},
    )
    assert got.status_code == 200
    [(key, value)] = sinks.dead
    letter = orjson.loads(value)
    assert key is None
    assert letter["error"] == {
        "code": "not_provider_format",
        "message": "no CallSid",
        "field": "CallSid",
    }
    assert letter["source"] == {"gateway": "portsip", "route": "call-cdr"}
    assert letter["payload"] == '{"hello": 1}'
    assert count(metrics, "portsip", "unmapped") == 1
    # a normalizer that crashes loses nothing either: the payload is dead-lettered
    crashed = client.post(
        "/portsip/hq/broken",
        content=b'{"CallSid": "X"}',
        headers={"X-Ringlog-Secret": "portsip-secret-42"},
    )
    assert crashed.status_code == 200
    assert orjson.loads(sinks.dead[-1][1])["error"]["code"] == "normalizer_error"


def test_refusals() -> None:
    client, sinks, metrics = make(rate=2)  # the 413 is refused before the route counts it
    ok = {"X-Ringlog-Secret": "portsip-secret-42"}
    assert client.post("/portsip/nobody/call-cdr", content=b"{}", headers=ok).status_code == 404
    bad = client.post("/portsip/hq/call-cdr", content=b"{not json", headers=ok)
    assert bad.status_code == 400 and "a portsip call-cdr webhook is JSON" in bad.json()["error"]
    huge = client.post("/portsip/hq/call-cdr", content=b"x" * (1024 * 1024 + 1), headers=ok)
    assert huge.status_code == 413
    limited = client.post("/portsip/hq/call-cdr", content=b'{"CallSid": "R"}', headers=ok)
    assert (limited.status_code, limited.json()) == (
        429,
        {"error": "more than 2 requests/s for portsip"},
    )
    assert sinks.events == []
    assert count(metrics, "portsip", "rate_limited") == 1


def test_kafka_down_is_503_and_the_retry_delivers_the_same_event() -> None:
    client, sinks, metrics = make()
    ok = {"X-Ringlog-Secret": "portsip-secret-42"}
    sinks.down = True
    failed = client.post("/portsip/hq/call-cdr", content=b'{"CallSid": "K"}', headers=ok)
    assert (failed.status_code, failed.json()) == (
        503,
        {"error": "Kafka is unavailable; retry later"},
    )
    sinks.down = False
    retried = client.post("/portsip/hq/call-cdr", content=b'{"CallSid": "K"}', headers=ok)
    assert retried.status_code == 200
    assert [e["event_id"] for _, e in sinks.events] == ["e-K"]
    assert count(metrics, "portsip", "kafka_unavailable") == 1
