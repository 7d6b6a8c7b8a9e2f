"""Whether a schema upgrade may run now: it rebuilds the item table and swaps it in, so a row
written to the old table during the copy would be lost. `ringlog migrate` asks this first.

Two signs of a writer, for a ClickHouse server (an embedded chDB store needs neither: chDB
lets one process open a store, so a migrate that could open it has it to itself):

* the input topic's consumer group has members. A worker is a member from the moment it
  consumes until it stops, idle or not, so this sees every worker of the group, including
  the ones that have nothing to write yet;
* something wrote to the store within QUIET_SECONDS (the newest `ingested_at`): a writer
  outside the group (a worker configured with another group id, `ringlog rebuild`).

When Kafka cannot be asked, nothing proves that the workers are stopped: the answer is a
refusal too, and `--force` is the operator's word that they are.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

from worker.adapters.clickhouse.store import ClickHouseStore
from worker.adapters.kafka.connection import KafkaConnection
from worker.adapters.kafka.group_members import MembersUnknown, group_members

__all__ = ["QUIET_SECONDS", "writer_activity"]

QUIET_SECONDS: Final = 60
"""How long the store must have gone unwritten before an upgrade starts."""

_STOP = (
    "stop every worker (e.g. scale the deployment to 0) and every `ringlog rebuild`, "
    "then run `ringlog migrate` again"
)


async def writer_activity(
    store: ClickHouseStore, connection: KafkaConnection, group: str, *, now: datetime
) -> str | None:
    """Why an upgrade must not start now, or None when no writer is seen."""
    try:
        members = await group_members(connection, group)
    except MembersUnknown as exc:
        return (
            f"cannot tell whether workers are running: the members of consumer group "
            f"{group!r} are unknown ({exc}). Make sure no worker runs, then run "
            "`ringlog migrate --force`"
        )
    if members:
        names = ", ".join(sorted(str(m) for m in members))
        return (
            f"{len(members)} worker(s) still consume in consumer group {group!r} ({names}): {_STOP}"
        )
    newest = store.newest_write()
    if newest is not None and now - newest < timedelta(seconds=QUIET_SECONDS):
        age = max(0, int((now - newest).total_seconds()))
        return (
            f"the store was written {age}s ago (newest ingested_at {newest.isoformat()}), by "
            f"a writer outside consumer group {group!r} (a worker with another group id, "
            f"`ringlog rebuild`?): {_STOP} once nothing has written for {QUIET_SECONDS}s"
        )
    return None
