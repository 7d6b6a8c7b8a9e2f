"""What the provider tests share: the fixtures' context, the core run, and the rows each
fixture call must give, computed by hand from DESIGN.md section 3 and
tests/support/fixtures/rates.yaml (the arithmetic is in the comments).

Every fixture call starts at T0 (2024-05-01T08:00:00Z = epoch 1714550400) so `t(s)` reads
as "s seconds into the call". Rates used:
  inbound default {0.5 + 0.85 c/min, 1/1}, inbound "44" {0 + 12 c/min, 60/30},
  outbound default {0 + 1.3 c/min, 60/60}, outbound "49" {0.5 + 0.85 c/min, 1/1}.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from tests.support import builders as b
from tests.support.expected_rows import comparable, item, parent, t
from worker.core.correlation import build_call_rows, row_id
from worker.core.providers.base import ProviderContext

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "providers"
SHARED_SAMPLES = Path("/work/shared/provider-samples")

ALICE_PHONE = "+15550111"  # outbound default plan
BOB_PHONE = "+4915550222"  # outbound "49" plan: per-second billing
UK_DID = "+442071838750"  # inbound "44" plan

CONTEXT = ProviderContext(
    project_id=b.PROJECT,
    policy_for_number={"+15550100": b.POLICY, UK_DID: b.POLICY},
    user_for_endpoint={"PJSIP/alice": b.ALICE, "PJSIP/bob": b.BOB, "1001": b.ALICE, "1002": b.BOB},
    phone_for_endpoint={
        "PJSIP/alice": ALICE_PHONE,
        "PJSIP/bob": BOB_PHONE,
        "1001": ALICE_PHONE,
        "1002": BOB_PHONE,
    },
)

Tables = dict[str, list[dict[str, Any]]]


def D(text: str) -> Decimal:
    return Decimal(text)


def rows_by_call(events: Iterable[dict[str, Any]]) -> Tables:
    """The core's rows for these events (grouped per call), comparable and sorted by id."""
    calls: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        calls[event["call_id"]].append(event)
    out: Tables = defaultdict(list)
    for call_events in calls.values():
        rows = build_call_rows([b.valid(e) for e in call_events], b.test_rates())
        for table, table_rows in rows.tables().items():
            out[str(table)].extend(comparable(r) for r in table_rows)
    return {table: sorted(rows, key=lambda r: str(r["id"])) for table, rows in out.items() if rows}


def _sorted(tables: Tables) -> Tables:
    return {table: sorted(rows, key=lambda r: str(r["id"])) for table, rows in tables.items()}


def _no_rule(row: dict[str, Any]) -> dict[str, Any]:
    # Neither PBX knows ringlog's escalation rules: no rule id, order or repeat count.
    row["incoming_call_policy_escalation_rule_id"] = None
    return row


def hunt_rows(call: str, alice_dial: str, bob_dial: str, messages: dict[str, str | None]) -> Tables:
    """Alice rings 1 s -> 21 s unanswered; Bob rings from 21.5 s, answers at 31.5 s, talks
    until 92.5 s; the caller's leg ends at 92.6 s."""
    return _sorted(
        {
            "incoming_call_log": [
                parent(
                    call,
                    status="Completed",
                    status_message=messages["call"],
                    call_duration_in_seconds=93,  # 92.6 s rounded up
                    incoming_call_cost_in_usd_cents=D("1.8175"),  # 0.5 + 0.85 * 93 / 60
                    outgoing_call_cost_in_usd_cents=D("1.3642"),  # Alice 0 + Bob 1.3642
                    call_cost_in_usd_cents=D("3.1817"),
                    answered_at=t(31.5),
                    ended_at=t(92.6),
                    answered_by_user_id=b.BOB,
                    current_escalation_rule_order=None,
                    repeat_count=None,
                    dial_attempts=2,
                )
            ],
            "incoming_call_log_item": [
                _no_rule(
                    item(
                        call,
                        alice_dial,
                        status="NoAnswer",
                        status_message=messages["alice"],
                        dial_duration_in_seconds=20,  # 21 - 1
                        started_at=t(1),
                        ended_at=t(21),
                    )
                ),
                _no_rule(
                    item(
                        call,
                        bob_dial,
                        status="Completed",
                        status_message=messages["bob"],
                        user_id=b.BOB,
                        user_phone_number=BOB_PHONE,
                        dial_duration_in_seconds=71,  # 92.5 - 21.5
                        talk_duration_in_seconds=61,  # 92.5 - 31.5
                        # "49" plan, 61 s billed per second: 0.5 + 0.85 * 61 / 60 = 1.36416..
                        call_cost_in_usd_cents=D("1.3642"),
                        started_at=t(21.5),
                        answered_at=t(31.5),
                        ended_at=t(92.5),
                        is_answered=True,
                    )
                ),
            ],
        }
    )


def nobody_answers_rows(
    call: str, alice_dial: str, bob_dial: str, messages: dict[str, str | None]
) -> Tables:
    """Alice 1 -> 21 s and Bob 21.5 -> 41.5 s unanswered; the caller's leg ends at 42 s; the
    call came in on the UK number."""
    return _sorted(
        {
            "incoming_call_log": [
                parent(
                    call,
                    routing_phone_number=UK_DID,
                    status="NoAnswer",
                    status_message=messages["call"],
                    call_duration_in_seconds=42,
                    # "44" plan: 42 s <= 60 s initial increment -> 60 s at 12 c/min
                    incoming_call_cost_in_usd_cents=D("12.0000"),
                    outgoing_call_cost_in_usd_cents=D("0.0000"),
                    call_cost_in_usd_cents=D("12.0000"),
                    ended_at=t(42),
                    current_escalation_rule_order=None,
                    repeat_count=None,
                    dial_attempts=2,
                )
            ],
            "incoming_call_log_item": [
                _no_rule(
                    item(
                        call,
                        alice_dial,
                        status="NoAnswer",
                        status_message=messages["alice"],
                        dial_duration_in_seconds=20,
                        started_at=t(1),
                        ended_at=t(21),
                    )
                ),
                _no_rule(
                    item(
                        call,
                        bob_dial,
                        status="NoAnswer",
                        status_message=messages["bob"],
                        user_id=b.BOB,
                        user_phone_number=BOB_PHONE,
                        dial_duration_in_seconds=20,  # 41.5 - 21.5
                        started_at=t(21.5),
                        ended_at=t(41.5),
                    )
                ),
            ],
        }
    )


def single_dial_rows(
    call: str,
    dial: str,
    *,
    call_status: str,
    item_status: str,
    call_ended: float,
    call_seconds: int,
    incoming_cost: str,
    dial_ended: float,
    dial_seconds: int,
    bob: bool = False,
    messages: dict[str, str | None],
) -> Tables:
    """One unanswered dial starting at 1 s; no talk, so no outgoing cost."""
    user, phone = (b.BOB, BOB_PHONE) if bob else (b.ALICE, ALICE_PHONE)
    return _sorted(
        {
            "incoming_call_log": [
                parent(
                    call,
                    status=call_status,
                    status_message=messages["call"],
                    call_duration_in_seconds=call_seconds,
                    incoming_call_cost_in_usd_cents=D(incoming_cost),
                    outgoing_call_cost_in_usd_cents=D("0.0000"),
                    call_cost_in_usd_cents=D(incoming_cost),
                    ended_at=t(call_ended),
                    current_escalation_rule_order=None,
                    repeat_count=None,
                    dial_attempts=1,
                )
            ],
            "incoming_call_log_item": [
                _no_rule(
                    item(
                        call,
                        dial,
                        status=item_status,
                        status_message=messages["dial"],
                        user_id=user,
                        user_phone_number=phone,
                        dial_duration_in_seconds=dial_seconds,
                        started_at=t(1),
                        ended_at=t(dial_ended),
                    )
                )
            ],
        }
    )


def caller_hangs_up_rows(call: str, dial: str, messages: dict[str, str | None]) -> Tables:
    return single_dial_rows(
        call,
        dial,
        call_status="CallerHungUp",
        item_status="CallerHungUp",
        call_ended=9.008,
        call_seconds=10,  # 9.008 s rounded up
        incoming_cost="0.6417",  # 0.5 + 0.85 * 10 / 60 = 0.64166..
        dial_ended=9.0,
        dial_seconds=8,
        messages=messages,
    )


def busy_rows(call: str, dial: str, messages: dict[str, str | None]) -> Tables:
    return single_dial_rows(
        call,
        dial,
        call_status="Busy",
        item_status="Busy",
        call_ended=2.5,
        call_seconds=3,  # 2.5 s rounded up
        incoming_cost="0.5425",  # 0.5 + 0.85 * 3 / 60
        dial_ended=2.0,
        dial_seconds=1,
        messages=messages,
    )


def failed_rows(call: str, dial: str, messages: dict[str, str | None]) -> Tables:
    return single_dial_rows(
        call,
        dial,
        call_status="Failed",
        item_status="Failed",
        call_ended=2.0,
        call_seconds=2,
        incoming_cost="0.5283",  # 0.5 + 0.85 * 2 / 60 = 0.52833..
        dial_ended=1.5,
        dial_seconds=1,  # 0.5 s rounded up
        bob=True,
        messages=messages,
    )


def outbound_rows(call: str, status_message: str, call_data: dict[str, Any]) -> Tables:
    """Placed at 0 s, answered at 5.5 s, ended at 50.4 s, 45 billable seconds, to a German
    number."""
    relations = (
        "user_id",
        "team_id",
        "incident_id",
        "alert_id",
        "monitor_id",
        "scheduled_maintenance_id",
        "status_page_id",
        "status_page_announcement_id",
        "on_call_duty_policy_id",
        "on_call_duty_policy_escalation_rule_id",
        "on_call_duty_policy_schedule_id",
    )
    row: dict[str, Any] = {
        "id": row_id("call_log", b.PROJECT, call),
        "project_id": b.PROJECT,
        "call_provider_call_id": call,
        "to_number": "+4915550333",
        "from_number": "+15550100",
        "call_data": call_data,
        "status": "Success",
        "status_message": status_message,
        "call_duration_in_seconds": 45,  # billsec 45 (50.4 - 5.5 = 44.9 s rounded up too)
        "call_cost_in_usd_cents": D("1.1375"),  # "49" plan: 0.5 + 0.85 * 45 / 60
        "cost_source": "rated",
        **dict.fromkeys(relations),
        "started_at": t(0),
        "answered_at": t(5.5),
        "ended_at": t(50.4),
    }
    return {"call_log": [row]}
