"""`python -m devtools simulate --as freeswitch` through a live `ringlog gateway`, real Kafka,
the worker and chDB: every CDR is answered 2xx and the worker's rows are exactly the rows the
pure core builds from the same CDRs normalized in memory."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from devtools.cli import app as devtools_app
from devtools.simulate_as import encode
from devtools.traffic.native.config import routing_config
from devtools.traffic.native.model import simulated_project
from tests.integration.test_providers_end_to_end import nonempty, read_rows
from tests.support import provider_fixtures as apf
from tests.support.in_process_worker import fresh_settings, running_worker
from worker.core.providers import freeswitch
from worker.core.providers.base import Normalized
from worker.gateway.config import GatewayConfig
from worker.gateway.provider_routes import default_routes
from worker.service.gateway_host import serve_gateway

pytestmark = pytest.mark.kafka

SEED, CALLS, TENANT = 11, 20, "lab"
START = "2024-05-01T08:00:00+0000"
PASSWORD = "fs-simulate-password"


def test_simulated_freeswitch_cdrs_through_the_gateway(
    kafka_bootstrap: str, chdb_store_url: str, tmp_path: Path
) -> None:
    config = routing_config(simulated_project(SEED), "freeswitch", TENANT)
    routing = tmp_path / "gateway.yaml"
    routing.write_text(yaml.safe_dump(config))
    settings = fresh_settings(kafka_bootstrap, chdb_store_url).with_overrides(
        gateway_config=routing, gateway_port=0, freeswitch_password=PASSWORD
    )
    encoded = encode("freeswitch", CALLS, SEED, datetime(2024, 5, 1, 8, tzinfo=UTC))
    ctx = GatewayConfig.model_validate(config).context("freeswitch", TENANT)
    assert ctx is not None
    normalized = Normalized()
    for post in encoded.posts:
        assert post.body is not None
        normalized += freeswitch.normalize_body(post.body, ctx)
    assert normalized.unmapped == () and len(encoded.calls) >= 12
    expected = apf.rows_of(normalized.events)
    env = {"RINGLOG_FREESWITCH_PASSWORD": PASSWORD, "RINGLOG_KAFKA_BROKERS": kafka_bootstrap}

    async def scenario() -> tuple[str, int]:
        async with running_worker(settings) as run:
            stop = asyncio.Event()
            started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            gateway = asyncio.create_task(
                serve_gateway(settings, default_routes(), stop, None, started)
            )
            port = await asyncio.wait_for(started, 30)
            args = ["simulate", "--as", "freeswitch", "--calls", str(CALLS), "--seed", str(SEED)]
            args += ["--start", START, "--tenant", TENANT, "--gateway", f"http://127.0.0.1:{port}"]
            try:
                result = await asyncio.to_thread(CliRunner().invoke, devtools_app, args, env=env)
                # a wrong credential is refused and counted, never produced
                async with httpx.AsyncClient() as client:
                    forged = await client.post(
                        f"http://127.0.0.1:{port}/freeswitch/{TENANT}/cdr",
                        content=encoded.posts[0].body,
                        auth=("freeswitch", "wrong"),
                    )
            finally:
                stop.set()
                await gateway
            await run.drained()
            got = await asyncio.to_thread(read_rows, run)
            assert nonempty(got) == nonempty(expected)
            return result.output, forged.status_code

    output, forged_status = asyncio.run(scenario())
    summary = " ".join(output.split())
    posts = len(encoded.posts)
    assert f"posted {posts} requests" in summary and f"{posts} 2xx, refused: none" in summary
    assert forged_status == 403
