"""Invalid cases that break one valid event at the field level: a field dropped or set wrong.

Each entry names a case of the contract's rejection list: (event type, field changes).
"""

from __future__ import annotations

from typing import Any

# a change to this value removes the field
DROP = object()

# envelope cases break fields that every type has: any event type would do
_ANY_DIAL = "incoming_call.dial_answered"

MUTATIONS: dict[str, tuple[str, dict[str, Any]]] = {
    # envelope: missing (absent or JSON null)
    "missing_event_id": (_ANY_DIAL, {"event_id": DROP}),
    "null_event_id": ("incoming_call.ended", {"event_id": None}),
    "missing_type": (_ANY_DIAL, {"type": DROP}),
    "missing_occurred_at": ("incoming_call.ended", {"occurred_at": DROP}),
    "missing_project_id": (_ANY_DIAL, {"project_id": DROP}),
    "missing_call_id": ("outbound_call.answered", {"call_id": DROP}),
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
    "missing_policy_id": ("incoming_call.received", {"incoming_call_policy_id": DROP}),
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
    "missing_dial_id": ("incoming_call.dial_ended", {"dial_id": DROP}),
    "null_dial_id": ("incoming_call.dial_ringing", {"dial_id": None}),
    "dial_id_too_long": ("incoming_call.dial_ringing", {"dial_id": "d" * 129}),
    "dial_id_not_string": ("incoming_call.dial_ringing", {"dial_id": 42}),
    "missing_user_id": ("incoming_call.dial_started", {"user_id": DROP}),
    "bad_uuid_user_id": ("incoming_call.dial_started", {"user_id": "1234-5678"}),
    "bad_uuid_escalation_rule_id": ("incoming_call.dial_started", {"escalation_rule_id": "r-1"}),
    "escalation_rule_order_0": ("incoming_call.dial_started", {"escalation_rule_order": 0}),
    "repeat_count_negative": ("incoming_call.dial_started", {"repeat_count": -1}),
    "bad_dial_outcome": ("incoming_call.dial_ended", {"outcome": "hung_up"}),
    "dial_outcome_on_call": ("incoming_call.ended", {"outcome": "canceled"}),
    "missing_call_outcome": ("incoming_call.ended", {"outcome": DROP}),
    "negative_billable_seconds_dial": (
        "incoming_call.dial_ended",
        {"outcome": "completed", "billable_seconds": -5},
    ),
    "billable_seconds_not_int": ("incoming_call.dial_ended", {"billable_seconds": "12s"}),
    # outbound_call.*
    "missing_call_data": ("outbound_call.placed", {"call_data": DROP}),
    "call_data_not_object": ("outbound_call.placed", {"call_data": "not an object"}),
    "call_data_list": ("outbound_call.placed", {"call_data": [1, 2]}),
    "bad_uuid_team_id": ("outbound_call.placed", {"team_id": "team-42"}),
    "missing_to_number": ("outbound_call.placed", {"to_number": DROP}),
    "bad_outbound_status": ("outbound_call.ended", {"status": "Completed"}),
    "outbound_status_lowercase": ("outbound_call.ended", {"status": "success"}),
    "missing_outbound_status": ("outbound_call.ended", {"status": DROP}),
    "negative_billable_seconds_outbound": ("outbound_call.ended", {"billable_seconds": -1}),
    # call.cost_reported
    "missing_leg_id": ("call.cost_reported", {"leg_id": DROP}),
    "missing_cost": ("call.cost_reported", {"cost_usd_cents": DROP}),
    "negative_cost": ("call.cost_reported", {"cost_usd_cents": -1.5}),
    "negative_cost_string": ("call.cost_reported", {"cost_usd_cents": "-0.01"}),
    "cost_not_decimal": ("call.cost_reported", {"cost_usd_cents": "abc"}),
    "cost_nan_string": ("call.cost_reported", {"cost_usd_cents": "NaN"}),
    "cost_bool": ("call.cost_reported", {"cost_usd_cents": True}),
    "negative_billable_seconds_cost": ("call.cost_reported", {"billable_seconds": -30}),
    # cdr.recorded
    "missing_cdr_id": ("cdr.recorded", {"cdr_id": DROP}),
    "bad_cdr_direction": ("cdr.recorded", {"direction": "INBOUND"}),
    "cdr_duration_not_int": ("cdr.recorded", {"duration": "12 s"}),
    "cdr_status_code_not_int": ("cdr.recorded", {"status_code": "OK"}),
}


def apply_changes(obj: dict[str, Any], changes: dict[str, Any]) -> None:
    """Set the fields of `changes` in `obj` (a value of `DROP` removes the field)."""
    for k, v in changes.items():
        if v is DROP:
            obj.pop(k, None)
        else:
            obj[k] = v
