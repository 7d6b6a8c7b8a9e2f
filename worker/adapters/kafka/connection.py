"""How every Kafka client of the worker connects: brokers and security (credentials are
held here, passed to aiokafka, and never logged or shown in repr)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class KafkaConnection:
    brokers: str = "localhost:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.brokers,
            "security_protocol": self.security_protocol,
        }
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options
