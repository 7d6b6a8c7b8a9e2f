"""The incoming-call scenario: a caller reaches a policy, whose escalation rules are dialled.

Rules are dialled in order, the users of one rule in parallel, the whole list repeated up to
the policy's repeat count. The call is answered at some attempt, or nobody answers, or the
caller hangs up while dials ring; a few calls end before any dial.
"""

from __future__ import annotations

import math
import random
from typing import Any

from devtools.traffic import status_messages
from devtools.traffic.call import Call, maybe_leave_open
from devtools.traffic.costs import report_cost
from devtools.traffic.values import hex_id, phone
from devtools.traffic.world import Rule

# (dial_id, answered_ms, talk_ms) of a dial that was answered
_Answered = tuple[str, int, int]
# (dial_id, ringing_ms) of a dial that is ringing
_Ringing = tuple[str, int]


def play_incoming(call: Call, rng: random.Random, open_share: float) -> None:
    """Fill `call` with the events of one incoming call and its late cost reports."""
    policy = rng.choice(call.project.policies)
    t = call.start_ms
    call.add(
        t,
        "incoming_call.received",
        incoming_call_policy_id=policy.id,
        caller_phone_number=phone(rng),
        routing_phone_number=policy.routing_number,
    )
    r = rng.random()
    if r < 0.04:
        _end_before_any_dial(call, rng, open_share)
        return
    steps = [(rep, rule) for rep in range(policy.repeats + 1) for rule in policy.rules]
    answer_step, hangup_step = _pick_outcome(rng, r, len(steps))
    t += rng.randint(800, 4_000)  # IVR / greeting
    escalation = _Escalation(call, rng, t)
    end_ms, call_outcome = escalation.run(steps, answer_step, hangup_step)
    extra: dict[str, Any] = {}
    if call_outcome == "no_answer":
        extra["status_message"] = "No one answered the call"
    elif call_outcome == "caller_hung_up":
        extra["status_message"] = "caller hung up"
    elif rng.random() < 0.05:
        extra["status_message"] = None  # a JSON null counts as absent
    call.add(end_ms, "incoming_call.ended", outcome=call_outcome, **extra)
    maybe_leave_open(call, rng, open_share)
    _report_costs(call, rng, end_ms, escalation.answered, escalation.dials)


def _end_before_any_dial(call: Call, rng: random.Random, open_share: float) -> None:
    """The caller gives up in the IVR, or the route is busy / broken: no dial at all."""
    end = call.start_ms + rng.randint(1_500, 12_000)
    outcome, msg = rng.choice(
        (
            ("caller_hung_up", "caller hung up before any dial"),
            ("busy", rng.choice(status_messages.BUSY)),
            ("failed", rng.choice(status_messages.FAILED)),
        )
    )
    call.add(end, "incoming_call.ended", outcome=outcome, status_message=msg)
    maybe_leave_open(call, rng, open_share)
    _report_costs(call, rng, end, [], [])


def _pick_outcome(rng: random.Random, r: float, n_steps: int) -> tuple[int, int]:
    """(answer_step, hangup_step), -1 for none: which step is answered or hung up on."""
    answer_step = hangup_step = -1
    if r < 0.70:
        # answered at the first attempt, or the second, third... (geometric)
        answer_step = 0
        while answer_step < n_steps - 1 and rng.random() < 0.45:
            answer_step += 1
    elif r >= 0.86:
        hangup_step = rng.randrange(n_steps)
    # otherwise nobody answers
    return answer_step, hangup_step


class _Escalation:
    """Dials a policy's steps one after the other until the call's outcome is reached.

    Collects the dials made and the answered ones: the cost reports need them.
    """

    def __init__(self, call: Call, rng: random.Random, t: int) -> None:
        self.call = call
        self.rng = rng
        self.t = t  # when the next step starts
        self.n_dial = 0
        self.answered: list[_Answered] = []
        self.dials: list[tuple[str, str]] = []  # (dial_id, user phone)

    def run(
        self, steps: list[tuple[int, Rule]], answer_step: int, hangup_step: int
    ) -> tuple[int, str]:
        """(end_ms, call outcome) after dialling up to the answered / hung-up step."""
        end_ms = self.t
        for i, (rep, rule) in enumerate(steps):
            ringing, step_end = self._dial_rule(rep, rule)
            # a step where every dial was busy or failed cannot be answered nor hung up on
            if i == hangup_step and ringing:
                return self._caller_hangs_up(rule, ringing), "caller_hung_up"
            if i >= answer_step >= 0 and ringing:
                return self._answer(rule, ringing), "completed"
            end_ms = self._ring_out(rule, ringing, step_end)
            self.t = end_ms + self.rng.randint(200, 2_000)
        return end_ms + self.rng.randint(200, 1_000), "no_answer"

    def _dial_id(self) -> str:
        if self.call.source == "twilio":
            return "CA" + hex_id(self.rng, 32)  # Twilio child CallSid
        return f"{self.call.call_id}-{self.n_dial}"

    def _dial_rule(self, rep: int, rule: Rule) -> tuple[list[_Ringing], int]:
        """Dial the rule's users; (the dials that ring, when the busy / failed ones ended)."""
        rng, call = self.rng, self.call
        ringing: list[_Ringing] = []
        step_end = self.t
        for user in rule.users:
            self.n_dial += 1
            dial_id = self._dial_id()
            self.dials.append((dial_id, user.phone))
            ts = self.t + rng.randint(0, 250)
            extra: dict[str, Any] = {}
            if rng.random() < 0.95:  # some providers omit the optional escalation fields
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
                    status_message=rng.choice(status_messages.BUSY),
                )
                step_end = max(step_end, te)
            elif fate < 0.08:
                te = ts + rng.randint(300, 3_000)
                call.add(
                    te,
                    "incoming_call.dial_ended",
                    dial_id=dial_id,
                    outcome="failed",
                    status_message=rng.choice(status_messages.FAILED),
                )
                step_end = max(step_end, te)
            else:
                tr = ts + rng.randint(400, 2_500)
                call.add(tr, "incoming_call.dial_ringing", dial_id=dial_id)
                ringing.append((dial_id, tr))
        return ringing, step_end

    def _caller_hangs_up(self, rule: Rule, ringing: list[_Ringing]) -> int:
        """The caller hangs up while the dials ring: they end `canceled`. Returns the end."""
        th = max(tr for _, tr in ringing) + self.rng.randint(500, rule.ring_timeout_ms - 3_000)
        for dial_id, _ in ringing:
            self.call.add(th, "incoming_call.dial_ended", dial_id=dial_id, outcome="canceled")
        return th

    def _answer(self, rule: Rule, ringing: list[_Ringing]) -> int:
        """One ringing dial answers, the others are canceled. Returns the call's end."""
        rng, call = self.rng, self.call
        win = rng.randrange(len(ringing))
        dial_id, tr = ringing[win]
        ta = tr + rng.randint(2_000, min(rule.ring_timeout_ms - 1_000, 18_000))
        talk = min(int(rng.lognormvariate(10.8, 1.0)), 3_600_000) + 1_000
        te = ta + talk
        completed_only = rng.random() < 0.04  # provider sends no answered event
        if not completed_only:
            call.add(ta, "incoming_call.dial_answered", dial_id=dial_id)
        extra: dict[str, Any] = {}
        if rng.random() < 0.6:
            extra["billable_seconds"] = math.ceil(talk / 1000)
        call.add(te, "incoming_call.dial_ended", dial_id=dial_id, outcome="completed", **extra)
        if not completed_only:
            self.answered.append((dial_id, ta, talk))
        for other, _ in ringing:
            if other != dial_id:
                call.add(
                    ta + rng.randint(50, 600),
                    "incoming_call.dial_ended",
                    dial_id=other,
                    outcome="canceled",
                    status_message="answered by another user",
                )
        return te + rng.randint(0, 400)

    def _ring_out(self, rule: Rule, ringing: list[_Ringing], step_end: int) -> int:
        """Nobody answers: every ringing dial times out. Returns when the step ended."""
        rng = self.rng
        for dial_id, tr in ringing:
            te = tr + rule.ring_timeout_ms + rng.randint(-500, 500)
            extra: dict[str, Any] = {}
            if rng.random() < 0.5:
                extra["status_message"] = rng.choice(status_messages.NO_ANSWER)
            self.call.add(
                te, "incoming_call.dial_ended", dial_id=dial_id, outcome="no_answer", **extra
            )
            step_end = max(step_end, te)
        return step_end


def _report_costs(
    call: Call,
    rng: random.Random,
    end_ms: int,
    answered: list[_Answered],
    dials: list[tuple[str, str]],
) -> None:
    """Late cost reports for the inbound leg and some dials (none for an open call)."""
    if call.open:
        return
    if rng.random() < 0.5:
        report_cost(call, rng, call.call_id, end_ms, (end_ms - call.start_ms) / 1000, 0.85)
    answered_ids = {d for d, _, _ in answered}
    for dial_id, _, talk in answered:
        if rng.random() < 0.5:
            report_cost(call, rng, dial_id, end_ms, talk / 1000, 1.3)
    for dial_id, _ in dials:
        # a zero-cost report for an unanswered dial
        if dial_id not in answered_ids and rng.random() < 0.05:
            report_cost(call, rng, dial_id, end_ms, 0, 1.3)
    if rng.random() < 0.01:  # a cost for a leg whose events never came: creates no row
        report_cost(call, rng, f"{call.call_id}-orphan", end_ms, 12, 1.3)
