"""Deterministic generator of realistic telephony call traffic (DESIGN.md section 2).

Pure: no I/O, no clock, no global random state. Everything comes from one seeded
`random.Random`, so the same arguments always give the same messages, byte for byte.

What it produces, as Kafka messages in a realistic arrival order:

- incoming calls (about 55%): `incoming_call.received`, then dial attempts that follow the
  policy's escalation rules (rules dialled in order, the users of one rule in parallel, the
  whole list repeated up to the policy's repeat count): `dial_started` / `dial_ringing` /
  `dial_answered` / `dial_ended`, then `incoming_call.ended`. Some are answered at the first,
  second, third... attempt, some nobody answers, some callers hang up while a dial rings (the
  ringing dials end `canceled`), some fail or are busy before any dial;
- outbound calls (about 30%): `outbound_call.placed` / `answered` / `ended`;
- PBX CDRs (about 10%): one `cdr.recorded` with PortSIP field names;
- late `call.cost_reported` for some legs (minutes after the end, sometimes corrected later);
- a few calls left open (no end event);
- `duplicate_share` of the valid events re-sent later with the exact same bytes;
- `invalid_share` of all messages invalid, covering the contract's rejection cases
  (`Message.valid` is False and `Message.case` names the case).

Messages of one call arrive near their event time with jitter (shuffled within the call when
`shuffle_within_call`), interleaved with the other calls that overlap in time. Memory stays
bounded: calls are generated in start order and merged through a heap.

Modules: `stream` (the public generators and the merge), `calls` (call starts), one scenario
each in `incoming`, `outbound` and `cdr` (with `costs` for the cost reports), `encoding` and
`delivery` (a call's events as messages and their arrival), `invalid` with `mutations` and
`synthetic` (the invalid cases), and the shared pieces `world`, `call`, `clock`, `values`,
`status_messages`, `messages`.
"""

from devtools.traffic.cdr import CDR_DIRECTIONS
from devtools.traffic.invalid import INVALID_CASES, OVERSIZED_BYTES
from devtools.traffic.messages import EVENT_TYPES, Message
from devtools.traffic.stream import DEFAULT_START, generate_calls, generate_events

__all__ = [
    "CDR_DIRECTIONS",
    "DEFAULT_START",
    "EVENT_TYPES",
    "INVALID_CASES",
    "OVERSIZED_BYTES",
    "Message",
    "generate_calls",
    "generate_events",
]
