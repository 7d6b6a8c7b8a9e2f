"""One call's events packed into one `bytes` object, and back: how the call cache keeps a call
between the batches that touch it.

A decoded event is a pydantic model with a `__dict__`, a fields-set and a Python object per
value: about 2 KB each, and a few dozen small long-lived objects per call, which also keep the
allocator's pages from being reused. Packed, a call is one object of roughly the size of its
values' text (benchmarks/memory.py measures both).

Exact by construction: `unpack` gives the same model classes, the same values (equal, and of
the same types), the same fields-sets and digests that were packed, without validating again
(the values were validated when the events were decoded). The ids every event of a call
repeats (project_id, call_id) are not packed: they come back from the call's key. The bytes
never leave the process (a class is packed as its place in this process's registry), so the
format can change freely between versions.

Two formats. With `ringlog_native` installed, its `EventPacker` (native/src/pack.rs) packs a
call in a compact binary form (canonical UUIDs as 16 bytes, times as deltas within each event,
Decimals as their text) with the field kinds of `native_fast_path`, and builds the models back
as the native validator does. Each event's bytes stand alone: the native decoder writes them
while it builds the model and `unpack` keeps them (`ValidEvent.packed`), so packing a call
again mostly copies them. It packs only what it can give back exactly and refuses the whole call
otherwise (an unknown class, a time not in `datetime.UTC`, an unexpected type, a digest
outside 64 bits...), which then takes the Python format below: a marshalled tuple per event.
The first byte tells them apart (`NATIVE_TAG` is never a marshal type code);
`tests/unit/core/test_native_event_pack.py` holds the native one to the same results.
"""

from __future__ import annotations

import marshal
import types
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import (
    Any,
    Final,
    Literal,
    Protocol,
    TypeVar,
    Union,
    get_args,
    get_origin,
)

from schemas.events import EVENT_MODELS, Envelope
from worker.core.decode import ValidEvent
from worker.core.event_fast_path import FAST_MODELS
from worker.core.native_fast_path import NATIVE_MODULE, VALIDATOR, UnknownKind, native_spec

CallKey = tuple[str, str]  # (project_id, call_id)
_T = TypeVar("_T")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_POOL_MAX: Final = 4096


@dataclass(frozen=True, slots=True)
class _Shape:
    """What packing and unpacking need to know of one event model."""

    model: type[Envelope]
    index: int  # its place in _MODELS: what the bytes hold instead of the class
    names: tuple[str, ...]  # its fields, in the order of its instances' `__dict__`
    # The rest are places in `names` (both directions work on the values as a list):
    key_at: tuple[int, int]  # project_id, call_id: not packed, they come from the call's key
    times_at: tuple[int, ...]  # datetime fields: packed as microseconds
    money_at: tuple[int, ...]  # Decimal fields: packed as their exact text
    source_at: int
    # Literal fields with the literal objects by value (and `source`, shared likewise): each
    # unpacked event points at one shared string, not a copy of its own.
    literals: tuple[tuple[int, dict[object, object]], ...]


_MODELS: list[_Shape] = []
_SHAPES: dict[type[Envelope], _Shape] = {}
# Fields-sets are packed as their place here (each unpacked event copies its set), sources and
# project ids are shared. All bounded: a producer that varies its optional fields or sources
# cannot grow them without limit (past it, they are kept whole).
_FIELDS_SETS: list[frozenset[str]] = []
_FIELDS_SET_INDEX: dict[frozenset[str], int] = {}
_SOURCES: dict[str, str] = {}
_PROJECTS: dict[str, str] = {}


def _literal_values(annotation: object) -> dict[object, object]:
    if get_origin(annotation) is Literal:
        return {value: value for value in get_args(annotation)}
    if get_origin(annotation) in (Union, types.UnionType):
        found: dict[object, object] = {}
        for arg in get_args(annotation):
            found |= _literal_values(arg)
        return found
    return {}


def _shape_of(model: type[Envelope], first: dict[str, Any]) -> _Shape:
    """`model`'s packing shape, from the values of its first event packed."""
    names = tuple(model.model_fields)
    if tuple(first) != names:  # what pydantic-core builds: every field, in order
        raise ValueError(f"{model.__name__}'s values are not its fields in order: not packed")
    kinds = [str(model.model_fields[name].annotation) for name in names]
    shape = _Shape(
        model=model,
        index=len(_MODELS),
        names=names,
        key_at=(names.index("project_id"), names.index("call_id")),
        times_at=tuple(i for i, kind in enumerate(kinds) if "datetime" in kind),
        money_at=tuple(i for i, kind in enumerate(kinds) if "Decimal" in kind),
        source_at=names.index("source"),
        literals=tuple(
            (i, values)
            for i, name in enumerate(names)
            if (values := _literal_values(model.model_fields[name].annotation))
        ),
    )
    _MODELS.append(shape)
    _SHAPES[model] = shape
    return shape


def pack(events: dict[str, ValidEvent]) -> bytes:
    """The events of one call (by event_id) as one bytes object."""
    if _NATIVE is not None:
        packed = _NATIVE.pack(events)
        if packed is not None:
            return packed
    return _pack_marshal(events)


def unpack(packed: bytes, key: CallKey) -> dict[str, ValidEvent]:
    """The events `pack` was given, by event_id; `key` is their call."""
    if not packed:
        return {}
    if packed[0] == NATIVE_TAG and _NATIVE is not None:
        return _NATIVE.unpack(packed, key)
    return _unpack_marshal(packed, key)


def _pack_marshal(events: dict[str, ValidEvent]) -> bytes:
    """`pack` in the Python format: a tuple per event, marshalled (its first byte is a tuple's
    type code, never NATIVE_TAG)."""
    return marshal.dumps(tuple(_pack_event(ev) for ev in events.values()))


def _unpack_marshal(packed: bytes, key: CallKey) -> dict[str, ValidEvent]:
    out: dict[str, ValidEvent] = {}
    for entry in marshal.loads(packed):
        ev = _unpack_event(entry, key)
        out[ev.values["event_id"]] = ev
    return out


def _pack_event(ev: ValidEvent) -> tuple[Any, ...]:
    # The values, not the model (an unpacked or natively decoded event has none yet).
    shape = _SHAPES.get(ev.model_class) or _shape_of(ev.model_class, ev.values)
    values = list(ev.values.values())
    values[shape.key_at[0]] = values[shape.key_at[1]] = None
    for i in shape.times_at:
        t = values[i]
        if t is not None:
            # Always UTC (schemas.events.parse_timestamp); anything else is kept as its text.
            values[i] = (t - _EPOCH) // _MICROSECOND if t.tzinfo is UTC else t.isoformat()
    for i in shape.money_at:
        if values[i] is not None:
            values[i] = str(values[i])
    fields = frozenset(ev.fields_set)
    fields_ref: int | tuple[str, ...] | None = _FIELDS_SET_INDEX.get(fields)
    if fields_ref is None:
        if len(_FIELDS_SETS) < _POOL_MAX:
            fields_ref = _FIELDS_SET_INDEX[fields] = len(_FIELDS_SETS)
            _FIELDS_SETS.append(fields)
        else:
            fields_ref = tuple(fields)
    return (shape.index, ev.digest, fields_ref, *values)


def _unpack_event(entry: tuple[Any, ...], key: CallKey) -> ValidEvent:
    shape = _MODELS[entry[0]]
    values = list(entry[3:])  # packed from this shape: one value per name
    values[shape.key_at[0]], values[shape.key_at[1]] = key
    for i in shape.times_at:
        t = values[i]
        if t is not None:
            values[i] = (
                _EPOCH + t * _MICROSECOND if t.__class__ is int else datetime.fromisoformat(t)
            )
    for i in shape.money_at:
        if values[i] is not None:
            values[i] = Decimal(values[i])
    for i, literal in shape.literals:
        values[i] = literal.get(values[i], values[i])
    source = values[shape.source_at]
    if source is not None:
        values[shape.source_at] = _shared(_SOURCES, source)
    fields_ref = entry[2]
    fields = _FIELDS_SETS[fields_ref] if fields_ref.__class__ is int else frozenset(fields_ref)
    # Without its model, as the native unpack gives it (`ValidEvent.event` builds it).
    values_by_name = dict(zip(shape.names, values, strict=True))
    return ValidEvent.without_model(shape.model, values_by_name, fields, entry[1])


class EventPacker(Protocol):
    def pack(self, events: dict[str, ValidEvent], /) -> bytes | None: ...
    def unpack(self, packed: bytes, key: CallKey, /) -> dict[str, ValidEvent]: ...


def _native_packer() -> EventPacker | None:
    if NATIVE_MODULE is None:
        return None
    models: list[tuple[type[Envelope], list[tuple[str, int, tuple[object, ...]]], int, int, int]]
    models = []
    for event_type, contract in EVENT_MODELS.items():
        try:
            specs = [(name, kind, args) for name, kind, _, _, args in native_spec(contract)[0]]
        except UnknownKind:
            continue  # its events are packed in the Python format
        names = list(contract.model_fields)
        at = (names.index("project_id"), names.index("call_id"), names.index("source"))
        # The fast model's values are the contract's (a subclass that checks more), in the
        # same order (checked here and, for each event, by the packer).
        for model in (contract, FAST_MODELS[event_type]):
            if list(model.model_fields) == names:
                models.append((model, specs, *at))
    packer: EventPacker = NATIVE_MODULE.EventPacker(
        models, ValidEvent, Decimal, UTC, _SOURCES, _POOL_MAX
    )
    if VALIDATOR is not None:
        # The native decoder writes each event's packed bytes as it builds the model (on
        # values still in the CPU's caches); packing a call then copies them.
        VALIDATOR.pack_with(packer)
    return packer


_NATIVE = _native_packer()
"""ringlog_native's packer (None without the extension): each call in the native format when
it can be exact, else in the Python one."""
NATIVE_TAG: Final = NATIVE_MODULE.PACK_TAG if NATIVE_MODULE is not None else 1
"""The first byte of a natively packed call."""


def project_pool() -> tuple[dict[str, str], int]:
    """The pool `shared_project_id` draws from and its bound (the native batch decoder
    shares project_ids from it likewise)."""
    return _PROJECTS, _POOL_MAX


def shared_project_id(project_id: str) -> str:
    """One string per project for the cache keys of all its calls (85 B less per call), as
    sources and field-sets are shared; bounded likewise."""
    return _shared(_PROJECTS, project_id)


def _shared(pool: dict[_T, _T], value: _T) -> _T:
    """The pool's object equal to `value`, which joins the pool if there is room."""
    found = pool.get(value)
    if found is None:
        if len(pool) >= _POOL_MAX:
            return value
        found = pool[value] = value
    return found
