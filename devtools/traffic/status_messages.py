"""Free-text `status_message` values providers send with unanswered, busy or failed legs.

Some are non-ASCII on purpose: the worker must store them unchanged.
"""

from __future__ import annotations

NO_ANSWER = (
    "no answer after ring timeout",
    "No answer",
    "Ring timeout (30 s)",
    "Störung – keine Antwort",
)
FAILED = (
    "SIP 503 Service Unavailable",
    "carrier error 30008",
    "SIP 404 Not Found",
    "Destination unreachable",
    "障害: 回線エラー",
)
BUSY = ("SIP 486 Busy Here", "User busy", "Busy")
