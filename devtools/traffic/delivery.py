"""When a call's messages reach Kafka: jitter, retried webhooks, bursts out of order, duplicates."""

from __future__ import annotations

import random

from devtools.traffic.call import Call
from devtools.traffic.messages import Message


class Delivery:
    """Arrival times of messages, from their event times."""

    def __init__(self, rng: random.Random, shuffle: bool, duplicate_share: float) -> None:
        self.rng = rng
        self.shuffle = shuffle  # False: a call's messages arrive in event order
        self.duplicate_share = duplicate_share

    def jitter(self) -> int:
        """Delay between an event and its message's arrival, in ms."""
        rng = self.rng
        if not self.shuffle:
            return int(rng.expovariate(1 / 150.0))
        j = int(rng.expovariate(1 / 1_500.0))
        if rng.random() < 0.03:
            j += rng.randint(5_000, 90_000)  # a webhook retried later
        return j

    def deliver(self, call: Call, valid: list[tuple[int, bytes]]) -> list[tuple[int, Message]]:
        """(arrival_ms, message) of the call's valid values, duplicates included (unordered)."""
        rng = self.rng
        key = call.call_id.encode("utf-8")
        out: list[tuple[int, Message]] = []
        for arrival, (_ms, value) in zip(self._arrivals(call, valid), valid, strict=True):
            msg = Message(key, value, call.call_id, True)
            out.append((arrival, msg))
            if rng.random() < self.duplicate_share:
                # the same bytes again: usually soon, sometimes minutes later
                delay = (
                    rng.randint(200, 30_000) if rng.random() < 0.9 else rng.randint(30_000, 600_000)
                )
                out.append((arrival + delay, msg))
        return out

    def _arrivals(self, call: Call, valid: list[tuple[int, bytes]]) -> list[int]:
        rng = self.rng
        arrivals = [ms + self.jitter() for ms, _ in valid]
        if self.shuffle and len(valid) > 2 and rng.random() < 0.2:
            self._shuffle_bursts(arrivals, [ms for ms, _ in valid], len(call.events))
        if not self.shuffle:
            for i in range(1, len(arrivals)):
                arrivals[i] = max(arrivals[i], arrivals[i - 1])
        return arrivals

    def _shuffle_bursts(self, arrivals: list[int], occurred: list[int], n_main: int) -> None:
        """The provider flushed bursts of this call's webhooks in no particular order:
        permute the arrival times of events less than 20 s apart (not the late ones)."""
        i = 0
        while i < n_main:
            j = i + 1
            while j < n_main and occurred[j] - occurred[i] < 20_000:
                j += 1
            if j - i > 1:
                window = arrivals[i:j]
                self.rng.shuffle(window)
                arrivals[i:j] = window
            i = j
