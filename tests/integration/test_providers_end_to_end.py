"""Real telephony payloads end to end: the project's provider fixtures through `ringlog
gateway` (Twilio signed, PortSIP with its secret, FreeSWITCH with Basic auth) or `ringlog
import` (Asterisk CEL files, PortSIP's REST API), real Kafka, the worker and chDB. The rows
read back with FINAL are exactly the hand-computed rows of each fixture, and every webhook
delivered twice in a shuffled order gives the same rows.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import random
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import yaml
from twilio.request_validator import RequestValidator
from typer.testing import CliRunner

import tests.unit.core.providers.provider_fixtures as bpf
import tests.unit.core.providers.test_asterisk_cel as asterisk_tests
import tests.unit.core.providers.test_freeswitch as freeswitch_tests
from schemas.events import parse_timestamp
from tests.support import builders as b
from tests.support import provider_fixtures as apf
from tests.support.expected_rows import comparable
from tests.support.fake_portsip import TOKEN as PORTSIP_API_TOKEN
from tests.support.fake_portsip import FakePortsip
from tests.support.fake_twilio import ACCOUNT as TWILIO_ACCOUNT
from tests.support.fake_twilio import FakeTwilio
from tests.support.in_process_worker import Running, fresh_settings, running_worker
from worker.cli.main import app
from worker.gateway.provider_routes import default_routes
from worker.service.gateway_host import serve_gateway
from worker.service.settings import Settings

pytestmark = pytest.mark.kafka

TWILIO_TOKEN = "twilio-auth-token-e2e-0123456789"
PORTSIP_SECRET = "portsip-webhook-secret-e2e"
FS_PASSWORD = "freeswitch-e2e-password"
PUBLIC = "https://ringlog.example.com"
Tables = dict[str, list[dict[str, Any]]]


def routing_file(path: Path) -> Path:
    """Both helpers' fixture contexts as one gateway routing file."""
    policies = {**apf.CONTEXTS["twilio"].policy_for_number, **bpf.CONTEXT.policy_for_number}
    tenant = {"project_id": b.PROJECT, "numbers": policies}
    users = {**apf.CONTEXTS["portsip"].user_for_endpoint, **bpf.CONTEXT.user_for_endpoint}
    phones = {**apf.CONTEXTS["portsip"].phone_for_endpoint, **bpf.CONTEXT.phone_for_endpoint}
    config = {
        "twilio": {"acme": tenant},
        "portsip": {"hq": tenant},
        "freeswitch": {"lab": tenant},
        "asterisk": {"pbx": tenant, "berlin": {**tenant, "time_zone": "Europe/Berlin"}},
        "users": users,
        "phones": phones,
    }
    path.write_text(yaml.safe_dump(config))
    return path


class Clock:
    """The gateway's receipt time, set per request to the fixture's `received_at`."""

    def __init__(self) -> None:
        self.now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def gateway_settings(settings: Settings, config: Path) -> Settings:
    return settings.with_overrides(
        gateway_config=config,
        gateway_port=0,
        gateway_public_url=PUBLIC,
        twilio_auth_token=TWILIO_TOKEN,
        portsip_webhook_secret=PORTSIP_SECRET,
        freeswitch_password=FS_PASSWORD,
    )


async def with_gateway(
    settings: Settings, clock: Clock, scenario: Callable[[Running, httpx.AsyncClient], Any]
) -> Tables:
    """Run a worker and a gateway, play `scenario`, drain, and read the project's rows."""
    async with running_worker(settings) as run:
        stop = asyncio.Event()
        started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        gateway = asyncio.create_task(
            serve_gateway(settings, default_routes(), stop, clock, started)
        )
        port = await asyncio.wait_for(started, 30)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                await scenario(run, client)
        finally:
            stop.set()
            await gateway
        await run.drained()
        return await asyncio.to_thread(read_rows, run)


def read_rows(run: Running) -> Tables:
    out: Tables = {}
    for table in apf.TABLES:
        columns, rows = run.worker.store.query(f"SELECT * FROM {table} FINAL")
        found = [comparable(dict(zip(columns, row, strict=True))) for row in rows]
        out[table] = sorted(found, key=lambda r: str(r["id"]))
    return out


def nonempty(tables: Tables) -> Tables:
    return {table: rows for table, rows in tables.items() if rows}


def twice_shuffled(items: list[Any], seed: int) -> list[Any]:
    """Every delivery twice (a provider's retries), in an order that keeps each request's
    receipt time for its own kind; the worker's rows do not depend on arrival order."""
    doubled = items + items
    random.Random(seed).shuffle(doubled)
    return doubled


async def post_twilio(client: httpx.AsyncClient, clock: Clock, delivery: Mapping[str, Any]) -> None:
    path = f"/twilio/acme/{delivery['route']}"
    query = dict(delivery.get("query", {}))
    url = PUBLIC + path + (f"?{httpx.QueryParams(query)}" if query else "")
    form = dict(delivery["form"])
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(url, form)
    if "received_at" in delivery:
        clock.now = parse_timestamp(delivery["received_at"])
    answer = await client.post(
        path, params=query, data=form, headers={"X-Twilio-Signature": signature}
    )
    assert answer.status_code == 200, answer.text


def test_twilio_webhooks_through_the_gateway_and_late_prices_through_the_importer(
    kafka_bootstrap: str, chdb_store_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    config = routing_file(tmp_path / "gateway.yaml")
    fixtures = [apf.load("twilio", n) for n in apf.names("twilio")]
    # A fixture that extends another repeats its deliveries and supersedes its rows (the
    # late price changes the answered call's costs): expected rows keyed by id, last wins.
    by_id: dict[str, dict[str, Any]] = {}
    for fixture in sorted(fixtures, key=lambda f: bool(f.get("extends"))):
        for table, rows in apf.expected_rows(fixture).items():
            by_id.update({f"{table}|{r['id']}": {**r, "_table": table} for r in rows})
    expected: Tables = {}
    for row in by_id.values():
        expected.setdefault(row.pop("_table"), []).append(row)
    expected = {t: sorted(r, key=lambda x: str(x["id"])) for t, r in expected.items()}
    webhooks = [d for f in fixtures for d in f["deliveries"] if d["kind"] == "form"]
    prices = [d["body"] for f in fixtures for d in f["deliveries"] if d["kind"] == "call_resource"]
    fake = FakeTwilio(prices, TWILIO_TOKEN)
    env = {
        "RINGLOG_KAFKA_BROKERS": kafka_bootstrap,
        "RINGLOG_GATEWAY_CONFIG": str(config),
        "RINGLOG_TWILIO_ACCOUNT_SID": TWILIO_ACCOUNT,
        "RINGLOG_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
    }
    outputs: list[str] = []

    async def scenario(run: Running, client: httpx.AsyncClient) -> None:
        for delivery in twice_shuffled(webhooks, seed=3):
            await post_twilio(client, clock, delivery)
        with fake.serving() as url:
            args = ["import", "twilio-prices", "--tenant", "acme", "--since", "2026-01-01"]
            for _ in range(2):  # prices imported twice change nothing
                result = await asyncio.to_thread(
                    CliRunner().invoke,
                    app,
                    args,
                    env={
                        **env,
                        "RINGLOG_TOPIC": run.worker.settings.topic,
                        "RINGLOG_DLQ_TOPIC": run.worker.settings.dlq_topic,
                        "RINGLOG_TWILIO_API_URL": url,
                    },
                )
                assert result.exit_code == 0, result.output
                outputs.append(result.output)

    settings = gateway_settings(fresh_settings(kafka_bootstrap, chdb_store_url), config)
    got = asyncio.run(with_gateway(settings, clock, scenario))
    assert nonempty(got) == nonempty(expected)
    priced = sum(1 for p in prices if p.get("price") is not None)  # null: not priced yet
    assert f"read {len(prices)} records, produced {priced} events" in outputs[0]


def test_portsip_webhooks_and_freeswitch_cdrs_through_the_gateway(
    kafka_bootstrap: str, chdb_store_url: str, tmp_path: Path
) -> None:
    clock = Clock()
    config = routing_file(tmp_path / "gateway.yaml")
    portsip_names = [
        n
        for n in apf.names("portsip")
        if all(d["kind"] == "webhook" for d in apf.load("portsip", n)["deliveries"])
    ]
    portsip = [apf.load("portsip", n) for n in portsip_names]
    expected: Tables = {}
    for fixture in portsip:
        for table, rows in apf.expected_rows(fixture).items():
            expected.setdefault(table, []).extend(rows)
    for rows_of in freeswitch_tests.EXPECTED.values():
        for table, rows in rows_of().items():
            expected.setdefault(table, []).extend(rows)
    expected = {t: sorted(r, key=lambda x: str(x["id"])) for t, r in expected.items()}
    basic = base64.b64encode(f"freeswitch:{FS_PASSWORD}".encode()).decode()
    posts: list[tuple[str, bytes, dict[str, str]]] = [
        (
            "/portsip/hq/call-cdr",
            orjson.dumps(d["body"]),
            {"X-Ringlog-Secret": PORTSIP_SECRET, "Content-Type": "application/json"},
        )
        for f in portsip
        for d in f["deliveries"]
    ]
    for name in freeswitch_tests.EXPECTED:
        for body in freeswitch_tests.bodies(name):
            posts.append(
                (
                    "/freeswitch/lab/cdr",
                    body,
                    {"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
                )
            )

    async def scenario(run: Running, client: httpx.AsyncClient) -> None:
        for path, body, headers in twice_shuffled(posts, seed=5):
            answer = await client.post(path, content=body, headers=headers)
            assert answer.status_code == 200, answer.text

    settings = gateway_settings(fresh_settings(kafka_bootstrap, chdb_store_url), config)
    got = asyncio.run(with_gateway(settings, clock, scenario))
    assert nonempty(got) == nonempty(expected)


def test_asterisk_cel_and_portsip_api_through_the_importers(
    kafka_bootstrap: str, chdb_store_url: str, tmp_path: Path
) -> None:
    config = routing_file(tmp_path / "gateway.yaml")
    settings = fresh_settings(kafka_bootstrap, chdb_store_url)
    env = {
        "RINGLOG_KAFKA_BROKERS": settings.kafka_brokers,
        "RINGLOG_TOPIC": settings.topic,
        "RINGLOG_DLQ_TOPIC": settings.dlq_topic,
        "RINGLOG_GATEWAY_CONFIG": str(config),
        "RINGLOG_PORTSIP_API_TOKEN": PORTSIP_API_TOKEN,
    }
    expected: Tables = {}
    for rows_of in asterisk_tests.EXPECTED.values():
        for table, rows in rows_of().items():
            expected.setdefault(table, []).extend(rows)
    calllog = apf.load("portsip", "late_cost")
    for table, rows in apf.expected_rows(calllog).items():
        expected.setdefault(table, []).extend(rows)
    expected = {t: sorted(r, key=lambda x: str(x["id"])) for t, r in expected.items()}
    records = [d["body"] for d in calllog["deliveries"]]
    runner = CliRunner()
    seen: dict[str, Any] = {}

    async def scenario() -> Tables:
        async with running_worker(settings) as run:
            for name in sorted(asterisk_tests.EXPECTED):
                path = asterisk_tests.FIXTURES / name
                for _ in range(2):  # an import run twice changes nothing
                    result = await asyncio.to_thread(
                        runner.invoke,
                        app,
                        ["import", "asterisk-cel", str(path), "--tenant", "pbx"],
                        env=env,
                    )
                    assert result.exit_code == 0, result.output
            fake = FakePortsip(records)
            with fake.serving() as url:
                portsip_env = {**env, "RINGLOG_PORTSIP_API_URL": url}
                state = tmp_path / "portsip.json"
                args = ["import", "portsip", "--tenant", "hq", "--state", str(state)]
                first = await asyncio.to_thread(
                    runner.invoke, app, [*args, "--since", "2020-01-01T00:00:00Z"], env=portsip_env
                )
                assert first.exit_code == 0, first.output
                resumed = await asyncio.to_thread(runner.invoke, app, args, env=portsip_env)
                assert resumed.exit_code == 0, resumed.output
                seen["first"], seen["resumed"] = first.output, resumed.output
            await run.drained()
            return await asyncio.to_thread(read_rows, run)

    got = asyncio.run(scenario())
    assert nonempty(got) == nonempty(expected)
    assert f"read {len(records)} records" in seen["first"]
    assert "read 0 records, produced 0 events" in seen["resumed"]  # nothing read twice
