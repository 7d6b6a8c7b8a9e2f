"""The gateway routing file the simulated traffic needs (docs/providers.md "The routing
file"): the tenant's project and policy numbers, the users' numbers (and, for Asterisk,
their PJSIP endpoints)."""

from __future__ import annotations

from typing import Any

from devtools.traffic.world import Project


def asterisk_endpoint(phone: str) -> str:
    """The PJSIP endpoint a user's phone is registered as on the simulated Asterisk."""
    return f"PJSIP/{phone.removeprefix('+')}"


def routing_config(project: Project, provider: str, tenant: str) -> dict[str, Any]:
    """The routing-file entries for `provider`'s tenant, as a YAML-ready dict."""
    numbers = {p.routing_number: p.id for p in project.policies}
    users: dict[str, str] = {}
    phones: dict[str, str] = {}
    for user in project.users:
        users[user.phone] = user.id
        if provider == "asterisk":
            endpoint = asterisk_endpoint(user.phone)
            users[endpoint] = user.id
            phones[endpoint] = user.phone
    config: dict[str, Any] = {
        provider: {tenant: {"project_id": project.id, "numbers": numbers}},
        "users": users,
    }
    if phones:
        config["phones"] = phones
    return config
