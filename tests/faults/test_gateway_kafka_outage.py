"""Kafka stops while FreeSWITCH posts a call's CDRs to `ringlog gateway`: the webhook that
meets the outage is refused (503, so the provider retries), the retry after Kafka is back is
accepted, and the worker ends with exactly one set of the call's rows.

Runs on a PRIVATE broker (deploy/kafka.sh with its own home and ports), never the shared one.
"""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path
from typing import Any

import httpx
import pytest

import tests.unit.core.providers.test_freeswitch as fs_tests
from devtools.fault_harness import LocalBroker
from tests.integration.test_providers_end_to_end import (
    FS_PASSWORD,
    Clock,
    gateway_settings,
    nonempty,
    read_rows,
    routing_file,
)
from tests.support.in_process_worker import fresh_settings, running_worker
from worker.gateway.provider_routes import default_routes
from worker.service.gateway_host import serve_gateway

pytestmark = pytest.mark.kafka

HUNT = "hunt-alice-no-answer-bob-answers"


def test_a_webhook_during_a_kafka_outage_is_refused_and_its_retry_lands_once(
    tmp_path: Path, chdb_store_url: str
) -> None:
    broker = LocalBroker(tmp_path / "kafka")
    broker.up()
    try:
        answers = asyncio.run(_scenario(broker, tmp_path, chdb_store_url))
    finally:
        broker.down(purge=True)
    assert answers["statuses"] == [200, 503, 200, 200]
    assert answers["rows"] == nonempty(fs_tests.EXPECTED[HUNT]())


async def _scenario(broker: LocalBroker, tmp_path: Path, chdb_url: str) -> dict[str, Any]:
    settings = gateway_settings(
        fresh_settings(broker.bootstrap, chdb_url), routing_file(tmp_path / "gateway.yaml")
    )
    a_leg, alice, bob = fs_tests.bodies(HUNT)
    basic = base64.b64encode(f"freeswitch:{FS_PASSWORD}".encode()).decode()
    headers = {"Authorization": f"Basic {basic}", "Content-Type": "application/json"}
    statuses: list[int] = []
    async with running_worker(settings) as run:
        stop = asyncio.Event()
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gateway = asyncio.create_task(
            serve_gateway(settings, default_routes(), stop, Clock(), started)
        )
        port = await asyncio.wait_for(started, 30)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:

                async def post(body: bytes) -> int:
                    answer = await client.post("/freeswitch/lab/cdr", content=body, headers=headers)
                    return answer.status_code

                statuses.append(await post(a_leg))
                await asyncio.to_thread(broker.down)
                statuses.append(await post(alice))  # Kafka is gone: 503
                await asyncio.to_thread(broker.up)
                statuses.append(await post(alice))  # the provider's retry
                statuses.append(await post(bob))
        finally:
            stop.set()
            await gateway
        await run.drained(limit_s=180)
        rows = await asyncio.to_thread(read_rows, run)
    return {"statuses": statuses, "rows": nonempty(rows)}
