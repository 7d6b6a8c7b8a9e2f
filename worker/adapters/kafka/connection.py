"""Connection options shared by every Kafka client of the worker (credentials never logged)."""

from __future__ import annotations

from typing import Any

from worker.service.settings import Settings


def kafka_client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every client (credentials never logged)."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_brokers,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options
