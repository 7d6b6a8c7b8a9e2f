"""A call's events as JSON message values, in the style of the producer that sent them."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from devtools.traffic.call import Call
from devtools.traffic.messages import Dumps, dumps_ascii, dumps_compact, dumps_spaced
from devtools.traffic.values import uuid4


@dataclass(frozen=True, slots=True)
class _Style:
    """How one producer writes its events; the same for all the events of a call."""

    has_sequence: bool
    dumps: Dumps
    reorder_keys: bool
    uuid_event_ids: bool  # otherwise "call_id:seq:suffix" ids


def _pick_style(rng: random.Random) -> _Style:
    has_sequence = rng.random() < 0.8
    style = rng.random()
    dumps: Dumps = dumps_compact if style < 0.8 else (dumps_spaced if style < 0.95 else dumps_ascii)
    reorder_keys = rng.random() < 0.1
    uuid_event_ids = rng.random() < 0.85
    return _Style(has_sequence, dumps, reorder_keys, uuid_event_ids)


def encode_call(call: Call, rng: random.Random) -> list[tuple[int, bytes]]:
    """(occurred_ms, value) of every event: the call's own in time order, then the late ones."""
    style = _pick_style(rng)
    base = {"project_id": call.project.id, "call_id": call.call_id}
    timeline = sorted(call.events, key=lambda e: (e[0], e[1])) + sorted(
        call.late, key=lambda e: (e[0], e[1])
    )
    out: list[tuple[int, bytes]] = []
    for seq, (ms, _, fields) in enumerate(timeline):
        typ = fields["type"]
        if style.uuid_event_ids:
            event_id = uuid4(rng)
        else:
            event_id = f"{call.call_id}:{seq}:{typ.rsplit('.', 1)[1]}"
        obj: dict[str, Any] = {
            "event_id": event_id,
            "type": typ,
            "occurred_at": call.clock.fmt(ms, rng),
        }
        if style.has_sequence:
            obj["sequence"] = seq
        obj.update(base)
        if call.source is not None:
            obj["source"] = call.source
        for k, v in fields.items():
            if k != "type":
                obj[k] = v
        if rng.random() < 0.03:
            obj["x_note"] = "Störung – 障害 – ошибка"  # unknown extra field: ignored
        if style.reorder_keys:
            items = list(obj.items())
            rng.shuffle(items)
            obj = dict(items)
        out.append((ms, style.dumps(obj)))
    return out
