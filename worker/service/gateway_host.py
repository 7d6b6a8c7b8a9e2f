"""`ringlog gateway`: the provider webhooks (worker.gateway) as a process of its own.

It needs Kafka only (no ClickHouse): events go to the input topic and what cannot be mapped
to the dead-letter topic, both acks=all, before a webhook is answered. It refuses to start
without the secret of a provider its config routes (each named by its setting). /metrics,
/health and /ready beside the webhook routes; SIGTERM / SIGINT finish the requests in flight.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from worker.adapters.kafka.connection import check_credentials
from worker.adapters.kafka.dead_letters import DeadLetterProducer
from worker.adapters.kafka.event_publisher import KafkaEventPublisher
from worker.gateway.auth import BasicAuth, SharedSecret, TwilioSignature
from worker.gateway.config import (
    PROVIDERS,
    GatewayConfig,
    GatewayConfigError,
    Provider,
    load_gateway_config,
)
from worker.gateway.delivery import Delivery
from worker.gateway.metrics import GatewayMetrics
from worker.gateway.routes import Guards, WebhookRoute, gateway_router
from worker.service.http import BodyLimit
from worker.service.http_server import HttpServer
from worker.service.logs import setup_logging
from worker.service.settings import ConfigError, Settings

log = logging.getLogger("ringlog.gateway")


def gateway_config(settings: Settings) -> GatewayConfig:
    if settings.gateway_config is None:
        raise ConfigError(
            "RINGLOG_GATEWAY_CONFIG is not set: give the YAML file that routes each provider's "
            "traffic to a project (docs/providers.md)"
        )
    try:
        return load_gateway_config(settings.gateway_config)
    except GatewayConfigError as exc:
        raise ConfigError(str(exc)) from None


def guards(settings: Settings, config: GatewayConfig) -> Guards:
    """Each routed provider's authenticator; a routed provider without its secret is a
    configuration error naming the setting."""
    found = Guards()
    needs: dict[Provider, str] = {
        "twilio": "RINGLOG_TWILIO_AUTH_TOKEN",
        "portsip": "RINGLOG_PORTSIP_WEBHOOK_SECRET",
        "freeswitch": "RINGLOG_FREESWITCH_PASSWORD",
    }
    for provider, setting in needs.items():
        if not config.tenants(provider):
            continue
        secret = settings.secret(setting.removeprefix("RINGLOG_").lower())
        if not secret:
            raise ConfigError(
                f"{setting} (or {setting}_FILE) is not set, but RINGLOG_GATEWAY_CONFIG routes "
                f"{provider} tenants: the gateway would refuse every {provider} webhook"
            )
        if provider == "twilio":
            found.twilio = TwilioSignature(secret, settings.gateway_public_url)
        elif provider == "portsip":
            found.portsip = SharedSecret(secret)
        else:
            found.freeswitch = BasicAuth(settings.freeswitch_user, secret)
    return found


class GatewayProcess:
    def __init__(
        self,
        settings: Settings,
        routes: Sequence[WebhookRoute],
        clock: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings
        # The configuration is checked before any Kafka client exists (a refusal leaves
        # nothing to close).
        self.config = gateway_config(settings)
        checked_guards = guards(settings, self.config)
        connection = settings.kafka_connection()
        self.publisher = KafkaEventPublisher(connection, settings.topic)
        self.dead_letters = DeadLetterProducer(connection, settings.dlq_topic)
        self.metrics = GatewayMetrics()
        self.delivery: Delivery | None = None
        app = FastAPI(title="ringlog gateway", docs_url=None, redoc_url=None)
        app.include_router(
            gateway_router(
                list(routes),
                self.config,
                checked_guards,
                lambda: self.delivery,
                self.metrics,
                settings.gateway_rate_limit,
                clock or (lambda: dt.datetime.now(dt.UTC)),
            )
        )

        @app.get("/metrics", include_in_schema=False)
        async def metrics() -> Response:
            return Response(
                generate_latest(self.metrics.registry),
                headers={"Content-Type": CONTENT_TYPE_LATEST},
            )

        @app.get("/health", include_in_schema=False)
        @app.get("/ready", include_in_schema=False)
        async def health() -> Response:
            up = self.delivery is not None
            return Response(
                b'{"healthy":true}' if up else b'{"healthy":false}',
                200 if up else 503,
                media_type="application/json",
            )

        app.add_middleware(BodyLimit)
        self.server = HttpServer(app, settings.gateway_host, settings.gateway_port)

    async def start(self) -> None:
        await check_credentials(self.settings.kafka_connection())
        await self.publisher.start()
        await self.dead_letters.start()
        self.delivery = Delivery(self.publisher, self.dead_letters)
        await self.server.start()
        log.info(
            "gateway listening on %s:%d for %s",
            self.settings.gateway_host,
            self.server.port,
            ", ".join(p for p in PROVIDERS if self.config.tenants(p)),
        )

    async def stop(self) -> None:
        try:
            await self.server.stop()
        finally:
            self.delivery = None
            try:
                await self.publisher.stop()
            finally:
                await self.dead_letters.stop()


async def serve_gateway(
    settings: Settings,
    routes: Sequence[WebhookRoute],
    stop: asyncio.Event | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    started: asyncio.Future[int] | None = None,
) -> None:
    """Run until `stop` is set, or SIGTERM / SIGINT (on the main thread). `started` gets the
    port once it listens; `clock` replaces the receipt time's clock (tests)."""
    process = GatewayProcess(settings, routes, clock)
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
    await process.start()
    if started is not None:
        started.set_result(process.server.port)
    began = time.monotonic()
    try:
        await stop.wait()
    finally:
        log.info("stopping the gateway after %.0fs", time.monotonic() - began)
        await process.stop()


def run_gateway(settings: Settings, routes: Sequence[WebhookRoute]) -> None:
    setup_logging(settings.log_format, settings.log_level)
    asyncio.run(serve_gateway(settings, routes))
