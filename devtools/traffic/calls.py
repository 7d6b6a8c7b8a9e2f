"""Where calls come from: a Poisson process of call starts, each played out by its scenario."""

from __future__ import annotations

import random

from devtools.traffic.call import Call
from devtools.traffic.cdr import record_cdr
from devtools.traffic.clock import OFFSETS, Clock
from devtools.traffic.incoming import play_incoming
from devtools.traffic.outbound import play_outbound
from devtools.traffic.values import digit_id, hex_id
from devtools.traffic.world import Project


class CallSource:
    """Starts calls in time order and fills in their events."""

    def __init__(
        self,
        rng: random.Random,
        world: tuple[Project, ...],
        start_ms: int,
        calls_per_minute: float,
        open_share: float,
    ) -> None:
        self.rng = rng
        self.world = world
        self.t_ms = start_ms  # start of the latest call
        self.mean_gap_ms = 60_000.0 / calls_per_minute
        self.open_share = open_share
        self.call_ids: set[str] = set()  # ids are never reused within one stream

    def next_call(self) -> Call:
        rng = self.rng
        self.t_ms += max(1, int(rng.expovariate(1.0 / self.mean_gap_ms)))
        # the 55 / 30 / 10 mix of incoming, outbound and CDR calls, scaled to sum to 1
        r = rng.random()
        kind = "incoming" if r < 0.55 / 0.95 else ("outbound" if r < 0.85 / 0.95 else "cdr")
        if kind == "incoming":
            source: str | None = rng.choice(("twilio", "twilio", "asterisk", "oncall-router"))
        elif kind == "outbound":
            source = rng.choice(("twilio", "twilio", "oncall-router"))
        else:
            source = rng.choice(("portsip", "portsip", "portsip", "asterisk"))
        clock = Clock(rng.choice(OFFSETS), rng.random() < 0.6, rng.random() < 0.08)
        call = Call(
            self._call_id(source, kind),
            rng.choice(self.world),
            source if rng.random() < 0.9 else None,  # `source` is optional in the contract
            clock,
            kind,
            self.t_ms,
        )
        if kind == "incoming":
            play_incoming(call, rng, self.open_share)
        elif kind == "outbound":
            play_outbound(call, rng, self.open_share)
        else:
            record_cdr(call, rng)
        return call

    def _call_id(self, source: str | None, kind: str) -> str:
        """A new call id in the provider's own format."""
        rng = self.rng
        while True:
            if source == "twilio":
                cid = "CA" + hex_id(rng, 32)
            elif source == "asterisk":
                cid = f"{self.t_ms // 1000}.{rng.randrange(1, 99999)}"
            elif kind == "cdr" or source == "portsip":
                cid = digit_id(rng, 12).lstrip("0") or "1"
            else:
                cid = "call_" + hex_id(rng, 20)
            if cid not in self.call_ids:
                self.call_ids.add(cid)
                return cid
