"""The shipped routes with the real normalizers on in-memory sinks: what a provider sends that
ringlog cannot map is dead-lettered with the normalizer's reason (and answered 2xx: a retry
would not help), never produced as an event."""

from __future__ import annotations

import base64

import orjson
from fastapi import FastAPI
from fastapi.testclient import TestClient
from twilio.request_validator import RequestValidator

from tests.unit.gateway.test_routes import PROJECT, PUBLIC, TOKEN, Sinks
from worker.gateway.auth import BasicAuth, SharedSecret, TwilioSignature
from worker.gateway.config import GatewayConfig
from worker.gateway.delivery import Delivery
from worker.gateway.metrics import GatewayMetrics
from worker.gateway.provider_routes import default_routes
from worker.gateway.routes import Guards, gateway_router


def client() -> tuple[TestClient, Sinks]:
    sinks = Sinks()
    tenant = {"project_id": PROJECT}
    config = GatewayConfig.model_validate(
        {"twilio": {"t": tenant}, "portsip": {"p": tenant}, "freeswitch": {"f": tenant}}
    )
    guards = Guards(
        TwilioSignature(TOKEN, PUBLIC), SharedSecret("s3cret-s3cret"), BasicAuth("fs", "pw")
    )
    app = FastAPI()
    delivery = Delivery(sinks, sinks)
    app.include_router(
        gateway_router(default_routes(), config, guards, lambda: delivery, GatewayMetrics(), 100)
    )
    return TestClient(app), sinks


def codes(sinks: Sinks) -> list[str]:
    return [orjson.loads(value)["error"]["code"] for _, value in sinks.dead]


def test_what_cannot_be_mapped_is_dead_lettered_with_the_normalizers_reason() -> None:
    http, sinks = client()
    form = {"CallStatus": "ringing", "Direction": "outbound-dial"}  # no CallSid
    signature = RequestValidator(TOKEN).compute_signature(f"{PUBLIC}/twilio/t/status", form)
    answer = http.post("/twilio/t/status", data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200
    portsip = http.post(
        "/portsip/p/call-cdr",
        content=orjson.dumps({"event_type": "extension_status", "data": {}}),
        headers={"X-Ringlog-Secret": "s3cret-s3cret"},
    )
    assert portsip.status_code == 200
    basic = base64.b64encode(b"fs:pw").decode()
    freeswitch = http.post(
        "/freeswitch/f/cdr", content=b"[1, 2]", headers={"Authorization": f"Basic {basic}"}
    )
    assert freeswitch.status_code == 200
    assert sinks.events == []
    assert codes(sinks) == ["missing_field", "unknown_event", "not_provider_format"]
    letters = [orjson.loads(value) for _, value in sinks.dead]
    assert [letter["source"] for letter in letters] == [
        {"gateway": "twilio", "route": "status"},
        {"gateway": "portsip", "route": "call-cdr"},
        {"gateway": "freeswitch", "route": "cdr"},
    ]
    assert letters[2]["payload"] == "[1, 2]"
