"""Consumer (c) of `benchmarks.ingest`: a faust-streaming agent that only iterates raw bytes.

Runs in its own process because Faust wants to own the event loop and the signal handlers:

    python -m benchmarks.faust_consumer --brokers 127.0.0.1:9092 --topic T --events N

It prints exactly one JSON line on stdout (the result), everything else goes to stderr.
The worker stops itself once it has seen `--events` messages or after `--timeout` seconds
(then the figures are those of the partial run, flagged `"complete": false`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from typing import Any

# After the result is printed, Faust gets this long to shut down before the process exits
# anyway (faust-streaming can hang on shutdown; the figures are already out by then).
SHUTDOWN_GRACE_S = 15.0


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--brokers", default="127.0.0.1:9092")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--events", type=int, required=True, help="stop after this many")
    parser.add_argument("--timeout", type=float, default=120.0, help="cap in seconds")
    parser.add_argument("--app-id", default=f"ringlog-bench-faust-{int(time.time() * 1000)}")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    import faust

    started = time.perf_counter()
    app: Any = faust.App(
        args.app_id,  # also the consumer group: unique per run, so it reads from the start
        broker=f"kafka://{args.brokers}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        topic_disable_leader=True,
        stream_wait_empty=False,
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
        topic_allow_declare=False,  # the topic exists; the app must not create/alter it
    )
    topic = app.topic(args.topic, key_type=bytes, value_type=bytes, value_serializer="raw")
    state: dict[str, Any] = {"seen": 0, "first": None, "last": None, "reported": False}
    target: int = args.events

    def report(reason: str) -> None:
        if state["reported"]:
            return
        state["reported"] = True
        seen: int = state["seen"]
        first: float | None = state["first"]
        last: float | None = state["last"]
        span = (last - first) if first is not None and last is not None else 0.0
        result = {
            "consumer": "faust",
            "seen": seen,
            "target": target,
            "complete": seen >= target,
            "reason": reason,
            "seconds": span,
            "rate": seen / span if span > 0 else 0.0,
            "startup_seconds": (first - started) if first is not None else None,
        }
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()
        # Stop the worker as SIGTERM would; if Faust hangs on shutdown, exit regardless.
        watchdog = threading.Timer(SHUTDOWN_GRACE_S, lambda: os._exit(0))
        watchdog.daemon = True
        watchdog.start()
        worker._schedule_shutdown(signal.SIGTERM)

    async def consume(stream: AsyncIterator[bytes]) -> None:
        async for _value in stream:
            now = time.perf_counter()
            if state["first"] is None:
                state["first"] = now
            state["last"] = now
            state["seen"] += 1
            if state["seen"] >= target:
                report("all messages seen")

    async def cap() -> None:
        await asyncio.sleep(args.timeout)
        report(f"time cap of {args.timeout:.0f}s reached")

    app.agent(topic, name="bench-noop")(consume)
    app.task(cap)

    worker: Any = faust.Worker(
        app,
        loglevel="WARNING",
        quiet=True,
        redirect_stdouts=False,
        stdout=sys.stderr,  # stdout carries only the result line
        stderr=sys.stderr,
    )
    # The equivalent of `faust worker --without-web` (faust/cli/worker.py sets exactly this).
    app.conf.web_enabled = False
    logging.getLogger("faust").setLevel(logging.WARNING)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
