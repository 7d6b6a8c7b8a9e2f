"""Topic administration: create the input and dead-letter topics when they are missing, and
read the size limit of existing ones.

The worker only ever creates (never alters) a topic: a production topic's settings belong to
its operators. Development tools may raise `max.message.bytes` on an existing topic.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from worker.adapters.kafka.connection import KafkaConnection

# The one size limit of a record batch: topics created here get it as max.message.bytes, the
# bulk publisher as its max request size, and `ringlog replay` never goes above it (a topic
# an operator created with a lower max.message.bytes lowers it: `max_message_bytes`).
# deploy/kafka.sh gives the local broker the same message.max.bytes.
MAX_MESSAGE_BYTES = 4 * 1024 * 1024


async def ensure_topic(
    brokers: str,
    topic: str,
    partitions: int = 4,
    max_message_bytes: int = MAX_MESSAGE_BYTES,
    replication_factor: int = 1,
    *,
    alter_existing: bool = True,
    client_options: dict[str, Any] | None = None,
) -> None:
    """Create `topic` with `max.message.bytes` if it does not exist. When it exists already
    and `alter_existing`, raise its `max.message.bytes` to at least `max_message_bytes`
    (partitions are left as they are). The worker passes alter_existing=False: a production
    topic's settings belong to its operators."""
    options = client_options or {"bootstrap_servers": brokers}
    admin = AIOKafkaAdminClient(**options)
    await admin.start()
    try:
        new = NewTopic(
            name=topic,
            num_partitions=partitions,
            replication_factor=replication_factor,
            topic_configs={"max.message.bytes": str(max_message_bytes)},
        )
        try:
            response = await admin.create_topics([new])
        except TopicAlreadyExistsError:
            exists = True
        else:
            exists = False
            for entry in response.topic_errors:
                code = entry[1]
                if code == TopicAlreadyExistsError.errno:
                    exists = True
                elif code != 0:
                    message = entry[2] if len(entry) > 2 else None
                    raise for_code(code)(f"creating topic {topic!r}: {message or ''}")
        if exists and alter_existing:
            await _raise_max_message_bytes(admin, topic, max_message_bytes)
    finally:
        await admin.close()


async def _raise_max_message_bytes(admin: AIOKafkaAdminClient, topic: str, wanted: int) -> None:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, None)
    current = _values(await admin.describe_configs([resource]), "max.message.bytes").get(topic)
    if isinstance(current, int) and current >= wanted:
        return
    # AlterConfigs replaces the topic's whole override set; the only override this project
    # sets on the topic is max.message.bytes (IncrementalAlterConfigs is not in aiokafka).
    alter = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(wanted)})
    for response in await admin.alter_configs([alter]):
        for res in response.resources:
            # (error_code, error_message, resource_type, resource_name)
            if res[0] != 0:
                raise for_code(res[0])(f"altering topic {topic!r}: {res[1] or ''}")


@dataclass(frozen=True)
class LimitUnknown:
    """Why a topic's max.message.bytes could not be read (e.g. no permission to describe
    its configs: an authorization error)."""

    reason: str


async def max_message_bytes(
    connection: KafkaConnection, topics: Sequence[str], *, limit_s: float = 15.0
) -> dict[str, int | LimitUnknown]:
    """The effective `max.message.bytes` of each of `topics`, as the brokers describe it: the
    topic's override, else the brokers' `message.max.bytes`; a topic that does not exist
    (yet) gets the brokers' value, as it would when auto-created. A topic whose limit cannot
    be read maps to LimitUnknown; nothing is raised."""
    try:
        return await asyncio.wait_for(_max_message_bytes(connection, topics), limit_s)
    except TimeoutError:
        why = LimitUnknown(f"no answer from Kafka at {connection.brokers} within {limit_s:.0f}s")
    except (KafkaError, OSError) as exc:
        why = LimitUnknown(f"Kafka at {connection.brokers}: {exc!r}")
    return dict.fromkeys(topics, why)


async def _max_message_bytes(
    connection: KafkaConnection, topics: Sequence[str]
) -> dict[str, int | LimitUnknown]:
    admin = AIOKafkaAdminClient(**connection.client_options())
    await admin.start()
    try:
        resources = [
            ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": None})
            for topic in topics
        ]
        found = _values(await admin.describe_configs(resources), "max.message.bytes")
        limits: dict[str, int | LimitUnknown] = {}
        for topic in topics:
            value = found.get(topic, LimitUnknown(f"Kafka did not describe topic {topic!r}"))
            if isinstance(value, _Error):
                if value.code == UnknownTopicOrPartitionError.errno:
                    # Not there (yet): created by a first send, it gets the brokers' value.
                    limits[topic] = await _broker_default(admin)
                    continue
                value = value.unknown(f"topic {topic!r}")
            limits[topic] = value
        return limits
    finally:
        await admin.close()


async def _broker_default(admin: AIOKafkaAdminClient) -> int | LimitUnknown:
    """The brokers' `message.max.bytes`: what a topic without an override gets."""
    brokers = (await admin.describe_cluster())["brokers"]
    if not brokers:
        return LimitUnknown("Kafka listed no broker to describe")
    name = str(brokers[0]["node_id"])
    resource = ConfigResource(ConfigResourceType.BROKER, name, {"message.max.bytes": None})
    value = _values(await admin.describe_configs([resource]), "message.max.bytes").get(
        name, LimitUnknown(f"Kafka did not describe broker {name}")
    )
    return value.unknown(f"broker {name}") if isinstance(value, _Error) else value


@dataclass(frozen=True)
class _Error:
    code: int
    message: str

    def unknown(self, what: str) -> LimitUnknown:
        detail = f": {self.message}" if self.message else ""
        return LimitUnknown(
            f"describing the configs of {what}: {for_code(self.code).__name__}{detail}"
        )


def _values(responses: list[Any], config: str) -> dict[str, int | LimitUnknown | _Error]:
    """resource name -> the value of `config`, or the error the brokers answered for it."""
    found: dict[str, int | LimitUnknown | _Error] = {}
    for response in responses:
        for res in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            code, message, name, entries = res[0], res[1], str(res[3]), res[4]
            if code != 0:
                found[name] = _Error(code, message or "")
                continue
            # (config_name, config_value, read_only, config_source, is_sensitive, synonyms)
            values = [str(entry[1]) for entry in entries if entry[0] == config]
            if values and values[0].isdigit():
                found[name] = int(values[0])
            else:
                found[name] = LimitUnknown(f"{name!r} has no readable {config}")
    return found
