"""`max_message_bytes`: a topic's effective max.message.bytes as the brokers describe it (an
in-memory admin client answering DescribeConfigs as Kafka does): its override, the brokers'
message.max.bytes for a topic not there yet, and LimitUnknown, never an exception, when it
cannot be read (an authorization error, Kafka unreachable)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaConnectionError

from worker.adapters.kafka import topics
from worker.adapters.kafka.connection import KafkaConnection
from worker.adapters.kafka.topics import LimitUnknown, max_message_bytes

UNKNOWN_TOPIC = 3
TOPIC_AUTHORIZATION_FAILED = 29
CLUSTER_AUTHORIZATION_FAILED = 31


@dataclass
class Response:
    resources: list[tuple[Any, ...]]


class FakeAdmin:
    """Answers DescribeConfigs from `configs`: (type, name) -> value, or an error code."""

    configs: ClassVar[dict[tuple[ConfigResourceType, str], int]] = {}
    fail_start: ClassVar[Exception | None] = None
    closed: ClassVar[int] = 0

    def __init__(self, **options: Any) -> None:
        assert options["bootstrap_servers"] == "kafka:9092"

    async def start(self) -> None:
        if FakeAdmin.fail_start is not None:
            raise FakeAdmin.fail_start

    async def close(self) -> None:
        FakeAdmin.closed += 1

    async def describe_cluster(self) -> dict[str, Any]:
        return {"brokers": [{"node_id": 7, "host": "kafka", "port": 9092, "rack": None}]}

    async def describe_configs(self, resources: list[ConfigResource]) -> list[Response]:
        out: list[tuple[Any, ...]] = []
        for resource in resources:
            assert resource.configs is not None
            [config] = resource.configs  # only the one asked for
            found = self.configs[resource.resource_type, resource.name]
            if found < 100:  # an error code
                message = "" if found == UNKNOWN_TOPIC else "denied"
                out.append((found, message, 2, resource.name, []))
            else:
                entry: tuple[Any, ...] = (config, str(found), False, 1, False, [])
                out.append((0, "", 2, resource.name, [entry]))
        return [Response(out)]


@pytest.fixture
def admin(monkeypatch: pytest.MonkeyPatch) -> type[FakeAdmin]:
    monkeypatch.setattr(topics, "AIOKafkaAdminClient", FakeAdmin)
    FakeAdmin.configs, FakeAdmin.fail_start, FakeAdmin.closed = {}, None, 0
    return FakeAdmin


def read(*names: str) -> dict[str, int | LimitUnknown]:
    return asyncio.run(max_message_bytes(KafkaConnection("kafka:9092"), names))


TOPIC, BROKER = ConfigResourceType.TOPIC, ConfigResourceType.BROKER


def test_a_topics_override_and_the_brokers_value_for_a_topic_not_there_yet(
    admin: type[FakeAdmin],
) -> None:
    admin.configs = {
        (TOPIC, "events"): 1048576,
        (TOPIC, "events.dlq"): UNKNOWN_TOPIC,  # auto-created by its first dead letter
        (BROKER, "7"): 2097152,
    }

    assert read("events", "events.dlq") == {"events": 1048576, "events.dlq": 2097152}
    assert admin.closed == 1


def test_an_authorization_error_is_a_limit_unknown_that_says_so(admin: type[FakeAdmin]) -> None:
    admin.configs = {
        (TOPIC, "events"): TOPIC_AUTHORIZATION_FAILED,
        (TOPIC, "events.dlq"): UNKNOWN_TOPIC,
        (BROKER, "7"): CLUSTER_AUTHORIZATION_FAILED,
    }

    assert read("events", "events.dlq") == {
        "events": LimitUnknown(
            "describing the configs of topic 'events': TopicAuthorizationFailedError: denied"
        ),
        "events.dlq": LimitUnknown(
            "describing the configs of broker 7: ClusterAuthorizationFailedError: denied"
        ),
    }
    assert admin.closed == 1


def test_kafka_unreachable_is_a_limit_unknown_for_every_topic(admin: type[FakeAdmin]) -> None:
    admin.fail_start = KafkaConnectionError("no route")

    why = LimitUnknown("Kafka at kafka:9092: KafkaConnectionError('no route')")
    assert read("events", "events.dlq") == {"events": why, "events.dlq": why}
