"""The generator's incoming calls as Asterisk CEL records, the CSV lines `cel_custom` writes
with its shipped 20-column mapping (docs/providers/asterisk.md), for `ringlog import
asterisk-cel FILE`.

A call is a `linkedid`: the inbound trunk channel (CHAN_START, ANSWER when a user answered,
HANGUP with the Dial result `dialstatus`, CHAN_END, LINKEDID_END) and one dialled PJSIP
channel per dial (CHAN_START, ANSWER, HANGUP with its Q.850 `hangupcause`, CHAN_END). A
user's endpoint is `PJSIP/<number without +>` (the routing file's `phones` and `users`).
Times are epoch seconds with µs.

Not expressible (skipped): outbound calls (CEL has no direction: an originated call reads as
an incoming one), PBX CDR calls, calls left open (the importer reads finished files), a dial
answered without an answer time (CEL's ANSWER record is the answer). No escalation rule
ids: Asterisk does not know ringlog's rules.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

import orjson

from devtools.traffic.call import Call
from devtools.traffic.native.config import asterisk_endpoint
from devtools.traffic.native.model import (
    Encoded,
    closed_incoming_problem,
    encodable,
    incoming_of,
)

_DIALSTATUS = {
    "completed": "ANSWER",
    "no_answer": "NOANSWER",
    "busy": "BUSY",
    "failed": "CHANUNAVAIL",
    "caller_hung_up": "CANCEL",
}
# A dialled leg's Q.850 cause: 16 before an answer is the caller's side cancelling.
_HANGUPCAUSE = {"completed": 16, "no_answer": 19, "busy": 17, "failed": 38, "canceled": 16}


class _Channels:
    """Asterisk's uniqueids: `<epoch>.<n>`, n counting every channel the PBX created."""

    def __init__(self) -> None:
        self.n = 0

    def next(self, ms: int) -> tuple[str, str]:
        self.n += 1
        return f"{ms // 1000}.{self.n}", f"{self.n:08x}"


def _problem(call: Call) -> str | None:
    return closed_incoming_problem(call, "CEL carries no direction")


def encode(calls: Iterable[Call]) -> Encoded:
    out = Encoded()
    channels = _Channels()
    for call in encodable(calls, out, _problem):
        incoming = incoming_of(call)
        linkedid, suffix = channels.next(incoming.start_ms)
        out.renamed[call.call_id] = linkedid
        trunk = _Record(linkedid, linkedid, f"PJSIP/trunk-{suffix}", incoming.caller)
        trunk.dnid = trunk.exten = incoming.routing
        trunk.context = "from-trunk"
        records = [(incoming.start_ms, trunk.line("CHAN_START", incoming.start_ms))]
        answered = incoming.answered
        for dial in incoming.dials:
            uniqueid, suffix = channels.next(dial.started_ms)
            out.renamed[dial.dial_id] = uniqueid
            channel = f"{asterisk_endpoint(dial.phone)}-{suffix}"
            leg = _Record(uniqueid, linkedid, channel, incoming.caller)
            leg.app, leg.appdata = "AppDial", "(Outgoing Line)"
            assert dial.ended_ms is not None and dial.outcome is not None
            records.append((dial.started_ms, leg.line("CHAN_START", dial.started_ms)))
            if dial.answered_ms is not None:
                records.append((dial.answered_ms, leg.line("ANSWER", dial.answered_ms)))
            extra = {
                "hangupcause": _HANGUPCAUSE[dial.outcome],
                "hangupsource": channel if dial.outcome == "completed" else "",
                "dialstatus": "",
            }
            records.append((dial.ended_ms, leg.line("HANGUP", dial.ended_ms, extra)))
            records.append((dial.ended_ms, leg.line("CHAN_END", dial.ended_ms + 1)))
        if answered is not None and answered.answered_ms is not None:
            at = answered.answered_ms + 1
            records.append((at, trunk.line("ANSWER", at)))
        assert incoming.end_ms is not None and incoming.outcome is not None
        end = incoming.end_ms
        extra = {"hangupcause": 16, "hangupsource": "", "dialstatus": _DIALSTATUS[incoming.outcome]}
        records.append((end, trunk.line("HANGUP", end, extra)))
        records.append((end, trunk.line("CHAN_END", end + 1)))
        records.append((end, trunk.line("LINKEDID_END", end + 2)))
        # the order Asterisk writes them in: by time (ties keep the order above)
        out.lines.extend(line for _, line in sorted(records, key=lambda r: r[0]))
    return out


class _Record:
    """One channel's fields in cel_custom's column order."""

    def __init__(self, uniqueid: str, linkedid: str, channel: str, caller: str) -> None:
        self.uniqueid, self.linkedid, self.channel, self.caller = (
            uniqueid,
            linkedid,
            channel,
            caller,
        )
        self.dnid = ""
        self.exten = "s"
        self.context = "from-internal"
        self.app = self.appdata = ""

    def line(self, eventtype: str, ms: int, extra: dict[str, Any] | None = None) -> str:
        columns = [
            eventtype,
            f"{ms // 1000}.{ms % 1000:03d}000",
            "Caller",
            self.caller,
            "",
            "",
            self.dnid,
            self.exten,
            self.context,
            self.channel,
            self.app,
            self.appdata,
            "3",
            "",
            self.uniqueid,
            self.linkedid,
            "",
            "",
            "",
            orjson.dumps(extra).decode() if extra is not None else "",
        ]
        text = io.StringIO()
        csv.writer(text, quoting=csv.QUOTE_ALL, lineterminator="").writerow(columns)
        return text.getvalue()
