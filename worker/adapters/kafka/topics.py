"""Topic administration: create the input and dead-letter topics when they are missing.

The worker only ever creates (never alters) a topic: a production topic's settings belong to
its operators. Development tools may raise `max.message.bytes` on an existing topic.
"""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError, for_code

# The one size limit of a record batch: topics created here get it as max.message.bytes, the
# bulk publisher as its max request size, and `ringlog replay` dead-letters a line above it and
# bounds its dead letters by it. deploy/kafka.sh gives the local broker the same
# message.max.bytes.
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
    responses = await admin.describe_configs([resource])
    current: int | None = None
    for response in responses:
        for res in response.resources:
            # (error_code, error_message, resource_type, resource_name, config_entries)
            for entry in res[4]:
                if entry[0] == "max.message.bytes" and entry[1] is not None:
                    current = int(entry[1])
    if current is not None and current >= wanted:
        return
    # AlterConfigs replaces the topic's whole override set; the only override this project
    # sets on the topic is max.message.bytes (IncrementalAlterConfigs is not in aiokafka).
    alter = ConfigResource(ConfigResourceType.TOPIC, topic, {"max.message.bytes": str(wanted)})
    for response in await admin.alter_configs([alter]):
        for res in response.resources:
            # (error_code, error_message, resource_type, resource_name)
            if res[0] != 0:
                raise for_code(res[0])(f"altering topic {topic!r}: {res[1] or ''}")
