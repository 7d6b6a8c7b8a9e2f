"""Per-call correlation state: a bounded cache of each call's distinct events.

The cache is an optimisation, never the truth. The truth is the `call_event` table: every
valid event is written there before its offset is committed, so a call that is not cached
(after a restart, a rebalance or an eviction) is reloaded from it before new events are
merged. Rows are rebuilt from the full event set, so a reload gives the same rows as if the
call had never left memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from worker.core.call_event_rows import BatchItem
from worker.core.decode import ValidEvent
from worker.core.event_pack import CallKey, pack, unpack
from worker.core.native_fast_path import NATIVE_MODULE

__all__ = ["BatchItem", "CallCache", "CallKey", "CallState", "MergeTally"]


@dataclass(slots=True)
class MergeTally:
    """What a batch's merge counts per event: the items of new events (their call_event rows),
    the types of the events written and of the duplicates, every event's time."""

    new_rows: list[BatchItem] = field(default_factory=list)
    written: list[str] = field(default_factory=list)
    duplicate: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)


def _merge_items(merged: dict[str, ValidEvent], items: list[BatchItem], tally: MergeTally) -> bool:
    """`CallState.merge_items`' loop in Python: an event whose event_id is held with a digest
    at least as large is a duplicate; any other replaces it."""
    changed = False
    for item in items:
        ev = item[1]
        values = ev.values  # not the model: the hot path builds none (ValidEvent)
        event_id = values["event_id"]
        current = merged.get(event_id)
        if current is not None and current.digest >= ev.digest:
            tally.duplicate.append(values["type"])
        else:
            merged[event_id] = ev
            tally.new_rows.append(item)
            tally.written.append(values["type"])
            changed = True
        tally.times.append(values["occurred_at"])
    return changed


_NATIVE_MERGE: Callable[..., bool] | None = (
    NATIVE_MODULE.merge_items if NATIVE_MODULE is not None else None
)


@dataclass(slots=True)  # no per-instance __dict__ (benchmarks/memory.py)
class CallState:
    """One call's distinct events and what the planner tracks of it.

    Between batches the events rest packed in one bytes object (`worker.core.event_pack`:
    about 0.2 KB per event instead of about 1.2 KB as models). A batch that touches the call
    unpacks them once (`merge`, `valid_events`), works on the models, and `pack()` puts them
    back to rest (`BatchPlanner` decides when).
    """

    partition: int
    open: bool = True
    last_event_at: datetime | None = None
    # Set once the timeout close has been written, so it is not rewritten every batch.
    timeout_closed: bool = False
    _key: CallKey | None = None
    _packed: bytes = b""
    _events: dict[str, ValidEvent] | None = None  # unpacked: a batch is working on the call
    _changed: bool = False  # since last packed: `settle()` must write the events again

    def forget_events(self) -> None:
        """Hold no event (the planner plans the call again from its stored ones)."""
        self._events = {}
        self._packed = b""
        self._changed = True

    def merge(self, event: ValidEvent, key: CallKey) -> bool:
        """Add an event of the call `key`; True if it changed the call's event set."""
        return self.merge_batch((event,), key)[0]

    def merge_batch(self, events: Iterable[ValidEvent], key: CallKey) -> list[bool]:
        """`merge` of each event in turn (the batch's events of this call, in arrival order):
        whether each changed the call's event set. One call per call, not per event."""
        merged = self._unpacked(key)
        changed = []
        for ev in events:
            event_id = ev.values["event_id"]
            current = merged.get(event_id)
            if current is not None and current.digest >= ev.digest:
                changed.append(False)
            else:
                merged[event_id] = ev
                changed.append(True)
        if True in changed:
            self._changed = True
        return changed

    def merge_items(self, items: list[BatchItem], key: CallKey, tally: MergeTally) -> bool:
        """`merge_batch` of the batch's items of this call ((record, event, row), in arrival
        order), each counted in `tally`; True if the call's event set changed. The planner's
        per-event loop: `ringlog_native` runs it when installed (`_merge_items` is the
        reference, tests/unit/core/test_call_state.py holds the native one to it)."""
        merged = self._unpacked(key)
        if _NATIVE_MERGE is not None:
            changed = _NATIVE_MERGE(
                merged, items, tally.new_rows, tally.written, tally.duplicate, tally.times
            )
        else:
            changed = _merge_items(merged, items, tally)
        if changed:
            self._changed = True
        return changed

    def valid_events(self) -> list[ValidEvent]:
        """The call's distinct events, as the decoder made them (same classes, values,
        fields-sets and digests)."""
        if self._key is None:
            return []
        return list(self._unpacked(self._key).values())

    @property
    def resting(self) -> bool:
        """True when the events are packed (no batch is working on the call)."""
        return self._events is None

    @property
    def packed(self) -> bytes:
        """The events as they rest between batches (benchmarks/memory.py measures it)."""
        return self._packed

    def settle(self) -> None:
        """Pack the events now, and keep them unpacked too until `pack()`.

        The planner calls it right after a rebuild has read every event of the call, and
        `pack()` later only lets go. Natively decoded events bring their packed bytes
        (`ValidEvent.packed`), so this mostly copies them: 0.5 us per event, against 3.2 us
        reading the models (the generator's traffic, 2026-12-03).
        """
        if self._events is not None and self._changed:
            self._packed = pack(self._events)
            self._changed = False

    def pack(self) -> None:
        """Put the events back to rest (the batch is done with them)."""
        self.settle()
        self._events = None

    def _unpacked(self, key: CallKey) -> dict[str, ValidEvent]:
        if self._events is None:
            if self._key is None:
                self._key = key
            self._events = unpack(self._packed, self._key)
        return self._events


class CallCache:
    """LRU of CallState by (project_id, call_id), bounded by `max_calls`."""

    def __init__(self, max_calls: int) -> None:
        self.max_calls = max_calls
        self._calls: OrderedDict[CallKey, CallState] = OrderedDict()
        # How many cached calls are open, kept as states are cached, opened, closed and let
        # go: the open-calls gauge read it by walking every cached call (~12 ms of the event
        # loop's thread a second at 34k calls, py-spy 2026-12-04).
        self._open = 0
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

    def peek(self, key: CallKey) -> CallState | None:
        """The call's state, without counting it as used."""
        return self._calls.get(key)

    def put(self, key: CallKey, state: CallState) -> None:
        replaced = self._calls.get(key)
        if replaced is not None and replaced.open:
            self._open -= 1
        self._calls[key] = state
        self._calls.move_to_end(key)
        if state.open:
            self._open += 1

    def set_open(self, state: CallState, is_open: bool) -> None:
        """Set `open` of a cached call's `state` (counted by `open_count`)."""
        if state.open != is_open:
            self._open += 1 if is_open else -1
        state.open = is_open

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
            self._drop(key)
            evicted += 1
        self.evictions += evicted
        return evicted

    def drop_partitions(self, partitions: set[int]) -> int:
        """Forget calls of partitions this worker no longer owns (after a rebalance)."""
        gone = [k for k, s in self._calls.items() if s.partition in partitions]
        for key in gone:
            self._drop(key)
        return len(gone)

    def _drop(self, key: CallKey) -> None:
        if self._calls.pop(key).open:
            self._open -= 1

    def clear(self) -> None:
        self._calls.clear()
        self._open = 0

    def items(self) -> Iterable[tuple[CallKey, CallState]]:
        return self._calls.items()

    def open_count(self) -> int:
        return self._open
