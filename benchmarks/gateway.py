"""Gateway benchmark: signed Twilio status callbacks through `ringlog gateway` (each answered
only once Kafka acknowledged its event, acks=all) beside a bare aiokafka producer sending the
same number of events with acks=all, in the same run and with the same concurrency.

    python -m benchmarks.gateway                    # 5000 requests, 8 at a time
    python -m benchmarks.gateway --requests 20000 --concurrency 32 --json

The gateway runs in this process exactly as `ringlog gateway` runs it (`serve_gateway`); the
HTTP client (aiohttp) runs here too, so both figures include a client's cost on the same 2
cores.
Machines are shared and noisy: compare the ratio, not absolute rates.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml
from aiokafka import AIOKafkaProducer
from twilio.request_validator import RequestValidator

from devtools.kafka_local import kafka_up
from devtools.producer import ensure_topic
from worker.gateway.provider_routes import default_routes
from worker.service.gateway_host import serve_gateway
from worker.service.settings import Settings

TOKEN = "benchmark-twilio-auth-token-0123"
PUBLIC = "https://ringlog.example.com"
PROJECT = "1fb17c23-90c1-42cf-93ac-94af0f21ddb6"
POLICY = "6a1f0c9e-2b7c-4a8e-9d1f-3c5e7a9b1d2f"


@dataclass
class Figures:
    name: str
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def percentile(times: list[float], q: float) -> float:
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed_pool(
    n: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> tuple[float, list[float]]:
    """Run one(i) for i < n, `concurrency` at a time; (seconds, per-call latencies in ms)."""
    latencies: list[float] = []
    counter = iter(range(n))

    async def lane() -> None:
        for i in counter:
            started = time.perf_counter()
            await one(i)
            latencies.append((time.perf_counter() - started) * 1000)

    began = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - began, latencies


def callback(i: int) -> dict[str, str]:
    """The first status callback of a <Dial> child leg: one dial_started event."""
    parent = f"CA{uuid.UUID(int=i).hex}"
    child = f"CA{uuid.UUID(int=10**12 + i).hex}"
    return {
        "AccountSid": "AC" + "b" * 32,
        "ApiVersion": "2010-04-01",
        "CallSid": child,
        "ParentCallSid": parent,
        "CallStatus": "initiated",
        "Direction": "outbound-dial",
        "From": "+14155550100",
        "To": "+14155550111",
        "SequenceNumber": "0",
        "CallbackSource": "call-progress-events",
        "Timestamp": format_datetime(dt.datetime.fromtimestamp(1767693600 + i, dt.UTC), True),
    }


async def bare(brokers: str, topic: str, n: int, concurrency: int) -> Figures:
    producer = AIOKafkaProducer(bootstrap_servers=brokers, acks="all", enable_idempotence=True)
    await producer.start()
    try:

        async def one(i: int) -> None:
            event = {"event_id": f"bare-{i}", "call_id": f"c{i}", "type": "t", **callback(i)}
            await producer.send_and_wait(topic, orjson.dumps(event), key=f"c{i}".encode())

        seconds, latencies = await timed_pool(n, concurrency, one)
    finally:
        await producer.stop()
    return Figures(
        "bare aiokafka send_and_wait (acks=all)",
        n,
        seconds,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
    )


async def through_gateway(brokers: str, n: int, concurrency: int, workdir: Path) -> Figures:
    config = workdir / "gateway.yaml"
    config.write_text(
        yaml.safe_dump({"twilio": {"bench": {"project_id": PROJECT, "default_policy_id": POLICY}}})
    )
    topic = f"bench-gw-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        kafka_brokers=brokers,
        topic=topic,
        dlq_topic=f"{topic}.dlq",
        gateway_config=config,
        gateway_port=0,
        gateway_public_url=PUBLIC,
        twilio_auth_token=TOKEN,
        gateway_rate_limit=1_000_000,
    )
    await ensure_topic(brokers, settings.topic, partitions=4)
    await ensure_topic(brokers, settings.dlq_topic, partitions=1)
    stop = asyncio.Event()
    started: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    gateway = asyncio.create_task(serve_gateway(settings, default_routes(), stop, None, started))
    port = await asyncio.wait_for(started, 60)
    validator = RequestValidator(TOKEN)
    path = "/twilio/bench/status"
    forms = [callback(i) for i in range(n)]
    signatures = [validator.compute_signature(PUBLIC + path, f) for f in forms]
    # aiohttp as the load generator: httpx's per-request cost here was larger than the
    # gateway's own (measured with cProfile), which would have made the figure the client's.
    connector = aiohttp.TCPConnector(limit=concurrency)
    try:
        async with aiohttp.ClientSession(f"http://127.0.0.1:{port}", connector=connector) as client:

            async def one(i: int) -> None:
                async with client.post(
                    path, data=forms[i], headers={"X-Twilio-Signature": signatures[i]}
                ) as answer:
                    if answer.status != 200:
                        raise RuntimeError(
                            f"gateway answered {answer.status}: {await answer.text()}"
                        )
                    await answer.read()

            await one(0)  # warm up (the first produce waits for metadata)
            seconds, latencies = await timed_pool(n, concurrency, one)
    finally:
        stop.set()
        await gateway
    return Figures(
        "ringlog gateway: signed Twilio callback -> 2xx after acks",
        n,
        seconds,
        percentile(latencies, 0.5),
        percentile(latencies, 0.99),
    )


async def run(args: argparse.Namespace) -> dict[str, Any]:
    brokers = args.brokers or kafka_up()
    topic = f"bench-bare-{uuid.uuid4().hex[:8]}"
    await ensure_topic(brokers, topic, partitions=4)
    with tempfile.TemporaryDirectory() as workdir:
        base = await bare(brokers, topic, args.requests, args.concurrency)
        gw = await through_gateway(brokers, args.requests, args.concurrency, Path(workdir))
    return {
        "requests": args.requests,
        "concurrency": args.concurrency,
        "figures": [{**asdict(f), "per_second": round(f.rate, 1)} for f in (base, gw)],
        "gateway_over_bare": round(gw.rate / base.rate, 3),
    }


def report(result: dict[str, Any]) -> None:
    print(f"{result['requests']} requests, {result['concurrency']} at a time")
    print(f"{'':58} {'per s':>9} {'p50 ms':>8} {'p99 ms':>8}")
    for f in result["figures"]:
        print(f"{f['name']:58} {f['per_second']:>9.1f} {f['p50_ms']:>8.2f} {f['p99_ms']:>8.2f}")
    print(f"gateway / bare = {result['gateway_over_bare']:.3f}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000, help="webhooks (and bare sends)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight")
    parser.add_argument("--brokers", default=None, help="Kafka (default: start the local one)")
    parser.add_argument("--json", action="store_true", help="also print the result as JSON")
    args = parser.parse_args(argv)
    result = asyncio.run(run(args))
    report(result)
    if args.json:
        print(orjson.dumps(result).decode())
    return result


if __name__ == "__main__":
    main()
