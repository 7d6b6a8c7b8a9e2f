"""The public generators: calls in start order, their messages merged in arrival order.

Memory stays bounded: a call's messages wait in a heap only until every message still to come
(of this call and the later ones) arrives after them.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from devtools.traffic.call import Call
from devtools.traffic.calls import CallSource
from devtools.traffic.clock import epoch_ms
from devtools.traffic.delivery import Delivery
from devtools.traffic.encoding import encode_call
from devtools.traffic.invalid import InvalidMessages
from devtools.traffic.messages import Message
from devtools.traffic.world import build_world

DEFAULT_START = datetime(2024, 5, 1, 8, 0, tzinfo=UTC)


class _Traffic:
    """One stream: the calls, and each call's messages (valid, duplicated and invalid)."""

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
        # one rng shared by every part, in a fixed call order: the output is a function of seed
        self.rng = random.Random(seed)
        self.calls = CallSource(
            self.rng, build_world(seed, projects), epoch_ms(start), calls_per_minute, open_share
        )
        self.delivery = Delivery(self.rng, shuffle_within_call, duplicate_share)
        # invalid per message sent, so that invalid_share is the share among all messages
        self.invalid_ratio = invalid_share / (1.0 - invalid_share)
        self.invalid = InvalidMessages(self.rng, oversized if invalid_share > 0 else 0)

    def messages_of(self, call: Call) -> list[tuple[int, Message]]:
        """The call's messages with their arrival times (unordered)."""
        rng = self.rng
        valid = encode_call(call, rng)
        out = self.delivery.deliver(call, valid)
        n_invalid = sum(1 for _ in range(len(out)) if rng.random() < self.invalid_ratio)
        last_ms = valid[-1][0]
        for _ in range(n_invalid):
            # sent at some moment of the call's life, like its valid events
            ms = call.start_ms + rng.randint(0, max(1, last_ms - call.start_ms))
            out.append((ms + self.delivery.jitter(), self.invalid.make(call, ms)))
        self.invalid.note_call(call.call_id)
        return out


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
    traffic = _Traffic(
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
    # (arrival_ms, insertion counter, message): the counter keeps equal arrivals stable
    heap: list[tuple[int, int, Message]] = []
    counter = 0
    calls = 0
    emitted = 0
    while (max_calls is None or calls < max_calls) and (
        max_messages is None or emitted + len(heap) < max_messages
    ):
        call = traffic.calls.next_call()
        calls += 1
        # every message of this and later calls arrives at or after the call's start
        while heap and heap[0][0] < call.start_ms:
            yield heapq.heappop(heap)[2]
            emitted += 1
        for arrival, msg in traffic.messages_of(call):
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
