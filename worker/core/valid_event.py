"""A validated event as the core passes it around (made by `worker.core.decode`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.events import Envelope


@dataclass(slots=True)  # not frozen: a frozen init costs 0.4 us more per event; never changed
class ValidEvent:
    """A validated event and the digest of the exact bytes it arrived as. The text itself is
    kept once, in `call_event.payload` (taken from the record when that row is built), not in
    the call cache."""

    event: Envelope
    # Deterministic tie-break between two different payloads that share an event_id: the
    # larger digest survives, in memory and in call_event (ReplacingMergeTree(version)).
    digest: int
    # The event as the call cache's native packer writes it, when the native decoder (or
    # unpack) made it: packing the call copies these bytes instead of reading the model
    # (`worker.core.event_pack`). Not part of the event: equality ignores it.
    packed: bytes | None = field(default=None, compare=False, repr=False)
