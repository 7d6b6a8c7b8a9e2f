"""How every Kafka client of the worker connects: brokers and security (credentials are
held here, passed to aiokafka, and never logged or shown in repr)."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any

from aiokafka.conn import create_conn
from aiokafka.errors import KafkaError, SaslAuthenticationFailed
from aiokafka.helpers import create_ssl_context


@dataclass(frozen=True)
class KafkaConnection:
    brokers: str = "localhost:9092"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    # The CA that signed the brokers' certificates (SSL, SASL_SSL); None: the system's CAs.
    ssl_ca_file: str | None = None

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client."""
        options: dict[str, Any] = {
            "bootstrap_servers": self.brokers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            # Certificates and host names are verified (create_ssl_context's defaults).
            options["ssl_context"] = create_ssl_context(cafile=self.ssl_ca_file)
        if self.sasl_mechanism:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = self.sasl_password
        return options


class KafkaCredentialsRejected(Exception):
    """The broker answered but refused who we are (SASL) or we refused its certificate
    (TLS): retrying cannot help, the message names the setting to fix."""


async def check_credentials(connection: KafkaConnection, timeout_s: float = 15.0) -> None:
    """Connect to the first reachable bootstrap server once and authenticate.

    Raises KafkaCredentialsRejected for a refused password or an untrusted certificate; an
    unreachable broker is not an error here (the clients retry it like any outage).
    """
    options = connection.client_options()
    for server in connection.brokers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            conn = await asyncio.wait_for(
                create_conn(
                    host.strip("[]"),
                    int(port),
                    ssl_context=options.get("ssl_context"),
                    security_protocol=connection.security_protocol,
                    sasl_mechanism=connection.sasl_mechanism,
                    sasl_plain_username=connection.sasl_username,
                    sasl_plain_password=connection.sasl_password,
                    request_timeout_ms=int(timeout_s * 1000),
                ),
                timeout_s,
            )
        except SaslAuthenticationFailed as exc:
            raise KafkaCredentialsRejected(
                f"Kafka at {server} refused the credentials ({exc}): check "
                "RINGLOG_KAFKA_SASL_USERNAME, RINGLOG_KAFKA_SASL_PASSWORD (or _FILE) and "
                "RINGLOG_KAFKA_SASL_MECHANISM"
            ) from None
        except ssl.SSLCertVerificationError as exc:
            raise KafkaCredentialsRejected(
                f"the certificate of Kafka at {server} is not trusted ({exc.verify_message}): "
                "set RINGLOG_KAFKA_SSL_CA_FILE to the CA that signed it"
            ) from None
        except (OSError, TimeoutError, KafkaError):
            continue  # unreachable or busy: an outage, handled by the clients' retries
        conn.close()
        return
