"""`ringlog gateway` refuses to start on a configuration that would refuse every webhook of a
provider, naming the setting, before any Kafka client exists."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import yaml

from worker.gateway.provider_routes import default_routes
from worker.service.gateway_host import GatewayProcess
from worker.service.settings import ConfigError, Settings

PROJECT = "1fb17c23-90c1-42cf-93ac-94af0f21ddb6"


def routing(tmp_path: Path, **providers: object) -> Path:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(providers))
    return path


def test_a_routed_provider_without_its_secret_is_refused(tmp_path: Path) -> None:
    config = routing(tmp_path, twilio={"acme": {"project_id": PROJECT}})
    with pytest.raises(
        ConfigError,
        match=re.escape("RINGLOG_TWILIO_AUTH_TOKEN (or RINGLOG_TWILIO_AUTH_TOKEN_FILE) is not set"),
    ):
        GatewayProcess(Settings(gateway_config=config), default_routes())


def test_no_routing_file_is_refused_naming_the_setting() -> None:
    with pytest.raises(ConfigError, match="RINGLOG_GATEWAY_CONFIG is not set"):
        GatewayProcess(Settings(), default_routes())


def test_a_bad_routing_file_names_the_entry(tmp_path: Path) -> None:
    config = routing(tmp_path, twilio={"acme": {"project_id": "not-a-uuid"}})
    with pytest.raises(ConfigError, match=r"twilio.acme.project_id"):
        GatewayProcess(
            Settings(gateway_config=config, twilio_auth_token="t" * 20), default_routes()
        )
    phones = routing(tmp_path, phones={"101": "0800 123"})
    with pytest.raises(ConfigError, match=re.escape("is not an E.164 number")):
        GatewayProcess(Settings(gateway_config=phones), default_routes())


def test_a_complete_configuration_builds_the_gateway(tmp_path: Path) -> None:
    config = routing(
        tmp_path,
        twilio={"acme": {"project_id": PROJECT}},
        portsip={"hq": {"project_id": PROJECT, "time_zone": "Europe/Berlin"}},
    )
    settings = Settings(
        gateway_config=config, twilio_auth_token="t" * 20, portsip_webhook_secret="s" * 20
    )

    async def build() -> GatewayProcess:  # Kafka clients are made inside an event loop
        return GatewayProcess(settings, default_routes())

    gateway = asyncio.run(build())
    assert gateway.config.tenants("twilio") == ["acme"]
    ctx = gateway.config.context("portsip", "hq")
    assert ctx is not None and str(ctx.time_zone) == "Europe/Berlin"
