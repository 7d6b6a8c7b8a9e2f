"""Batch planning, pure: one batch of records, the cached calls, the events reloaded for the
uncached ones and the time in; a `Plan` out: everything that must be made durable, in order,
before the batch's offsets may be committed.

Two steps, because loading uncached calls is I/O and the planner does none:

1. `BatchPlanner.decode(records)` validates every record and says which calls are not cached
   (`Decoded.missing`): their earlier events must be reloaded from `call_event`.
2. `BatchPlanner.plan(decoded, reloaded, ingested_at)` merges the batch into the calls'
   event sets, rebuilds the rows of every call whose set changed (and of calls that the
   timeout closes), and turns invalid records into dead-letter envelopes and rejected rows.

PLANNED AHEAD: step 2 is itself two, so that the plan is made while the reload runs rather
than after it. `plan_ahead(decoded, ingested_at)` plans the batch taking every uncached call
as new, which a running worker's uncached calls nearly all are (its calls stay cached until
evicted; only a restart, a rebalance or an eviction sends a call with stored events back to
`call_event`); `complete(ahead, reloaded)` then plans again, from its stored events, each
call the reload did find events of. `plan`, given the stored events already, merges them
first and plans each call once: the same plan either way.

The pipeline does the I/O between the two steps (`worker.pipeline.batch_preparer`) and after
them (`worker.pipeline.plan_writer`).
"""

from __future__ import annotations

import base64
import logging
from collections import Counter, defaultdict
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson

from schemas.rows import RejectedEventRow, TableName
from worker.core.call_event_rows import CallEventRows
from worker.core.call_state import BatchItem, CallCache, CallKey, CallState, MergeTally
from worker.core.correlation import Row, rows_of_distinct
from worker.core.decode import (
    Rejection,
    ValidEvent,
    decode_record,
    decode_refused,
    decode_stored,
)
from worker.core.event_pack import project_pool, shared_project_id
from worker.core.native_fast_path import VALIDATOR as NATIVE
from worker.core.rates import RatePlan
from worker.core.record import Record as Record

log = logging.getLogger("ringlog.plan")

# The timeout close walks the whole cache, so it runs once per minute of event time, not per
# batch; a close is at most a minute (event time) late, and its rows do not depend on when it
# ran (ended_at is the call's last event).
SCAN_EVERY = timedelta(minutes=1)


StoredEvent = tuple[str, str, str]
"""(project_id, call_id, payload JSON) of an event read back from `call_event`."""

ByCall = dict[CallKey, list[BatchItem]]
"""A batch's valid events by call, in arrival order, each with its record and its call_event
row in RowBinary (None: encode it from the event)."""


@dataclass
class Decoded:
    """A batch after validation: valid events by call (in arrival order, each with its
    call_event row in RowBinary if the decoder wrote it) and rejections."""

    records: int
    by_call: ByCall
    rejected: list[tuple[Record, Rejection]]
    # Calls the cache does not hold: reload their stored events before `plan`.
    missing: list[CallKey]


@dataclass
class Plan:
    """What `PlanWriter.start` and `finish` make durable, in this order, before the commit:
    dead letters (DLQ topic), `rejected_rows` (rejected_event), `event_rows` (call_event), then
    `tables`."""

    records: int
    ingested_at: datetime
    event_rows: CallEventRows
    dead_letter_records: list[tuple[bytes | None, bytes]] = field(default_factory=list)
    rejected_rows: list[RejectedEventRow] = field(default_factory=list)
    tables: dict[TableName, list[Row]] = field(default_factory=lambda: defaultdict(list))
    # Calls of this batch: kept in the cache until the plan is durable.
    keys: set[CallKey] = field(default_factory=set)
    # (event type, written|duplicate) -> count; (dead-letter code) -> count
    counts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    dead_letter_codes: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    duplicates: int = 0
    calls_changed: int = 0
    max_event_time: datetime | None = None
    stored_events_skipped: int = 0  # reloaded payloads that no longer validate

    def bulk(self) -> list[list[Any]]:
        """The plan's large lists (its call_event items with their records and events, its
        rows, its dead letters), for a caller that frees a durable plan a slice at a time."""
        return [
            self.event_rows.items,
            *self.tables.values(),
            self.rejected_rows,
            self.dead_letter_records,
        ]


@dataclass
class Ahead:
    """A plan made before its batch's reload (`BatchPlanner.plan_ahead`), every uncached call
    taken as new; `BatchPlanner.complete` turns it into the batch's plan."""

    plan: Plan
    decoded: Decoded
    # The rows each uncached call added to `plan.tables` (the same objects): a call the
    # reload finds stored events of takes them back.
    rows: dict[CallKey, list[Row]]


class BatchPlanner:
    """Holds the correlation state (the call cache and the event-time watermark) and plans
    batches against it. Deterministic: the same records, reloads and time give the same plan.
    """

    def __init__(self, rates: RatePlan, call_timeout: timedelta, cache_max_calls: int) -> None:
        self.rates = rates
        self.call_timeout = call_timeout
        self.cache = CallCache(cache_max_calls)
        # The newest event time seen: the clock of the timeout close.
        self.watermark: datetime | None = None
        self._awake: set[CallKey] = set()  # calls the latest batch left unpacked
        self._last_scan: datetime | None = None

    def decode(self, records: Sequence[Record]) -> Decoded:
        by_call, rejected = decode_batch(records)
        missing = [key for key in by_call if key not in self.cache]
        return Decoded(len(records), by_call, rejected, missing)

    def plan(
        self,
        decoded: Decoded,
        reloaded: Iterable[StoredEvent],
        ingested_at: datetime,
        keep: set[CallKey] | None = None,
    ) -> Plan:
        """Merge the batch, rebuild rows, dead-letter the invalid records.

        `reloaded` holds the stored events of `decoded.missing` (duplicates allowed); `keep`
        names calls that must stay cached (those of the batch still being written).
        """
        return self._plan(decoded, ingested_at, keep, reloaded).plan

    def plan_ahead(
        self, decoded: Decoded, ingested_at: datetime, keep: set[CallKey] | None = None
    ) -> Ahead:
        """`plan` before the reload of `decoded.missing`, each of those calls taken as new
        (PLANNED AHEAD); `complete` makes it the batch's plan."""
        return self._plan(decoded, ingested_at, keep, reloaded=None)

    def _plan(
        self,
        decoded: Decoded,
        ingested_at: datetime,
        keep: set[CallKey] | None,
        reloaded: Iterable[StoredEvent] | None,
    ) -> Ahead:
        """`plan` with the stored events of the uncached calls (`reloaded`), or `plan_ahead`
        without them (None)."""
        plan = Plan(decoded.records, ingested_at, CallEventRows(ingested_at))
        # Every envelope of the batch carries the same rejected_at: formatted once.
        rejected_at = _envelope_time(ingested_at)
        for record, rejection in decoded.rejected:
            self._dead_letter(record, rejection, plan, rejected_at)
        missing = frozenset(decoded.missing)  # for lookups: a batch can miss thousands
        for key in decoded.missing:
            self.cache.put(key, CallState(partition=decoded.by_call[key][0][0].partition))
        if reloaded is not None:
            for key, events in self._stored(missing, reloaded, plan).items():
                state = self.cache.peek(key)
                assert state is not None  # cached just above
                for event in events:
                    state.merge(event, key)
        ahead = Ahead(plan, decoded, {})

        changed: list[CallKey] = []
        # Per event only what must be per event (the merge, in CallState.merge_items); the
        # counts and the newest event time are folded once per batch below.
        tally = MergeTally()
        for key, items in decoded.by_call.items():
            state = self.cache.get(key)
            if state is None:
                continue  # forgotten by a rebalance meanwhile: the caller discards this plan
            # Calls reloaded from call_event are rebuilt even when every event of this batch
            # is already stored: a worker that died (or abandoned a batch) between its
            # call_event insert and its row inserts left those events durable but their rows
            # unwritten, and the replay would otherwise find only duplicates and write nothing.
            if state.merge_items(items, key, tally) or key in missing:
                changed.append(key)
                # Rebuilt right after its merge, while the call's events are still in the
                # CPU's caches (the rows read the values the merge just touched); a rebuild
                # without `now` does not depend on the other calls or the watermark.
                rows = self._rebuild(key, plan.tables, ingested_at, now=None, state=state)
                if key in missing:
                    ahead.rows[key] = rows
        plan.event_rows.extend(tally.new_rows)
        for name, count in Counter(tally.written).items():
            plan.counts[(name, "written")] += count
        for name, count in Counter(tally.duplicate).items():
            plan.counts[(name, "duplicate")] += count
        plan.duplicates = len(tally.duplicate)
        if tally.times:
            plan.max_event_time = max(tally.times)
            if self.watermark is None or plan.max_event_time > self.watermark:
                self.watermark = plan.max_event_time

        # Timeout close (DESIGN.md section 3): open cached calls that have been silent for
        # the call timeout (event time) are closed at their last event.
        for key in self._timed_out_calls(exclude=set(changed)):
            self._rebuild(key, plan.tables, ingested_at, now=self.watermark)
            if key not in decoded.by_call:
                self._rest({key})
        plan.keys = set(decoded.by_call)
        # The calls of this batch stay unpacked (CallState.pack) until a batch or an idle
        # moment passes without them: an active call's next events tend to come in the next
        # batch, which then neither unpacks nor packs it again.
        self._rest(self._awake - plan.keys)
        self._awake = plan.keys
        plan.calls_changed = len(changed)
        self.cache.evict_overflow(keep=plan.keys | (keep or set()))
        return ahead

    def complete(self, ahead: Ahead, reloaded: Iterable[StoredEvent]) -> Plan:
        """The batch's plan from `ahead` and the stored events of its uncached calls
        (`reloaded`, duplicates allowed): each call with stored events is planned again from
        them and the batch's events, as if it had been cached with them all along."""
        plan = ahead.plan
        stored = self._stored(ahead.rows.keys(), reloaded, plan)
        if stored:
            self._take_back(ahead, stored)
            for key, events in stored.items():
                self._plan_again(plan, key, ahead.decoded.by_call[key], events)
        return plan

    def _stored(
        self, keys: Container[CallKey], reloaded: Iterable[StoredEvent], plan: Plan
    ) -> dict[CallKey, list[ValidEvent]]:
        """The stored events of the calls `keys` that are still cached, by call; a payload
        that no longer validates is logged and counted in `plan.stored_events_skipped`."""
        stored = defaultdict[CallKey, list[ValidEvent]](list)
        for project_id, call_id, payload in reloaded:
            key = (project_id, call_id)
            if key not in keys or self.cache.peek(key) is None:
                continue  # not uncached in this batch, or forgotten by a rebalance meanwhile
            event = decode_stored(payload, call_id)  # valid when written, same contract
            if isinstance(event, Rejection):
                log.error("stored event no longer validates: %s", event.message)
                plan.stored_events_skipped += 1
                continue
            stored[key].append(event)
        return stored

    def _take_back(self, ahead: Ahead, keys: Iterable[CallKey]) -> None:
        """Take back what `plan_ahead` counted and wrote for the calls `keys` as new ones:
        their counts, call_event rows and rows, in one pass over the plan's lists (a restart's
        first batch takes back nearly every call: one pass per call was quadratic, 11.7 s for
        a batch of 2k calls)."""
        plan = ahead.plan
        items_gone: set[int] = set()
        rows_gone: set[int] = set()
        for key in keys:
            items = ahead.decoded.by_call[key]
            # The merge is deterministic: the batch's items into an empty call again give
            # what plan_ahead counted for this call.
            taken = MergeTally()
            CallState(partition=items[0][0].partition).merge_items(items, key, taken)
            _count(plan, taken, -1)
            items_gone.update(id(item) for item in taken.new_rows)
            rows_gone.update(id(row) for row in ahead.rows.pop(key))
        if items_gone:
            plan.event_rows.items[:] = [
                it for it in plan.event_rows.items if id(it) not in items_gone
            ]
        for rows in plan.tables.values():
            rows[:] = [row for row in rows if id(row) not in rows_gone]

    def _plan_again(
        self, plan: Plan, key: CallKey, items: list[BatchItem], events: list[ValidEvent]
    ) -> None:
        """Plan the call `key` (its batch `items`, taken back) again with its stored `events`."""
        state = self.cache.peek(key)
        if state is None:
            return
        state.forget_events()
        for event in events:
            state.merge(event, key)
        tally = MergeTally()
        state.merge_items(items, key, tally)
        _count(plan, tally, 1)
        plan.event_rows.extend(tally.new_rows)
        self._rebuild(key, plan.tables, plan.ingested_at, now=None, state=state)

    def rest(self) -> int:
        """Pack every call a batch left unpacked (the pipeline calls it when idle)."""
        count = len(self._awake)
        self._rest(self._awake)
        self._awake = set()
        return count

    def forget_partitions(self, partitions: set[int]) -> int:
        """Drop the calls of partitions this worker no longer owns (or must re-read)."""
        return self.cache.drop_partitions(partitions)

    # -- steps ------------------------------------------------------------------------------

    def _rebuild(
        self,
        key: CallKey,
        tables: dict[TableName, list[Row]],
        ingested_at: datetime,
        now: datetime | None,
        state: CallState | None = None,
    ) -> list[Row]:
        """Rebuild the rows of the call `key` (its `state` if the caller holds it) into
        `tables`, stamped `ingested_at`; the rows added."""
        state = state if state is not None else self.cache.get(key)
        if state is None:
            return []
        # The state holds one event per event_id (CallState.merge keeps the larger digest).
        events = state.valid_events()
        rows = rows_of_distinct(events, self.rates, now=now, timeout=self.call_timeout)
        state.settle()
        self.cache.set_open(state, rows.open)
        state.last_event_at = rows.last_event_at
        if now is not None:
            state.timeout_closed = True
        elif rows.open:
            state.timeout_closed = False
        added: list[Row] = []
        for table, table_rows in rows.tables().items():
            for table_row in table_rows:  # stamped while the rows are fresh in the caches
                table_row["ingested_at"] = ingested_at
            tables[table].extend(table_rows)
            added.extend(table_rows)
        return added

    def _rest(self, keys: Iterable[CallKey]) -> None:
        for key in keys:
            state = self.cache.peek(key)
            if state is not None:
                state.pack()

    def _timed_out_calls(self, exclude: set[CallKey]) -> list[CallKey]:
        if self.watermark is None:
            return []
        if self._last_scan is not None and self.watermark - self._last_scan < SCAN_EVERY:
            return []
        self._last_scan = self.watermark
        deadline = self.watermark - self.call_timeout
        return [
            key
            for key, state in self.cache.items()
            if state.open
            and not state.timeout_closed
            and key not in exclude
            and state.last_event_at is not None
            and state.last_event_at <= deadline
        ]

    def _dead_letter(
        self, record: Record, rejection: Rejection, plan: Plan, rejected_at_text: str | None = None
    ) -> None:
        """The DLQ envelope of DESIGN.md section 2 and the rejected_event row (`rejected_at_text`:
        the envelope's time, plan.ingested_at's text if not given)."""
        raw = record.value if record.value is not None else b""
        payload, encoding = _payload_text(raw)
        key_text = record.key.decode("utf-8", "replace") if record.key is not None else None
        rejected_at = plan.ingested_at
        envelope = {
            "error": {
                "code": rejection.code,
                "message": rejection.message,
                "field": rejection.field,
            },
            "source": {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": key_text,
            },
            "payload": payload,
            "payload_encoding": encoding,
            "rejected_at": rejected_at_text or _envelope_time(rejected_at),
        }
        plan.dead_letter_records.append((record.key, orjson.dumps(envelope)))
        plan.rejected_rows.append(
            {
                "topic": record.topic,
                "partition": record.partition,
                "offset": record.offset,
                "key": key_text,
                "error_code": rejection.code,
                "error_message": rejection.message,
                "error_field": rejection.field,
                "payload": payload,
                "rejected_at": rejected_at,
                "version": 1,
            }
        )
        plan.dead_letter_codes[rejection.code] += 1


def decode_batch(records: Sequence[Record]) -> tuple[ByCall, list[tuple[Record, Rejection]]]:
    """Every record decoded: the valid events by call (in arrival order, each with its
    record and its call_event row in RowBinary if the decoder wrote it) and the rejections.
    `ringlog_native` runs the loop when it is installed (`decode_batch_python` is the
    reference it is held to: tests/unit/core/test_native_decode_batch.py)."""
    if NATIVE is not None:
        projects, pool_max = project_pool()
        found = NATIVE.decode_batch(records, decode_refused, projects, pool_max)
        if found is not None:
            return found
    return decode_batch_python(records)


def decode_batch_python(
    records: Sequence[Record],
) -> tuple[ByCall, list[tuple[Record, Rejection]]]:
    """`decode_batch` in Python."""
    by_call: ByCall = {}
    rejected: list[tuple[Record, Rejection]] = []
    # A message delivered twice in one batch (a producer's retry) is decoded once: the same
    # key and bytes give the same result. The repeat's row is never written (it is a
    # duplicate), and would be encoded from the event if it were.
    seen: dict[tuple[bytes | None, bytes], ValidEvent | Rejection] = {}
    for record in records:
        message = (record.key, record.value if record.value is not None else b"")
        decoded = seen.get(message)
        row = None
        if decoded is None:
            decoded, row = decode_record(record)
            seen[message] = decoded
        if isinstance(decoded, ValidEvent):
            e = decoded.event
            key = (shared_project_id(e.project_id), e.call_id)
            by_call.setdefault(key, []).append((record, decoded, row))
        else:
            rejected.append((record, decoded))
    return by_call, rejected


def _count(plan: Plan, tally: MergeTally, sign: int) -> None:
    """Add (`sign` 1) or take back (-1) `tally`'s written and duplicate events in `plan`'s
    counts; a count that falls to 0 is dropped, as if it had never been counted."""
    for outcome, names in (("written", tally.written), ("duplicate", tally.duplicate)):
        for name, count in Counter(names).items():
            plan.counts[(name, outcome)] += sign * count
            if not plan.counts[(name, outcome)]:
                del plan.counts[(name, outcome)]
    plan.duplicates += sign * len(tally.duplicate)


def _envelope_time(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _payload_text(raw: bytes) -> tuple[str, str]:
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"
