"""One call being generated: its identity and its events, before they become messages."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from devtools.traffic.clock import Clock
from devtools.traffic.world import Project

# (occurred_ms, tie-break, fields without the envelope)
Event = tuple[int, int, dict[str, Any]]


@dataclass(slots=True)
class Call:
    call_id: str
    project: Project
    source: str | None
    clock: Clock
    kind: str  # "incoming" | "outbound" | "cdr"
    start_ms: int
    # in creation order; the tie-break keeps that order among equal timestamps
    events: list[Event] = field(default_factory=list)
    # cost reports, sent after all the call's own events
    late: list[Event] = field(default_factory=list)
    open: bool = False

    def add(self, ms: int, typ: str, **fields: Any) -> None:
        fields["type"] = typ
        self.events.append((ms, len(self.events), fields))

    def add_late(self, ms: int, typ: str, **fields: Any) -> None:
        fields["type"] = typ
        self.late.append((ms, 1000 + len(self.late), fields))


def maybe_leave_open(call: Call, rng: random.Random, open_share: float) -> None:
    """Leave a few calls open: drop the end event and everything after a cut point."""
    if rng.random() >= open_share or len(call.events) < 2:
        return
    call.open = True
    ordered = sorted(call.events, key=lambda e: (e[0], e[1]))
    keep = rng.randint(1, len(ordered) - 1)
    call.events = ordered[:keep]
