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
"""

from __future__ import annotations

import heapq
import json
import math
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.tables import OUTBOUND_RELATION_IDS

__all__ = [
    "CDR_DIRECTIONS",
    "DEFAULT_START",
    "EVENT_TYPES",
    "INVALID_CASES",
    "Message",
    "generate_calls",
    "generate_events",
]

DEFAULT_START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)

EVENT_TYPES: tuple[str, ...] = (
    "incoming_call.received",
    "incoming_call.dial_started",
    "incoming_call.dial_ringing",
    "incoming_call.dial_answered",
    "incoming_call.dial_ended",
    "incoming_call.ended",
    "outbound_call.placed",
    "outbound_call.answered",
    "outbound_call.ended",
    "call.cost_reported",
    "cdr.recorded",
)
CDR_DIRECTIONS = ("INBOUND_CALL", "OUTBOUND_CALL", "EXTENSION_CALL", "INBOUND_OUTBOUND_CALL")

OVERSIZED_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    """One Kafka message.

    `key` is the call_id as UTF-8 (None only for lines read from a file whose call_id could
    not be parsed, see `devtools.producer.read_jsonl`). `call_id` is the call the message was
    generated for (for the key-mismatch case the key is another call's id). `valid` says
    whether the contract accepts it; `case` names the invalid case ("" when valid).
    """

    key: bytes | None
    value: bytes
    call_id: str
    valid: bool
    case: str = ""


# --------------------------------------------------------------------------------------------
# small deterministic helpers


def _uuid4(rng: random.Random) -> str:
    n = rng.getrandbits(128)
    n = (n & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    n = (n & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}x}"


def _digits(rng: random.Random, n: int) -> str:
    return f"{rng.randrange(10**n):0{n}d}"


_EPOCH = datetime(1970, 1, 1)


def _epoch_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


@dataclass(frozen=True, slots=True)
class _Clock:
    """How one producer writes timestamps: UTC offset, `Z` or `+00:00`, ms or µs digits."""

    offset_min: int
    zulu: bool
    micro: bool

    def fmt(self, ms: int, rng: random.Random) -> str:
        local = ms + self.offset_min * 60_000
        secs, milli = divmod(local, 1000)
        days, sod = divmod(secs, 86_400)
        date = _DATES.get(days)
        if date is None:
            date = _DATES[days] = (_EPOCH + timedelta(days=days)).strftime("%Y-%m-%dT")
        hh, rest = divmod(sod, 3600)
        mi, ss = divmod(rest, 60)
        if self.micro:
            base = f"{date}{hh:02d}:{mi:02d}:{ss:02d}.{milli:03d}{rng.randrange(1000):03d}"
        else:
            base = f"{date}{hh:02d}:{mi:02d}:{ss:02d}.{milli:03d}"
        return base + self.suffix

    @property
    def suffix(self) -> str:
        if self.offset_min == 0 and self.zulu:
            return "Z"
        sign = "-" if self.offset_min < 0 else "+"
        hh, mm = divmod(abs(self.offset_min), 60)
        return f"{sign}{hh:02d}:{mm:02d}"


_DATES: dict[int, str] = {}


# offsets seen from producers: UTC, US, Newfoundland, Europe, India, Australia
_OFFSETS = (0, 0, 0, -300, -240, -420, -210, 60, 120, 330, 600)


# E.164 numbers: (country+area prefix, remaining digits, weight)
_NUMBER_PLANS: tuple[tuple[str, int, int], ...] = (
    ("1", 10, 30),  # US / Canada (first digit of the area code 2-9, see below)
    ("4420", 8, 8),  # London
    ("447", 9, 10),  # UK mobile
    ("44161", 7, 3),  # Manchester
    ("49", 10, 10),  # Germany
    ("4915", 9, 4),  # German mobile
    ("61", 9, 6),  # Australia
    ("91", 10, 8),  # India
    ("33", 9, 7),  # France
    ("81", 10, 4),  # Japan
    ("55", 11, 3),  # Brazil
    ("353", 9, 3),  # Ireland
)
_PLAN_WEIGHTS = [w for _, _, w in _NUMBER_PLANS]
_PLAN_CUM: list[int] = []
for _w in _PLAN_WEIGHTS:
    _PLAN_CUM.append((_PLAN_CUM[-1] if _PLAN_CUM else 0) + _w)


def _phone(rng: random.Random) -> str:
    prefix, n, _ = _NUMBER_PLANS[_bisect_weight(_PLAN_CUM, rng.randrange(_PLAN_CUM[-1]))]
    rest = _digits(rng, n)
    if prefix == "1":
        rest = str(rng.randrange(2, 10)) + rest[1:]
    return f"+{prefix}{rest}"


def _bisect_weight(cum: list[int], x: int) -> int:
    for i, c in enumerate(cum):
        if x < c:
            return i
    return len(cum) - 1


def _chance(rng: random.Random, p: float) -> bool:
    return rng.random() < p


def _cost(rng: random.Random, seconds: float, per_minute: float) -> float | str | int:
    """A provider cost in US cents: a number, sometimes a string, 0 for no talk time."""
    if seconds <= 0:
        return 0 if _chance(rng, 0.5) else "0.0000"
    value = round(per_minute * math.ceil(seconds / 60) * rng.uniform(0.8, 1.2), 4)
    return f"{value:.4f}" if _chance(rng, 0.3) else value


_STATUS_MESSAGES_NO_ANSWER = (
    "no answer after ring timeout",
    "No answer",
    "Ring timeout (30 s)",
    "Störung – keine Antwort",  # non-ASCII on purpose
)
_STATUS_MESSAGES_FAILED = (
    "SIP 503 Service Unavailable",
    "carrier error 30008",
    "SIP 404 Not Found",
    "Destination unreachable",
    "障害: 回線エラー",
)
_STATUS_MESSAGES_BUSY = ("SIP 486 Busy Here", "User busy", "Busy")
_CALL_DATA_MESSAGES = (
    "Incident #{n} created: API latency high",
    "Monitor {n} is down",
    "Scheduled maintenance starts in 15 minutes",
    "Alert {n} acknowledged?",
    "Press 1 to acknowledge incident #{n}",
    "Störung #{n}: Datenbank nicht erreichbar",
)
_RELATIONS = OUTBOUND_RELATION_IDS


# --------------------------------------------------------------------------------------------
# fixed world (projects, policies, users) derived from the seed


@dataclass(frozen=True, slots=True)
class _User:
    id: str
    phone: str


@dataclass(frozen=True, slots=True)
class _Rule:
    id: str
    order: int
    users: tuple[_User, ...]
    ring_timeout_ms: int


@dataclass(frozen=True, slots=True)
class _Policy:
    id: str
    routing_number: str
    rules: tuple[_Rule, ...]
    repeats: int


@dataclass(frozen=True, slots=True)
class _Project:
    id: str
    policies: tuple[_Policy, ...]
    users: tuple[_User, ...]
    caller_ids: tuple[str, ...]


def _world(seed: int, projects: int) -> tuple[_Project, ...]:
    ns = uuid.uuid5(uuid.NAMESPACE_URL, f"https://ringlog.invalid/traffic/seed/{seed}")
    wrng = random.Random(f"ringlog-world-{seed}")

    def uid(*parts: object) -> str:
        return str(uuid.uuid5(ns, "/".join(str(p) for p in parts)))

    out: list[_Project] = []
    for p in range(max(1, projects)):
        users = tuple(_User(uid("user", p, u), _phone(wrng)) for u in range(12))
        policies: list[_Policy] = []
        for k in range(wrng.randint(2, 4)):
            rules: list[_Rule] = []
            for order in range(1, wrng.randint(1, 4) + 1):
                n_users = 1 if wrng.random() < 0.6 else wrng.randint(2, 3)
                rules.append(
                    _Rule(
                        uid("rule", p, k, order),
                        order,
                        tuple(wrng.sample(users, n_users)),
                        wrng.choice((20_000, 25_000, 30_000)),
                    )
                )
            policies.append(
                _Policy(uid("policy", p, k), _phone(wrng), tuple(rules), wrng.choice((0, 1, 1, 2)))
            )
        caller_ids = tuple(_phone(wrng) for _ in range(3))
        out.append(_Project(uid("project", p), tuple(policies), users, caller_ids))
    return tuple(out)


# --------------------------------------------------------------------------------------------
# one call


@dataclass(slots=True)
class _Call:
    call_id: str
    project: _Project
    source: str | None
    clock: _Clock
    kind: str  # "incoming" | "outbound" | "cdr"
    start_ms: int
    # (occurred_ms, tie-break, fields without envelope) in creation order
    events: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    late: list[tuple[int, int, dict[str, Any]]] = field(default_factory=list)
    open: bool = False

    def add(self, ms: int, typ: str, **fields: Any) -> None:
        fields["type"] = typ
        self.events.append((ms, len(self.events), fields))

    def add_late(self, ms: int, typ: str, **fields: Any) -> None:
        fields["type"] = typ
        self.late.append((ms, 1000 + len(self.late), fields))


_Dumps = Callable[[dict[str, Any]], bytes]


def _dumps_compact(obj: dict[str, Any]) -> bytes:
    return orjson.dumps(obj)


def _dumps_spaced(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode("utf-8")


def _dumps_ascii(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj).encode("ascii")


class _Generator:
    def __init__(
        self,
        *,
        seed: int,
        start: datetime,
        invalid_share: float,
        duplicate_share: float,
        shuffle_within_call: bool,
        projects: int,
        calls_per_minute: float,
        open_share: float,
        oversized: int,
    ) -> None:
        if not 0.0 <= invalid_share < 1.0:
            raise ValueError("invalid_share must be in [0, 1)")
        if not 0.0 <= duplicate_share <= 1.0:
            raise ValueError("duplicate_share must be in [0, 1]")
        self.rng = random.Random(seed)
        self.world = _world(seed, projects)
        self.t_ms = _epoch_ms(start)
        self.invalid_ratio = invalid_share / (1.0 - invalid_share)
        self.duplicate_share = duplicate_share
        self.shuffle = shuffle_within_call
        self.mean_gap_ms = 60_000.0 / calls_per_minute
        self.open_share = open_share
        self.oversized_left = oversized if invalid_share > 0 else 0
        self.call_ids: set[str] = set()
        self.recent_calls: list[str] = []
        self.tick = 0

    # ---- ids

    def _call_id(self, source: str | None, kind: str) -> str:
        rng = self.rng
        while True:
            if source == "twilio":
                cid = "CA" + _hex(rng, 32)
            elif source == "asterisk":
                cid = f"{self.t_ms // 1000}.{rng.randrange(1, 99999)}"
            elif kind == "cdr" or source == "portsip":
                cid = _digits(rng, 12).lstrip("0") or "1"
            else:
                cid = "call_" + _hex(rng, 20)
            if cid not in self.call_ids:
                self.call_ids.add(cid)
                return cid

    def _dial_id(self, call: _Call, n: int) -> str:
        if call.source == "twilio":
            return "CA" + _hex(self.rng, 32)  # Twilio child CallSid
        return f"{call.call_id}-{n}"

    # ---- calls

    def next_call(self) -> _Call:
        rng = self.rng
        self.t_ms += max(1, int(rng.expovariate(1.0 / self.mean_gap_ms)))
        r = rng.random()
        kind = "incoming" if r < 0.55 / 0.95 else ("outbound" if r < 0.85 / 0.95 else "cdr")
        if kind == "incoming":
            source: str | None = rng.choice(("twilio", "twilio", "asterisk", "oncall-router"))
        elif kind == "outbound":
            source = rng.choice(("twilio", "twilio", "oncall-router"))
        else:
            source = rng.choice(("portsip", "portsip", "portsip", "asterisk"))
        clock = _Clock(rng.choice(_OFFSETS), rng.random() < 0.6, rng.random() < 0.08)
        call = _Call(
            self._call_id(source, kind),
            rng.choice(self.world),
            source if rng.random() < 0.9 else None,
            clock,
            kind,
            self.t_ms,
        )
        if kind == "incoming":
            self._incoming(call)
        elif kind == "outbound":
            self._outbound(call)
        else:
            self._cdr(call)
        return call

    def _incoming(self, call: _Call) -> None:
        rng = self.rng
        policy = rng.choice(call.project.policies)
        t = call.start_ms
        call.add(
            t,
            "incoming_call.received",
            incoming_call_policy_id=policy.id,
            caller_phone_number=_phone(rng),
            routing_phone_number=policy.routing_number,
        )
        r = rng.random()
        if r < 0.04:  # caller gives up in the IVR, or the route is busy / broken: no dial
            end = t + rng.randint(1_500, 12_000)
            outcome, msg = rng.choice(
                (
                    ("caller_hung_up", "caller hung up before any dial"),
                    ("busy", rng.choice(_STATUS_MESSAGES_BUSY)),
                    ("failed", rng.choice(_STATUS_MESSAGES_FAILED)),
                )
            )
            call.add(end, "incoming_call.ended", outcome=outcome, status_message=msg)
            self._maybe_open(call)
            self._incoming_costs(call, end, [], t)
            return
        scenario = "answer" if r < 0.70 else ("nobody" if r < 0.86 else "hangup")
        steps = [(rep, rule) for rep in range(policy.repeats + 1) for rule in policy.rules]
        answer_step = hangup_step = -1
        if scenario == "answer":
            answer_step = 0
            while answer_step < len(steps) - 1 and rng.random() < 0.45:
                answer_step += 1
        elif scenario == "hangup":
            hangup_step = rng.randrange(len(steps))
        t += rng.randint(800, 4_000)  # IVR / greeting
        n_dial = 0
        answered: list[tuple[str, int, int]] = []  # (dial_id, answered_ms, talk_ms)
        dials: list[tuple[str, str]] = []  # (dial_id, user phone)
        end_ms = t
        call_outcome = "no_answer"
        for i, (rep, rule) in enumerate(steps):
            ringing: list[tuple[str, int]] = []
            step_end = t
            for user in rule.users:
                n_dial += 1
                dial_id = self._dial_id(call, n_dial)
                dials.append((dial_id, user.phone))
                ts = t + rng.randint(0, 250)
                extra: dict[str, Any] = {}
                if rng.random() < 0.95:
                    extra = {
                        "escalation_rule_id": rule.id,
                        "escalation_rule_order": rule.order,
                        "repeat_count": rep,
                    }
                call.add(
                    ts,
                    "incoming_call.dial_started",
                    dial_id=dial_id,
                    user_id=user.id,
                    user_phone_number=user.phone,
                    **extra,
                )
                fate = rng.random()
                if fate < 0.05:
                    te = ts + rng.randint(1_000, 4_000)
                    call.add(
                        te,
                        "incoming_call.dial_ended",
                        dial_id=dial_id,
                        outcome="busy",
                        status_message=rng.choice(_STATUS_MESSAGES_BUSY),
                    )
                    step_end = max(step_end, te)
                elif fate < 0.08:
                    te = ts + rng.randint(300, 3_000)
                    call.add(
                        te,
                        "incoming_call.dial_ended",
                        dial_id=dial_id,
                        outcome="failed",
                        status_message=rng.choice(_STATUS_MESSAGES_FAILED),
                    )
                    step_end = max(step_end, te)
                else:
                    tr = ts + rng.randint(400, 2_500)
                    call.add(tr, "incoming_call.dial_ringing", dial_id=dial_id)
                    ringing.append((dial_id, tr))
            if i == hangup_step and ringing:
                th = max(tr for _, tr in ringing) + rng.randint(500, rule.ring_timeout_ms - 3_000)
                for dial_id, _ in ringing:
                    call.add(th, "incoming_call.dial_ended", dial_id=dial_id, outcome="canceled")
                end_ms, call_outcome = th, "caller_hung_up"
                break
            if i >= answer_step >= 0 and ringing:
                win = rng.randrange(len(ringing))
                dial_id, tr = ringing[win]
                ta = tr + rng.randint(2_000, min(rule.ring_timeout_ms - 1_000, 18_000))
                talk = min(int(rng.lognormvariate(10.8, 1.0)), 3_600_000) + 1_000
                te = ta + talk
                completed_only = rng.random() < 0.04  # provider sends no answered event
                if not completed_only:
                    call.add(ta, "incoming_call.dial_answered", dial_id=dial_id)
                extra = {}
                if rng.random() < 0.6:
                    extra["billable_seconds"] = math.ceil(talk / 1000)
                call.add(
                    te, "incoming_call.dial_ended", dial_id=dial_id, outcome="completed", **extra
                )
                if not completed_only:
                    answered.append((dial_id, ta, talk))
                for other, _ in ringing:
                    if other != dial_id:
                        call.add(
                            ta + rng.randint(50, 600),
                            "incoming_call.dial_ended",
                            dial_id=other,
                            outcome="canceled",
                            status_message="answered by another user",
                        )
                end_ms, call_outcome = te + rng.randint(0, 400), "completed"
                break
            for dial_id, tr in ringing:
                te = tr + rule.ring_timeout_ms + rng.randint(-500, 500)
                extra = {}
                if rng.random() < 0.5:
                    extra["status_message"] = rng.choice(_STATUS_MESSAGES_NO_ANSWER)
                call.add(
                    te, "incoming_call.dial_ended", dial_id=dial_id, outcome="no_answer", **extra
                )
                step_end = max(step_end, te)
            end_ms = step_end
            t = step_end + rng.randint(200, 2_000)
        else:
            end_ms += rng.randint(200, 1_000)
        extra = {}
        if call_outcome == "no_answer":
            extra["status_message"] = "No one answered the call"
        elif call_outcome == "caller_hung_up":
            extra["status_message"] = "caller hung up"
        elif rng.random() < 0.05:
            extra["status_message"] = None  # a JSON null counts as absent
        call.add(end_ms, "incoming_call.ended", outcome=call_outcome, **extra)
        self._maybe_open(call)
        self._incoming_costs(call, end_ms, answered, call.start_ms, dials)

    def _incoming_costs(
        self,
        call: _Call,
        end_ms: int,
        answered: list[tuple[str, int, int]],
        start_ms: int,
        dials: list[tuple[str, str]] | None = None,
    ) -> None:
        if call.open:
            return
        rng = self.rng
        if rng.random() < 0.5:
            self._cost_report(call, call.call_id, end_ms, (end_ms - start_ms) / 1000, 0.85)
        answered_ids = {d for d, _, _ in answered}
        for dial_id, _, talk in answered:
            if rng.random() < 0.5:
                self._cost_report(call, dial_id, end_ms, talk / 1000, 1.3)
        for dial_id, _ in dials or []:
            if dial_id not in answered_ids and rng.random() < 0.05:
                self._cost_report(call, dial_id, end_ms, 0, 1.3)
        if rng.random() < 0.01:  # a cost for a leg whose events never came: creates no row
            self._cost_report(call, f"{call.call_id}-orphan", end_ms, 12, 1.3)

    def _cost_report(
        self, call: _Call, leg_id: str, end_ms: int, seconds: float, per_minute: float
    ) -> None:
        rng = self.rng
        at = end_ms + rng.randint(30_000, 15 * 60_000)
        extra: dict[str, Any] = {}
        if seconds > 0 and rng.random() < 0.5:
            extra["billable_seconds"] = math.ceil(seconds)
        call.add_late(
            at,
            "call.cost_reported",
            leg_id=leg_id,
            cost_usd_cents=_cost(rng, seconds, per_minute),
            **extra,
        )
        if rng.random() < 0.08:  # a later correction: the latest report wins
            call.add_late(
                at + rng.randint(60_000, 30 * 60_000),
                "call.cost_reported",
                leg_id=leg_id,
                cost_usd_cents=_cost(rng, seconds, per_minute),
                **extra,
            )

    def _maybe_open(self, call: _Call) -> None:
        """Leave a few calls open: drop the end event and everything after a cut point."""
        rng = self.rng
        if rng.random() >= self.open_share or len(call.events) < 2:
            return
        call.open = True
        ordered = sorted(call.events, key=lambda e: (e[0], e[1]))
        keep = rng.randint(1, len(ordered) - 1)
        call.events = ordered[:keep]

    def _outbound(self, call: _Call) -> None:
        rng = self.rng
        t = call.start_ms
        n = rng.randrange(1, 10_000)
        call_data: dict[str, Any] = {
            "message": rng.choice(_CALL_DATA_MESSAGES).format(n=n),
            "retry": rng.randint(0, 3),
        }
        if rng.random() < 0.3:
            call_data["meta"] = {
                "severity": rng.choice(("critical", "high", "low")),
                "ids": [n, n + 1],
                "nested": {"ok": rng.random() < 0.5, "ratio": 0.25},
            }
        relations = {name: _uuid4(rng) for name in rng.sample(_RELATIONS, rng.randint(0, 5))}
        call.add(
            t,
            "outbound_call.placed",
            to_number=_phone(rng),
            from_number=rng.choice(call.project.caller_ids),
            call_data=call_data,
            **relations,
        )
        r = rng.random()
        extra: dict[str, Any] = {}
        talk = 0
        if r < 0.55:
            ta = t + rng.randint(3_000, 25_000)
            call.add(ta, "outbound_call.answered")
            talk = min(int(rng.lognormvariate(10.3, 0.9)), 1_800_000) + 1_000
            te = ta + talk
            status = "Success" if rng.random() < 0.95 else "Error"  # dropped mid-call
            if status == "Error":
                extra["status_message"] = rng.choice(_STATUS_MESSAGES_FAILED)
            if rng.random() < 0.6:
                extra["billable_seconds"] = math.ceil(talk / 1000)
        elif r < 0.77:
            te = t + rng.randint(20_000, 45_000)
            status = "Missed Call"
            if rng.random() < 0.4:
                extra["billable_seconds"] = 0
        elif r < 0.87:
            te = t + rng.randint(1_000, 5_000)
            status = "Busy"
            extra["status_message"] = rng.choice(_STATUS_MESSAGES_BUSY)
        elif r < 0.96:
            te = t + rng.randint(200, 4_000)
            status = "Error"
            extra["status_message"] = rng.choice(_STATUS_MESSAGES_FAILED)
        else:
            te = t + rng.randint(100, 800)
            status = "Low Balance"
            extra["status_message"] = "Project balance too low to place the call"
        call.add(te, "outbound_call.ended", status=status, **extra)
        self._maybe_open(call)
        if not call.open and rng.random() < 0.45:
            self._cost_report(call, call.call_id, te, talk / 1000, 1.3)

    def _cdr(self, call: _Call) -> None:
        rng = self.rng
        direction = rng.choices(CDR_DIRECTIONS, weights=(40, 35, 15, 10))[0]
        ext = f"{rng.randint(100, 199)}"
        if direction == "EXTENSION_CALL":
            caller, callee = ext, f"{rng.randint(200, 299)}"
        elif direction == "INBOUND_CALL":
            caller, callee = _phone(rng), _phone(rng)
        else:
            caller, callee = (ext if rng.random() < 0.5 else _phone(rng)), _phone(rng)
        t0 = call.start_ms
        rang = t0 + rng.randint(100, 1_500)
        answered = rng.random() < 0.7
        if answered:
            ans = rang + rng.randint(2_000, 20_000)
            talk = int(rng.lognormvariate(10.5, 1.0)) + 1_000
            end = ans + talk
            duration = math.ceil(talk / 1000)
            status_code, end_reason = 200, rng.choice(("BYE", "caller hangup", "callee hangup"))
        else:
            end = rang + rng.randint(5_000, 40_000)
            duration = 0
            status_code, end_reason = rng.choice(
                ((408, "timeout"), (486, "busy"), (487, "cancelled"), (503, "unavailable"))
            )
        clock = call.clock

        def ts(ms: int) -> str:
            return clock.fmt(ms, rng)

        rec: dict[str, Any] = {
            "cdr_id": _uuid4(rng) if rng.random() < 0.6 else _digits(rng, 9).lstrip("0") + "7",
            "caller": caller,
            "caller_domain": "pbx.example.com",
            "caller_display_name": rng.choice(("Jürgen Müller", "Front desk", "Ana López", "")),
            "callee": callee,
            "callee_domain": rng.choice(("sip.example.net", "pbx.example.com")),
            "callee_display_name": rng.choice(("Helpdesk", "On-call", "Support")),
            "started_at": ts(t0),
            "rang_at": ts(rang) if rng.random() < 0.85 else "",
            "answered_at": ts(ans) if answered else "",
            "ended_at": ts(end),
            "sip_call_id": f"{_hex(rng, 16)}@10.0.{rng.randint(0, 9)}.{rng.randint(2, 250)}",
            "direction": direction,
            "end_reason": end_reason,
            # free text: PBXs send values outside their own enums
            "reroute_reason": rng.choice(("", "FORWARD_BUSY", "NO_ANSWER", "dnd-override-custom")),
            "status_code": status_code,
            "destination": callee,
            "outbound_caller_id": rng.choice(call.project.caller_ids),
            "did_cid": _phone(rng),
            "trunk": rng.choice(("trunk-eu-1", "trunk-us-2", "sip-trunk-au")),
            "duration": duration,
            "billed_account": f"acct-{rng.randint(1000, 9999)}",
            "service_number": _phone(rng),
            "user_data": rng.choice(("", "queue=support", '{"ticket": 4711}')),
        }
        if rng.random() < 0.4:
            rec["cost"] = _cost(rng, duration, 1.1)
        for name in ("caller_display_name", "sip_call_id", "trunk", "billed_account", "user_data"):
            if rng.random() < 0.15:
                del rec[name]
        call.add(end + rng.randint(200, 3_000), "cdr.recorded", **rec)

    # ---- serialization and arrival

    def render(self, call: _Call) -> list[tuple[int, Message]]:
        """The call's messages with their arrival times (unordered)."""
        rng = self.rng
        clock = call.clock
        base = {"project_id": call.project.id, "call_id": call.call_id}
        has_seq = rng.random() < 0.8
        style = rng.random()
        dumps: _Dumps = (
            _dumps_compact if style < 0.8 else (_dumps_spaced if style < 0.95 else _dumps_ascii)
        )
        reorder_keys = rng.random() < 0.1
        id_style = rng.random()
        timeline = sorted(call.events, key=lambda e: (e[0], e[1])) + sorted(
            call.late, key=lambda e: (e[0], e[1])
        )
        valid: list[tuple[int, bytes]] = []  # (occurred_ms, value)
        for seq, (ms, _, fields) in enumerate(timeline):
            typ = fields["type"]
            if id_style < 0.85:
                event_id = _uuid4(rng)
            else:
                event_id = f"{call.call_id}:{seq}:{typ.rsplit('.', 1)[1]}"
            obj: dict[str, Any] = {
                "event_id": event_id,
                "type": typ,
                "occurred_at": clock.fmt(ms, rng),
            }
            if has_seq:
                obj["sequence"] = seq
            obj.update(base)
            if call.source is not None:
                obj["source"] = call.source
            for k, v in fields.items():
                if k != "type":
                    obj[k] = v
            if rng.random() < 0.03:
                obj["x_note"] = "Störung – 障害 – ошибка"  # unknown extra field: ignored
            if reorder_keys:
                items = list(obj.items())
                rng.shuffle(items)
                obj = dict(items)
            valid.append((ms, dumps(obj)))

        key = call.call_id.encode("utf-8")
        out: list[tuple[int, Message]] = []
        arrivals = [ms + self._jitter() for ms, _ in valid]
        if self.shuffle and len(valid) > 2 and rng.random() < 0.2:
            # the provider flushed bursts of this call's webhooks in no particular order:
            # permute the arrival times of events less than 20 s apart
            n_main = len(call.events)
            i = 0
            while i < n_main:
                j = i + 1
                while j < n_main and valid[j][0] - valid[i][0] < 20_000:
                    j += 1
                if j - i > 1:
                    window = arrivals[i:j]
                    rng.shuffle(window)
                    arrivals[i:j] = window
                i = j
        if not self.shuffle:
            for i in range(1, len(arrivals)):
                arrivals[i] = max(arrivals[i], arrivals[i - 1])
        for arrival, (_ms, value) in zip(arrivals, valid, strict=True):
            msg = Message(key, value, call.call_id, True)
            out.append((arrival, msg))
            if rng.random() < self.duplicate_share:
                delay = (
                    rng.randint(200, 30_000) if rng.random() < 0.9 else rng.randint(30_000, 600_000)
                )
                out.append((arrival + delay, msg))
        n_invalid = sum(1 for _ in range(len(out)) if rng.random() < self.invalid_ratio)
        for _ in range(n_invalid):
            ms = call.start_ms + rng.randint(0, max(1, valid[-1][0] - call.start_ms))
            out.append((ms + self._jitter(), self._invalid(call, ms)))
        self.recent_calls.append(call.call_id)
        if len(self.recent_calls) > 64:
            del self.recent_calls[:32]
        return out

    def _jitter(self) -> int:
        rng = self.rng
        if not self.shuffle:
            return int(rng.expovariate(1 / 150.0))
        j = int(rng.expovariate(1 / 1_500.0))
        if rng.random() < 0.03:
            j += rng.randint(5_000, 90_000)  # a webhook retried later
        return j

    def _invalid(self, call: _Call, ms: int) -> Message:
        rng = self.rng
        if self.oversized_left > 0:
            self.oversized_left -= 1
            obj = self._synthetic(call, "incoming_call.dial_answered", ms)
            obj["source"] = "x" * OVERSIZED_BYTES
            return self._bad(call, "oversized_source", orjson.dumps(obj))
        name, make = _INVALID[rng.randrange(len(_INVALID))]
        made = make(self, call, ms)
        if isinstance(made, tuple):
            key, value = made
            return Message(key, value, call.call_id, False, name)
        return self._bad(call, name, made)

    @staticmethod
    def _bad(call: _Call, case: str, value: bytes) -> Message:
        return Message(call.call_id.encode("utf-8"), value, call.call_id, False, case)

    def _synthetic(self, call: _Call, typ: str, ms: int) -> dict[str, Any]:
        """A valid event of `typ` for this call (the base that an invalid case breaks)."""
        rng = self.rng
        obj: dict[str, Any] = {
            "event_id": _uuid4(rng),
            "type": typ,
            "occurred_at": call.clock.fmt(ms, rng),
            "project_id": call.project.id,
            "call_id": call.call_id,
        }
        if call.source is not None:
            obj["source"] = call.source
        user = rng.choice(call.project.users)
        policy = rng.choice(call.project.policies)
        dial_id = f"{call.call_id}-{rng.randint(1, 9)}"
        if typ == "incoming_call.received":
            obj.update(
                incoming_call_policy_id=policy.id,
                caller_phone_number=_phone(rng),
                routing_phone_number=policy.routing_number,
            )
        elif typ == "incoming_call.dial_started":
            rule = policy.rules[0]
            obj.update(
                dial_id=dial_id,
                user_id=user.id,
                user_phone_number=user.phone,
                escalation_rule_id=rule.id,
                escalation_rule_order=rule.order,
                repeat_count=0,
            )
        elif typ in ("incoming_call.dial_ringing", "incoming_call.dial_answered"):
            obj["dial_id"] = dial_id
        elif typ == "incoming_call.dial_ended":
            obj.update(dial_id=dial_id, outcome="no_answer")
        elif typ == "incoming_call.ended":
            obj["outcome"] = "no_answer"
        elif typ == "outbound_call.placed":
            obj.update(
                to_number=_phone(rng),
                from_number=rng.choice(call.project.caller_ids),
                call_data={"message": "Incident acknowledged?", "retry": 0},
                team_id=_uuid4(rng),
            )
        elif typ == "outbound_call.ended":
            obj.update(status="Success", billable_seconds=12)
        elif typ == "call.cost_reported":
            obj.update(leg_id=call.call_id, cost_usd_cents=1.3, billable_seconds=42)
        elif typ == "cdr.recorded":
            obj.update(
                cdr_id=_uuid4(rng),
                caller=_phone(rng),
                callee=_phone(rng),
                direction="INBOUND_CALL",
                started_at=call.clock.fmt(ms - 30_000, rng),
                ended_at=call.clock.fmt(ms, rng),
                duration=12,
            )
        return obj


# --------------------------------------------------------------------------------------------
# invalid cases: each returns the value (key = the call's id) or an explicit (key, value)

_Made = bytes | tuple[bytes, bytes]
_Case = Callable[[_Generator, _Call, int], _Made]
_INVALID: list[tuple[str, _Case]] = []


def _case(name: str, weight: int = 1) -> Callable[[_Case], _Case]:
    def register(fn: _Case) -> _Case:
        _INVALID.extend([(name, fn)] * weight)
        return fn

    return register


def _mutated(typ: str, **changes: Any) -> _Case:
    """Case: a valid event of `typ` with fields set (a value of `_DROP` removes the field)."""

    def make(g: _Generator, call: _Call, ms: int) -> _Made:
        obj = g._synthetic(call, typ, ms)
        for k, v in changes.items():
            if v is _DROP:
                obj.pop(k, None)
            else:
                obj[k] = v
        return orjson.dumps(obj)

    return make


_DROP = object()
_ANY_DIAL = "incoming_call.dial_answered"

_MUTATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    # envelope: missing (absent or JSON null)
    "missing_event_id": (_ANY_DIAL, {"event_id": _DROP}),
    "null_event_id": ("incoming_call.ended", {"event_id": None}),
    "missing_type": (_ANY_DIAL, {"type": _DROP}),
    "missing_occurred_at": ("incoming_call.ended", {"occurred_at": _DROP}),
    "missing_project_id": (_ANY_DIAL, {"project_id": _DROP}),
    "missing_call_id": ("outbound_call.answered", {"call_id": _DROP}),
    # envelope: values
    "unknown_type": (_ANY_DIAL, {"type": "incoming_call.transferred"}),
    "unknown_type_upper": ("outbound_call.ended", {"type": "CALL_ENDED"}),
    "schema_version_2": ("incoming_call.ended", {"schema_version": 2}),
    "schema_version_0": ("outbound_call.answered", {"schema_version": 0}),
    "event_id_not_string": (_ANY_DIAL, {"event_id": 12345}),
    "event_id_empty": (_ANY_DIAL, {"event_id": ""}),
    "event_id_too_long": (_ANY_DIAL, {"event_id": "e" * 129}),
    "source_too_long": (_ANY_DIAL, {"source": "s" * 65}),
    "type_not_string": (_ANY_DIAL, {"type": 7}),
    "sequence_negative": ("incoming_call.dial_ringing", {"sequence": -1}),
    "sequence_not_int": ("incoming_call.dial_ringing", {"sequence": "first"}),
    "sequence_fractional": ("incoming_call.dial_ringing", {"sequence": 1.5}),
    "bad_uuid_project_id": (_ANY_DIAL, {"project_id": "not-a-uuid"}),
    "project_id_not_string": (_ANY_DIAL, {"project_id": 42}),
    "empty_call_id": (_ANY_DIAL, {"call_id": ""}),
    # timestamps
    "timestamp_without_offset": (_ANY_DIAL, {"occurred_at": "2024-05-01T10:00:00.123"}),
    "timestamp_garbage": (_ANY_DIAL, {"occurred_at": "yesterday"}),
    "timestamp_epoch_number": (_ANY_DIAL, {"occurred_at": 1714557600}),
    "timestamp_epoch_ms_string": (_ANY_DIAL, {"occurred_at": "1714557600123"}),
    "timestamp_hour_25": (_ANY_DIAL, {"occurred_at": "2024-05-01T25:00:00Z"}),
    "timestamp_impossible_date": (_ANY_DIAL, {"occurred_at": "2024-02-30T10:00:00Z"}),
    "timestamp_date_only": (_ANY_DIAL, {"occurred_at": "2024-05-01"}),
    "cdr_bad_started_at": ("cdr.recorded", {"started_at": "01/05/2024 10:00"}),
    # incoming_call.*
    "missing_policy_id": ("incoming_call.received", {"incoming_call_policy_id": _DROP}),
    "bad_uuid_policy_id": (
        "incoming_call.received",
        {"incoming_call_policy_id": "00000000-0000-0000-0000-00000000000g"},
    ),
    "e164_no_plus": ("incoming_call.received", {"caller_phone_number": "12125550123"}),
    "e164_formatted": ("incoming_call.received", {"routing_phone_number": "+1 (212) 555-0123"}),
    "e164_leading_zero": ("incoming_call.dial_started", {"user_phone_number": "+0442079460000"}),
    "e164_too_long": ("incoming_call.dial_started", {"user_phone_number": "+4420794600001234"}),
    "e164_letters": ("outbound_call.placed", {"to_number": "+44abc"}),
    "e164_number_type": ("outbound_call.placed", {"from_number": 4420794600001}),
    "missing_dial_id": ("incoming_call.dial_ended", {"dial_id": _DROP}),
    "null_dial_id": ("incoming_call.dial_ringing", {"dial_id": None}),
    "dial_id_too_long": ("incoming_call.dial_ringing", {"dial_id": "d" * 129}),
    "dial_id_not_string": ("incoming_call.dial_ringing", {"dial_id": 42}),
    "missing_user_id": ("incoming_call.dial_started", {"user_id": _DROP}),
    "bad_uuid_user_id": ("incoming_call.dial_started", {"user_id": "1234-5678"}),
    "bad_uuid_escalation_rule_id": ("incoming_call.dial_started", {"escalation_rule_id": "r-1"}),
    "escalation_rule_order_0": ("incoming_call.dial_started", {"escalation_rule_order": 0}),
    "repeat_count_negative": ("incoming_call.dial_started", {"repeat_count": -1}),
    "bad_dial_outcome": ("incoming_call.dial_ended", {"outcome": "hung_up"}),
    "dial_outcome_on_call": ("incoming_call.ended", {"outcome": "canceled"}),
    "missing_call_outcome": ("incoming_call.ended", {"outcome": _DROP}),
    "negative_billable_seconds_dial": (
        "incoming_call.dial_ended",
        {"outcome": "completed", "billable_seconds": -5},
    ),
    "billable_seconds_not_int": ("incoming_call.dial_ended", {"billable_seconds": "12s"}),
    # outbound_call.*
    "missing_call_data": ("outbound_call.placed", {"call_data": _DROP}),
    "call_data_not_object": ("outbound_call.placed", {"call_data": "not an object"}),
    "call_data_list": ("outbound_call.placed", {"call_data": [1, 2]}),
    "bad_uuid_team_id": ("outbound_call.placed", {"team_id": "team-42"}),
    "missing_to_number": ("outbound_call.placed", {"to_number": _DROP}),
    "bad_outbound_status": ("outbound_call.ended", {"status": "Completed"}),
    "outbound_status_lowercase": ("outbound_call.ended", {"status": "success"}),
    "missing_outbound_status": ("outbound_call.ended", {"status": _DROP}),
    "negative_billable_seconds_outbound": ("outbound_call.ended", {"billable_seconds": -1}),
    # call.cost_reported
    "missing_leg_id": ("call.cost_reported", {"leg_id": _DROP}),
    "missing_cost": ("call.cost_reported", {"cost_usd_cents": _DROP}),
    "negative_cost": ("call.cost_reported", {"cost_usd_cents": -1.5}),
    "negative_cost_string": ("call.cost_reported", {"cost_usd_cents": "-0.01"}),
    "cost_not_decimal": ("call.cost_reported", {"cost_usd_cents": "abc"}),
    "cost_nan_string": ("call.cost_reported", {"cost_usd_cents": "NaN"}),
    "cost_bool": ("call.cost_reported", {"cost_usd_cents": True}),
    "negative_billable_seconds_cost": ("call.cost_reported", {"billable_seconds": -30}),
    # cdr.recorded
    "missing_cdr_id": ("cdr.recorded", {"cdr_id": _DROP}),
    "bad_cdr_direction": ("cdr.recorded", {"direction": "INBOUND"}),
    "cdr_duration_not_int": ("cdr.recorded", {"duration": "12 s"}),
    "cdr_status_code_not_int": ("cdr.recorded", {"status_code": "OK"}),
}
for _name, (_typ, _changes) in _MUTATIONS.items():
    _case(_name)(_mutated(_typ, **_changes))


@_case("not_json_text", 2)
def _not_json_text(g: _Generator, call: _Call, ms: int) -> _Made:
    return g.rng.choice((b"call ended", b"<html><body>502 Bad Gateway</body></html>", b"{oops"))


@_case("truncated_json", 2)
def _truncated(g: _Generator, call: _Call, ms: int) -> _Made:
    value = orjson.dumps(g._synthetic(call, "incoming_call.ended", ms))
    return value[: g.rng.randint(10, len(value) - 2)]


@_case("json_nan")
def _json_nan(g: _Generator, call: _Call, ms: int) -> _Made:
    obj = g._synthetic(call, "call.cost_reported", ms)
    obj["cost_usd_cents"] = "__NAN__"
    return orjson.dumps(obj).replace(b'"__NAN__"', b"NaN")


@_case("not_utf8", 2)
def _not_utf8(g: _Generator, call: _Call, ms: int) -> _Made:
    obj = g._synthetic(call, "incoming_call.ended", ms)
    obj["status_message"] = "__LATIN1__"
    # a producer that wrote Latin-1 instead of UTF-8
    return orjson.dumps(obj).replace(b"__LATIN1__", "café – Störung".encode("cp1252"))


@_case("binary_garbage")
def _binary(g: _Generator, call: _Call, ms: int) -> _Made:
    # no newline byte: any generated stream can be written as JSONL
    return b"\xff\xfe\x00\x01" + g.rng.randbytes(16).replace(b"\n", b"\x80")


@_case("json_array")
def _json_array(g: _Generator, call: _Call, ms: int) -> _Made:
    return orjson.dumps([g._synthetic(call, "incoming_call.ended", ms)])


@_case("json_scalar", 2)
def _json_scalar(g: _Generator, call: _Call, ms: int) -> _Made:
    return g.rng.choice((b'"incoming_call.ended"', b"42", b"null", b"true", b"3.5"))


@_case("key_mismatch", 3)
def _key_mismatch(g: _Generator, call: _Call, ms: int) -> _Made:
    others = [c for c in g.recent_calls if c != call.call_id]
    other = g.rng.choice(others) if others else call.call_id + "-other"
    value = orjson.dumps(g._synthetic(call, "incoming_call.dial_ringing", ms))
    return other.encode("utf-8"), value


INVALID_CASES: tuple[str, ...] = tuple(
    sorted({name for name, _ in _INVALID} | {"oversized_source"})
)


# --------------------------------------------------------------------------------------------
# public API


def _stream(
    *,
    max_calls: int | None,
    max_messages: int | None,
    seed: int,
    start: datetime,
    invalid_share: float,
    duplicate_share: float,
    shuffle_within_call: bool,
    projects: int,
    calls_per_minute: float,
    open_share: float,
    oversized: int,
) -> Iterator[Message]:
    g = _Generator(
        seed=seed,
        start=start,
        invalid_share=invalid_share,
        duplicate_share=duplicate_share,
        shuffle_within_call=shuffle_within_call,
        projects=projects,
        calls_per_minute=calls_per_minute,
        open_share=open_share,
        oversized=oversized,
    )
    heap: list[tuple[int, int, Message]] = []
    counter = 0
    calls = 0
    emitted = 0
    while (max_calls is None or calls < max_calls) and (
        max_messages is None or emitted + len(heap) < max_messages
    ):
        call = g.next_call()
        calls += 1
        # every message of this and later calls arrives at or after the call's start
        while heap and heap[0][0] < call.start_ms:
            yield heapq.heappop(heap)[2]
            emitted += 1
        for arrival, msg in g.render(call):
            heapq.heappush(heap, (arrival, counter, msg))
            counter += 1
    while heap:
        yield heapq.heappop(heap)[2]


def generate_calls(
    n_calls: int,
    *,
    seed: int = 1,
    start: datetime = DEFAULT_START,
    invalid_share: float = 0.02,
    duplicate_share: float = 0.1,
    shuffle_within_call: bool = True,
    projects: int = 3,
    calls_per_minute: float = 20.0,
    open_share: float = 0.03,
    oversized: int = 1,
) -> Iterator[Message]:
    """Messages of `n_calls` calls in arrival order (deterministic for a given seed).

    `invalid_share` is the expected share of invalid messages among all messages;
    `duplicate_share` the share of valid events sent twice (same bytes, later);
    `calls_per_minute` the mean rate of the Poisson process of call starts;
    `open_share` the share of calls left without an end event; `oversized` how many of the
    invalid messages are ~2 MB (a `source` far beyond 64 characters; needs the topic's
    `max.message.bytes` raised), 0 for none; none at all when `invalid_share` is 0.
    """
    return _stream(
        max_calls=n_calls,
        max_messages=None,
        seed=seed,
        start=start,
        invalid_share=invalid_share,
        duplicate_share=duplicate_share,
        shuffle_within_call=shuffle_within_call,
        projects=projects,
        calls_per_minute=calls_per_minute,
        open_share=open_share,
        oversized=oversized,
    )


def generate_events(n_events: int, **kw: Any) -> Iterator[Message]:
    """Generate calls until about `n_events` messages (stops starting calls at `n_events`,
    then finishes the calls already started, so slightly more may come). Same keywords as
    `generate_calls`."""
    params: dict[str, Any] = {
        "seed": 1,
        "start": DEFAULT_START,
        "invalid_share": 0.02,
        "duplicate_share": 0.1,
        "shuffle_within_call": True,
        "projects": 3,
        "calls_per_minute": 20.0,
        "open_share": 0.03,
        "oversized": 1,
    }
    unknown = set(kw) - set(params)
    if unknown:
        raise TypeError(f"unexpected keyword arguments: {sorted(unknown)}")
    params.update(kw)
    return _stream(max_calls=None, max_messages=n_events, **params)
