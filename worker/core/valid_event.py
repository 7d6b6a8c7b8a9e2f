"""A validated event as the core passes it around (made by `worker.core.decode`)."""

from __future__ import annotations

from typing import Any

from schemas.events import Envelope

_fill = object.__setattr__  # the models are frozen: this is how pydantic itself fills them


class ValidEvent:
    """A validated event and the digest of the exact bytes it arrived as. The text itself is
    kept once, in `call_event.payload` (taken from the record when that row is built), not in
    the call cache.

    The hot path reads the event's values (`values`: the model's `__dict__`, the same dict)
    and never the model: the native decoder and the call cache's unpack make the event
    without one (`model_class`, `fields_set` and `values` say what it is), and `event` builds
    it on first use, as pydantic fills a model. Building each model cost about 0.7 us per
    event in the decode and as much again to free it (2026-12-04).
    """

    __slots__ = ("_event", "digest", "fields_set", "model_class", "packed", "values")

    values: dict[str, Any]
    model_class: type[Envelope]
    # The model's fields-set: its own set once built, else the shared frozenset it is copied
    # from (one per combination of present fields).
    fields_set: set[str] | frozenset[str]
    # Deterministic tie-break between two different payloads that share an event_id: the
    # larger digest survives, in memory and in call_event (ReplacingMergeTree(version)).
    digest: int
    # The event as the call cache's native packer writes it, when the native decoder (or
    # unpack) made it: packing the call copies these bytes instead of reading the values
    # (`worker.core.event_pack`). Not part of the event: equality ignores it.
    packed: bytes | None
    _event: Envelope | None

    def __init__(self, event: Envelope, digest: int, packed: bytes | None = None) -> None:
        self.values = event.__dict__
        self.model_class = type(event)
        self.fields_set = event.__pydantic_fields_set__
        self.digest = digest
        self.packed = packed
        self._event = event

    @classmethod
    def without_model(
        cls,
        model_class: type[Envelope],
        values: dict[str, Any],
        fields_set: frozenset[str],
        digest: int,
        packed: bytes | None = None,
    ) -> ValidEvent:
        """The event of `values` (already validated as `model_class`), its model left to
        `event` (ringlog_native's `event_without_model` makes the same)."""
        ev = cls.__new__(cls)
        ev.values, ev.model_class, ev.fields_set = values, model_class, fields_set
        ev.digest, ev.packed, ev._event = digest, packed, None
        return ev

    @property
    def event(self) -> Envelope:
        """The event's model (built now if the event was made without one)."""
        event = self._event
        if event is None:
            event = self.model_class.__new__(self.model_class)
            # How pydantic fills a validated model (and ringlog_native's model.rs): the same
            # dict, a fields-set of its own (model_copy(update=...) adds to it).
            _fill(event, "__dict__", self.values)
            _fill(event, "__pydantic_fields_set__", set(self.fields_set))
            _fill(event, "__pydantic_extra__", None)
            _fill(event, "__pydantic_private__", None)
            self.fields_set = event.__pydantic_fields_set__
            self._event = event
        return event

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, ValidEvent)
        return self.digest == other.digest and self.event == other.event

    __hash__ = None  # type: ignore[assignment]  # mutable, as the dataclass it replaced

    def __repr__(self) -> str:
        return f"ValidEvent(event={self.event!r}, digest={self.digest!r})"
