"""Per-call correlation state: a bounded cache of each call's distinct events.

The cache is an optimisation, never the truth. The truth is the `call_event` table: every
valid event is written there before its offset is committed, so a call that is not cached
(after a restart, a rebalance or an eviction) is reloaded from it before new events are
merged. Rows are rebuilt from the full event set, so a reload gives the same rows as if the
call had never left memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from schemas.events import Envelope
from worker.core.decode import ValidEvent

CallKey = tuple[str, str]  # (project_id, call_id)


@dataclass(slots=True)  # no per-instance __dict__: 40 B less per cached call (benchmarks/memory.py)
class CallState:
    partition: int
    events: dict[str, ValidEvent] = field(default_factory=dict)
    open: bool = True
    last_event_at: datetime | None = None
    # Set once the timeout close has been written, so it is not rewritten every batch.
    timeout_closed: bool = False

    def merge(self, event: ValidEvent, key: CallKey) -> bool:
        """Add an event of the call `key`; True if it changed the call's event set."""
        current = self.events.get(event.event.event_id)
        if current is not None and current.digest >= event.digest:
            return False
        _compact(event.event, key)
        self.events[event.event.event_id] = event
        return True


# One fields-set per set of fields (events of one type share a few), instead of pydantic's set
# per event (728 B). A frozenset: nothing may change a set that events share. Bounded: a
# producer varying its optional fields cannot grow it without limit.
_FIELDS_SETS: dict[frozenset[str], frozenset[str]] = {}
_FIELDS_SETS_MAX = 4096


def _compact(event: Envelope, key: CallKey) -> None:
    """Make a cached event smaller without changing any value (benchmarks/memory.py measures
    it): events are frozen models, so they can share their fields-set, and the ids every
    event of the call repeats can be the cache key's own strings."""
    fields = frozenset(event.__pydantic_fields_set__)
    shared = _FIELDS_SETS.get(fields)
    if shared is None and len(_FIELDS_SETS) < _FIELDS_SETS_MAX:
        shared = _FIELDS_SETS[fields] = fields
    object.__setattr__(event, "__pydantic_fields_set__", shared or fields)
    values = event.__dict__
    values["project_id"], values["call_id"] = key  # equal strings: the key is made of them


class CallCache:
    """LRU of CallState by (project_id, call_id), bounded by `max_calls`."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self._calls: OrderedDict[CallKey, CallState] = OrderedDict()
        self.evictions = 0

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, key: CallKey) -> bool:
        return key in self._calls

    def get(self, key: CallKey) -> CallState | None:
        state = self._calls.get(key)
        if state is not None:
            self._calls.move_to_end(key)
        return state

    def put(self, key: CallKey, state: CallState) -> None:
        self._calls[key] = state
        self._calls.move_to_end(key)

    def evict_overflow(self, keep: Iterable[CallKey] = ()) -> int:
        """Drop least recently used calls beyond the bound (never those in `keep`)."""
        protected = set(keep)
        evicted = 0
        while len(self._calls) > self.max_calls:
            key, _ = next(iter(self._calls.items()))
            if key in protected:
                self._calls.move_to_end(key)
                if len(protected) >= len(self._calls):
                    break
                continue
            del self._calls[key]
            evicted += 1
        self.evictions += evicted
        return evicted

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget calls of partitions this worker no longer owns (after a rebalance)."""
        gone = [k for k, s in self._calls.items() if s.partition in partitions]
        for key in gone:
            del self._calls[key]
        return len(gone)

    def clear(self) -> None:
        self._calls.clear()

    def items(self) -> Iterable[tuple[CallKey, CallState]]:
        return self._calls.items()

    def open_count(self) -> int:
        return sum(1 for s in self._calls.values() if s.open)
