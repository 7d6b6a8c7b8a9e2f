"""Q.850 hangup causes (Asterisk writes the number, FreeSWITCH the name) and what a dialled
leg that ended *unanswered* with that cause means for ringlog's dial `outcome`.

An answered leg is `completed` whatever its cause (DESIGN.md section 3: an answered item is
Completed), so these tables are only about legs that never answered. A cause in no table is
dead-lettered by the normalizer (UNMAPPED_VALUE), never guessed.
"""

from __future__ import annotations

from typing import Final

# Asterisk include/asterisk/causes.h and FreeSWITCH switch_types.h share these numbers/names.
Q850_NAMES: Final[dict[int, str]] = {
    0: "NOTDEFINED",
    1: "UNALLOCATED_NUMBER",
    2: "NO_ROUTE_TRANSIT_NET",
    3: "NO_ROUTE_DESTINATION",
    6: "CHANNEL_UNACCEPTABLE",
    16: "NORMAL_CLEARING",
    17: "USER_BUSY",
    18: "NO_USER_RESPONSE",
    19: "NO_ANSWER",
    20: "SUBSCRIBER_ABSENT",
    21: "CALL_REJECTED",
    22: "NUMBER_CHANGED",
    26: "ANSWERED_ELSEWHERE",
    27: "DESTINATION_OUT_OF_ORDER",
    28: "INVALID_NUMBER_FORMAT",
    29: "FACILITY_REJECTED",
    31: "NORMAL_UNSPECIFIED",
    34: "NORMAL_CIRCUIT_CONGESTION",
    38: "NETWORK_OUT_OF_ORDER",
    41: "NORMAL_TEMPORARY_FAILURE",
    42: "SWITCH_CONGESTION",
    44: "REQUESTED_CHAN_UNAVAIL",
    52: "OUTGOING_CALL_BARRED",
    54: "INCOMING_CALL_BARRED",
    58: "BEARERCAPABILITY_NOTAVAIL",
    63: "SERVICE_UNAVAILABLE",
    66: "CHAN_NOT_IMPLEMENTED",
    88: "INCOMPATIBLE_DESTINATION",
    102: "RECOVERY_ON_TIMER_EXPIRE",
    111: "PROTOCOL_ERROR",
    127: "INTERWORKING",
}

# The callee did not take the call: timed out, declined, or another leg of a ring group won.
NO_ANSWER_CAUSES: Final = frozenset(
    {
        "NO_ANSWER",
        "NO_USER_RESPONSE",
        "CALL_REJECTED",
        "ANSWERED_ELSEWHERE",  # Asterisk: a parallel leg answered
        "LOSE_RACE",  # FreeSWITCH: a parallel leg answered
        "PICKED_OFF",  # FreeSWITCH: picked up from another phone
        "NO_PICKUP",  # FreeSWITCH: originate timeout of a group
    }
)
BUSY_CAUSES: Final = frozenset({"USER_BUSY"})
# The leg could not be set up: number, route, network or endpoint failure.
FAILED_CAUSES: Final = frozenset(
    {
        "UNALLOCATED_NUMBER",
        "NO_ROUTE_TRANSIT_NET",
        "NO_ROUTE_DESTINATION",
        "CHANNEL_UNACCEPTABLE",
        "SUBSCRIBER_ABSENT",
        "NUMBER_CHANGED",
        "DESTINATION_OUT_OF_ORDER",
        "INVALID_NUMBER_FORMAT",
        "FACILITY_REJECTED",
        "NORMAL_CIRCUIT_CONGESTION",
        "NETWORK_OUT_OF_ORDER",
        "NORMAL_TEMPORARY_FAILURE",
        "SWITCH_CONGESTION",
        "REQUESTED_CHAN_UNAVAIL",
        "OUTGOING_CALL_BARRED",
        "INCOMING_CALL_BARRED",
        "BEARERCAPABILITY_NOTAVAIL",
        "SERVICE_UNAVAILABLE",
        "CHAN_NOT_IMPLEMENTED",
        "INCOMPATIBLE_DESTINATION",
        "RECOVERY_ON_TIMER_EXPIRE",
        "PROTOCOL_ERROR",
        "INTERWORKING",
        "USER_NOT_REGISTERED",  # FreeSWITCH: the dialled user has no registration
        "GATEWAY_DOWN",  # FreeSWITCH
        "INVALID_GATEWAY",  # FreeSWITCH
    }
)
# The caller's side tore the ringing leg down.
CANCELED_CAUSES: Final = frozenset({"ORIGINATOR_CANCEL"})


def unanswered_outcome(cause: str) -> str | None:
    """The dial outcome of a leg that never answered and ended with `cause` (None: unmapped)."""
    if cause in NO_ANSWER_CAUSES:
        return "no_answer"
    if cause in BUSY_CAUSES:
        return "busy"
    if cause in FAILED_CAUSES:
        return "failed"
    if cause in CANCELED_CAUSES:
        return "canceled"
    return None
