"""Late and stray events for calls that left the cache (LRU eviction, restart).

With RINGLOG_CACHE_MAX_CALLS=3 and many calls, the early calls are evicted; their late events
(provider cost reports, a real end event, dial events, outbound ends) then arrive, some before
and some after a restart (a new worker: empty cache). Every call is reloaded from call_event,
and the rows must be exactly those of the call's full event set, as if nothing had ever been
evicted: every column but ingested_at, version and audit times included.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.support import builders as b
from tests.support.call_rows import by_call, expected_tables, read_tables
from tests.support.in_process_worker import Running, fresh_settings, produce, running_worker
from worker.service.settings import Settings

pytestmark = pytest.mark.kafka

CALLS = 12
Events = list[dict[str, Any]]


def call_events(i: int) -> tuple[str, Events, Events]:
    """(call id, initial events, late events) of call i; four shapes in turn."""
    call = f"ev-{i}"
    t0 = 10.0 * i
    d1, d2 = f"{call}-1", f"{call}-2"
    kind = i % 4
    if kind == 0:  # complete answered call; the provider's costs come late
        initial = [
            b.received(call, t0),
            b.dial_started(call, d1, t0 + 1, escalation_rule_order=1, repeat_count=0),
            b.dial("answered", call, d1, t0 + 4),
            b.dial("ended", call, d1, t0 + 70, outcome="completed"),
            b.ended(call, t0 + 71, "completed"),
        ]
        late = [
            b.cost(call, d1, t0 + 600, "4.2", billable_seconds=66),
            b.cost(call, call, t0 + 610, "1.25"),
        ]
    elif kind == 1:  # answered, still talking: the end events come late
        initial = [
            b.received(call, t0, routing="+442071838750"),
            b.dial_started(call, d1, t0 + 1, escalation_rule_order=1, repeat_count=0),
            b.dial("ringing", call, d1, t0 + 2),
            b.dial("answered", call, d1, t0 + 5),
        ]
        late = [
            b.dial("ended", call, d1, t0 + 125, outcome="completed", billable_seconds=119),
            b.ended(call, t0 + 126, "completed"),
        ]
    elif kind == 2:  # first attempt unanswered; the escalation's dial events come late
        initial = [
            b.received(call, t0),
            b.dial_started(call, d1, t0 + 1, escalation_rule_order=1, repeat_count=0),
            b.dial("ended", call, d1, t0 + 21, outcome="no_answer"),
        ]
        late = [
            b.dial_started(
                call,
                d2,
                t0 + 22,
                user=b.BOB,
                phone="+15550222",
                escalation_rule_order=2,
                repeat_count=0,
            ),
            b.dial("answered", call, d2, t0 + 30),
            b.dial("ended", call, d2, t0 + 95, outcome="completed"),
            b.ended(call, t0 + 96, "completed"),
            b.cost(call, d2, t0 + 700, "0.9"),
        ]
    else:  # outbound notification call: its end and cost come late
        initial = [
            b.event(
                "outbound_call.placed",
                call,
                t0,
                to_number="+4915550333",
                from_number="+15550100",
                call_data={"i": i},
            ),
            b.event("outbound_call.answered", call, t0 + 3),
        ]
        late = [
            b.event("outbound_call.ended", call, t0 + 50, status="Success"),
            b.cost(call, call, t0 + 650, "2.5", billable_seconds=47),
        ]
    return call, initial, late


async def one_call_per_batch(run: Running, settings: Settings, events: list[Events]) -> None:
    for group in events:
        await produce(settings, [b.encode(e) for e in group])
        await run.drained()


def test_late_events_of_evicted_calls_give_the_rows_of_the_full_event_set(
    kafka_bootstrap: str, chdb_store_url: str
) -> None:
    settings = fresh_settings(kafka_bootstrap, chdb_store_url, cache_max_calls=3)
    calls = [call_events(i) for i in range(CALLS)]
    keys = [(b.PROJECT, call) for call, _, _ in calls]

    async def scenario() -> dict[str, Any]:
        async with running_worker(settings) as run:
            cache = run.worker.preparer.cache
            await one_call_per_batch(run, settings, [initial for _, initial, _ in calls])
            assert len(cache) <= 3 and cache.evictions >= CALLS - 3
            assert not any(key in cache for key in keys[: CALLS - 3])
            # late events of calls 4..7 (evicted), one call per batch, so they evict each
            # other again on the way; duplicates of their first events ride along
            await one_call_per_batch(
                run,
                settings,
                [late + initial[:2] for _, initial, late in calls[4:8]],
            )
            assert len(cache) <= 3
        async with running_worker(settings) as run:  # restart: empty cache
            assert len(run.worker.preparer.cache) == 0
            # late events of calls 0..3 and 8..11 after the restart, all in one batch
            rest = [e for _, _, late in calls[:4] + calls[8:] for e in late]
            await produce(settings, [b.encode(e) for e in rest])
            await run.drained()
            # and a stray re-send of some early events (all duplicates by now)
            strays = [e for _, initial, _ in calls[:6] for e in initial[:1]]
            await produce(settings, [b.encode(e) for e in strays])
            await run.drained()
            return read_tables(run.worker.store)

    got = asyncio.run(scenario())
    everything = [e for _, initial, late in calls for e in initial + late]
    want = expected_tables(by_call(everything))
    for table in want:
        assert got[table] == want[table], table
    assert len(got["incoming_call_log"]) == 9 and len(got["call_log"]) == 3
    assert all(r["status"] == "Completed" for r in got["incoming_call_log"])
    assert {r["cost_source"] for r in got["call_log"]} == {"provider"}
