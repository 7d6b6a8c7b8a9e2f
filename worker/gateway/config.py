"""The gateway's routing: which project (and incoming call policy) each provider's traffic
belongs to, from a YAML file (RINGLOG_GATEWAY_CONFIG).

    twilio:                       # provider
      acme:                       # tenant: the webhook URL is /twilio/acme/...
        project_id: 1fb17c23-90c1-42cf-93ac-94af0f21ddb6
        default_policy_id: 6a1f0c9e-...     # for called numbers not listed below
        numbers: {"+15550100": 2b7c...}     # routing number -> incoming call policy
    portsip: {hq: {project_id: ...}}
    freeswitch: {lab: {project_id: ...}}
    users: {"+15550222": 9c1e..., "101": 4d2a...}   # dialled number or extension -> user id
    phones: {"101": "+15550111", "PJSIP/bob": "+4915550222"}   # extension -> E.164 number

A tenant is part of the URL the provider is given, so one gateway serves many projects and
stays stateless: a child leg's callback names its tenant as the parent's did.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from worker.core.providers.base import ProviderContext, is_e164

Provider = Literal["twilio", "portsip", "freeswitch", "asterisk"]
PROVIDERS: tuple[Provider, ...] = ("twilio", "portsip", "freeswitch", "asterisk")


class GatewayConfigError(ValueError):
    pass


class Tenant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_id: uuid.UUID
    default_policy_id: uuid.UUID | None = None
    numbers: dict[str, uuid.UUID] = Field(default_factory=dict)
    # The zone of provider times written without an offset (Asterisk's local time).
    time_zone: str = "UTC"

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from None
        return value


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    twilio: dict[str, Tenant] = Field(default_factory=dict)
    portsip: dict[str, Tenant] = Field(default_factory=dict)
    freeswitch: dict[str, Tenant] = Field(default_factory=dict)
    asterisk: dict[str, Tenant] = Field(default_factory=dict)
    users: dict[str, uuid.UUID] = Field(default_factory=dict)
    phones: dict[str, str] = Field(default_factory=dict)

    @field_validator("phones")
    @classmethod
    def _e164(cls, value: dict[str, str]) -> dict[str, str]:
        for endpoint, number in value.items():
            if not is_e164(number):
                raise ValueError(f"{endpoint}: {number!r} is not an E.164 number (+ and digits)")
        return value

    def context(self, provider: Provider, tenant: str) -> ProviderContext | None:
        section: dict[str, Tenant] = getattr(self, provider)
        found = section.get(tenant)
        if found is None:
            return None
        return ProviderContext(
            project_id=str(found.project_id),
            policy_for_number={n: str(p) for n, p in found.numbers.items()},
            default_policy_id=str(found.default_policy_id) if found.default_policy_id else None,
            user_for_endpoint={e: str(u) for e, u in self.users.items()},
            phone_for_endpoint=dict(self.phones),
            time_zone=ZoneInfo(found.time_zone),
        )

    def tenants(self, provider: Provider) -> list[str]:
        return sorted(getattr(self, provider))


def load_gateway_config(path: Path) -> GatewayConfig:
    """The file parsed and checked; errors name the file and the entry at fault."""
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise GatewayConfigError(f"RINGLOG_GATEWAY_CONFIG={path}: cannot read it: {exc}") from None
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise GatewayConfigError(f"RINGLOG_GATEWAY_CONFIG={path}: {where}") from None
