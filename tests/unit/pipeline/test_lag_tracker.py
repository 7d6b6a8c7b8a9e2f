"""Consumer lag from the broker's offsets and this worker's own commits."""

from __future__ import annotations

import asyncio

from prometheus_client import generate_latest

from tests.support.fakes import ScriptedConsumer
from worker.pipeline.lag_tracker import LagTracker
from worker.pipeline.metrics import Metrics
from worker.pipeline.ports import TopicPartition

TOPIC = "calls"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)


def consumer() -> ScriptedConsumer:
    # partition 0 holds 7 records, partition 1 holds 3
    messages = [(0, b"k", b"v")] * 7 + [(1, b"k", b"v")] * 3
    c = ScriptedConsumer.of(TOPIC, messages, 2, journal=[])

    async def nothing(_: set[TopicPartition]) -> None:
        return None

    c.subscribe(TOPIC, on_revoked=nothing, on_assigned=nothing)
    return c


def test_lag_counts_from_the_log_start_until_the_group_commits() -> None:
    c = consumer()
    tracker = LagTracker(c, Metrics(), TOPIC)

    async def scenario() -> None:
        await c.assign({P0, P1})
        await tracker.refresh()

    asyncio.run(scenario())
    assert tracker.per_partition() == {P0: 7, P1: 3}


def test_own_commits_count_before_the_broker_reports_them() -> None:
    c = consumer()
    metrics = Metrics()
    tracker = LagTracker(c, metrics, TOPIC)

    async def scenario() -> None:
        await c.assign({P0, P1})
        await tracker.refresh()
        tracker.committed({P0: 5})
        assert tracker.per_partition() == {P0: 2, P1: 3}
        await tracker.refresh()  # the broker has not seen the commit: ours is newer
        assert tracker.per_partition() == {P0: 2, P1: 3}

    asyncio.run(scenario())
    tracker.publish()
    text = generate_latest(metrics.registry).decode()
    assert 'ringlog_consumer_lag_messages{partition="0",topic="calls"} 2.0' in text
    assert 'ringlog_consumer_lag_messages{partition="1",topic="calls"} 3.0' in text
    tracker.forget({P1})
    text = generate_latest(metrics.registry).decode()
    assert 'partition="1"' not in text  # another worker reports it now
