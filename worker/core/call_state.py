"""Per-call correlation state: a bounded cache of each call's distinct events.

The cache is an optimisation, never the truth. The truth is the `call_event` table: every
valid event is written there before its offset is committed, so a call that is not cached
(after a restart, a rebalance or an eviction) is reloaded from it before new events are
merged. Rows are rebuilt from the full event set, so a reload gives the same rows as if the
call had never left memory.
"""

from __future__ import annotations

import types
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

from schemas.events import Envelope
from worker.core.decode import ValidEvent

CallKey = tuple[str, str]  # (project_id, call_id)
_T = TypeVar("_T")


@dataclass(slots=True)  # no per-instance __dict__: 40 B less per cached call (benchmarks/memory.py)
class CallState:
    partition: int
    # event_id -> the event, packed (`CachedEvent`): valid_events() gives them back.
    events: dict[str, CachedEvent] = field(default_factory=dict)
    open: bool = True
    last_event_at: datetime | None = None
    # Set once the timeout close has been written, so it is not rewritten every batch.
    timeout_closed: bool = False

    def merge(self, event: ValidEvent, key: CallKey) -> bool:
        """Add an event of the call `key`; True if it changed the call's event set."""
        event_id = event.event.event_id
        current = self.events.get(event_id)
        if current is not None and current[0] >= event.digest:
            return False
        self.events[event_id] = _pack(event, key)
        return True

    def valid_events(self, known: Mapping[str, ValidEvent] | None = None) -> list[ValidEvent]:
        """The call's distinct events, as the decoder made them (same classes, values and
        fields-sets). `known`: events of the call still at hand by event_id (those of the
        batch being planned), used as they are instead of being unpacked again."""
        if not known:
            return [_unpack(packed) for packed in self.events.values()]
        out: list[ValidEvent] = []
        for event_id, packed in self.events.items():
            ev = known.get(event_id)
            out.append(ev if ev is not None and ev.digest == packed[0] else _unpack(packed))
        return out


CachedEvent = tuple[Any, ...]
"""An event as the cache keeps it: (digest, model class, fields-set, *field values in the
model's field order). About 170 B against 600 B for the ValidEvent and its pydantic model
(object, `__dict__`) that it stands for; `_unpack` makes that model again in about 1 us,
without validating (the values were validated when the event was decoded)."""

# One fields-set per set of fields (events of one type share a few), instead of pydantic's set
# per event (728 B). A frozenset: nothing may change a set that events share.
_FIELDS_SETS: dict[frozenset[str], frozenset[str]] = {}
_SOURCES: dict[str, str] = {}
_POOL_MAX = 4096


@dataclass(frozen=True, slots=True)
class _Shape:
    """What packing and unpacking need to know of one event model."""

    names: tuple[str, ...]  # the model's fields, in the order of its `__dict__`
    ids: tuple[int, int]  # the positions of project_id and call_id among them
    # Positions of the fields that hold a Literal, with the literal objects by value: each
    # event then points at one shared string ("incoming_call.dial_started", 75 B), not a copy
    # of its own.
    literals: tuple[tuple[int, dict[object, object]], ...]
    source: int  # the position of `source`: a few values (the producers), shared likewise


def _literal_values(annotation: object) -> dict[object, object]:
    if get_origin(annotation) is Literal:
        return {value: value for value in get_args(annotation)}
    if get_origin(annotation) in (Union, types.UnionType):
        found: dict[object, object] = {}
        for arg in get_args(annotation):
            found |= _literal_values(arg)
        return found
    return {}


def _shape_of(model: type[Envelope], first: Envelope) -> _Shape:
    names = tuple(model.model_fields)
    if tuple(first.__dict__) != names:  # what pydantic-core builds: every field, in order
        raise ValueError(f"{model.__name__}'s values are not its fields in order: not cached")
    literals = tuple(
        (i, values)
        for i, name in enumerate(names)
        if (values := _literal_values(model.model_fields[name].annotation))
    )
    ids = (names.index("project_id"), names.index("call_id"))
    return _Shape(names, ids, literals, names.index("source"))


_SHAPES: dict[type[Envelope], _Shape] = {}


def _pack(event: ValidEvent, key: CallKey) -> CachedEvent:
    """The event, smaller and with the same values: its fields-set shared with every event of
    its shape, the call's ids the cache key's own strings (equal: the key is made of them),
    its literals the shared ones. The caller's ValidEvent is left as it was."""
    model = event.event
    cls = type(model)
    shape = _SHAPES.get(cls)
    if shape is None:
        shape = _SHAPES[cls] = _shape_of(cls, model)
    values = list(model.__dict__.values())
    values[shape.ids[0]], values[shape.ids[1]] = key
    for i, literal in shape.literals:
        values[i] = literal.get(values[i], values[i])
    source = values[shape.source]
    if source is not None:
        values[shape.source] = _shared(_SOURCES, source)
    fields = _shared(_FIELDS_SETS, frozenset(model.__pydantic_fields_set__))
    return (event.digest, cls, fields, *values)


def _shared(pool: dict[_T, _T], value: _T) -> _T:
    """The pool's object equal to `value`, which joins the pool if there is room: bounded, so
    a producer that varies a value or its optional fields cannot grow it without limit."""
    found = pool.get(value)
    if found is None:
        if len(pool) >= _POOL_MAX:
            return value
        found = pool[value] = value
    return found


_set = object.__setattr__  # the models are frozen: this is how pydantic itself fills them


def _unpack(packed: CachedEvent) -> ValidEvent:
    cls: type[Envelope] = packed[1]
    model = cls.__new__(cls)
    _set(model, "__dict__", dict(zip(_SHAPES[cls].names, packed[3:], strict=True)))
    _set(model, "__pydantic_fields_set__", packed[2])
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return ValidEvent(model, packed[0])


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
