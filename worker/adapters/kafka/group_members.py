"""Who is in a consumer group right now: the members the group coordinator lists.

`ringlog migrate` asks before it rebuilds a table: a running worker is a member of the
input topic's consumer group for as long as it consumes (even while idle, when it writes
nothing), and it leaves the group when it stops.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from worker.adapters.kafka.connection import KafkaConnection

__all__ = ["GroupMember", "MembersUnknown", "group_members"]


class MembersUnknown(Exception):
    """Kafka could not be asked (unreachable, no answer in time, an error code)."""


@dataclass(frozen=True)
class GroupMember:
    member_id: str
    client_id: str
    host: str

    def __str__(self) -> str:
        return f"{self.client_id} on {self.host.lstrip('/')}"


async def group_members(
    connection: KafkaConnection, group: str, *, limit_s: float = 15.0
) -> list[GroupMember]:
    """The members of `group` (empty: nobody consumes, or the group does not exist)."""
    try:
        return await asyncio.wait_for(_members(connection, group), limit_s)
    except TimeoutError:
        raise MembersUnknown(
            f"no answer from Kafka at {connection.brokers} within {limit_s:.0f}s"
        ) from None
    except (KafkaError, OSError) as exc:
        raise MembersUnknown(f"Kafka at {connection.brokers}: {exc!r}") from None


async def _members(connection: KafkaConnection, group: str) -> list[GroupMember]:
    admin = AIOKafkaAdminClient(**connection.client_options())
    await admin.start()
    try:
        described = await admin.describe_consumer_groups([group])
    finally:
        await admin.close()
    return _parse(described, group)


def _parse(described: list[Any], group: str) -> list[GroupMember]:
    members: list[GroupMember] = []
    for response in described:
        for entry in getattr(response, "groups", []):
            # (error_code, group_id, state, protocol_type, protocol, members, ...)
            error_code, group_id, members_of_group = entry[0], entry[1], entry[5]
            if group_id != group:
                continue
            if error_code != 0:  # e.g. the coordinator is loading or moving: cannot tell
                raise MembersUnknown(f"describing consumer group {group!r}: error {error_code}")
            for member in members_of_group:
                # (member_id, client_id, client_host, metadata, assignment)
                members.append(GroupMember(str(member[0]), str(member[1]), str(member[2])))
    return members
