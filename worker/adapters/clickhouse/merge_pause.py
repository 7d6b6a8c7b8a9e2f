"""MERGES WAIT FOR THE BACKLOG: the embedded store's background merges are paused while the
worker catches up on a backlog, and resume at the backlog's end or when parts pile up.

Why: chDB runs its merges inside the worker's process, on the same two cores, while the
worker decodes and plans the next batch. `python -m benchmarks.ingest --events 200000` with
the merges stopped for the whole run, alternating with runs as shipped (2026-12-06, four
pairs): the worker's process 29.6-35.9 against 35.2-52.7 us of CPU per message, its event
loop's thread 17.5-22.5 against 20.3-28.5 (that thread waits on nothing the merges hold: they
slow it through the shared caches and memory), (b) 15-60% faster. The merges are not skipped,
only moved to the backlog's end, where they run in bulk (a merge of many parts rewrites each
row once, where a merge after every few inserts rewrites it again and again; not measured
here). This is RocksDB's "no compactions during a bulk load, then compact"
(`Options::PrepareForBulkLoad`), bounded:

- Paused only while the worker catches up: from a batch with another full batch behind it
  in the log to the batch that reaches the log end (`ConsumeLoop._behind`), said before each
  batch's inserts (`ClickHouseStore.backlog`). Live traffic, read to the log end at every
  fetch, merges as ClickHouse always does.
- A table never holds more than about MAX_PARTS active parts: every CHECK_EVERY batches
  behind, the parts are counted; at MAX_PARTS the merges resume until every table is back
  at DRAINED_PARTS, then pause again. ClickHouse delays inserts at 1000 parts in a partition
  (`parts_to_delay_insert`) and refuses them at 3000; queries (always FINAL) read every part.
- Merges are stopped per table (`SYSTEM STOP MERGES db.table`), only ringlog's. The switch
  lives in the engine's memory: a restart starts with merges running.

A ClickHouse server is never told to stop merging: its merges run on its own machines, and
other clients share it. `ringlog worker --processes N` writes through the supervisor's HTTP
front, i.e. as to a server: its workers do not pause the merges either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

log = logging.getLogger("ringlog.store")

MAX_PARTS = 150
"""Merges resume (while the worker is still behind) when a table has this many active parts:
about 150 batches, 2.7M events at the default batch size."""

DRAINED_PARTS = 30
"""...and pause again once every table is down to this many."""

CHECK_EVERY = 10
"""Batches behind between two counts of the parts (a query on `system.parts`, 1-3 ms)."""


class MergePause:
    """The switch of the embedded store's background merges for one set of tables.

    `run(sql)` runs a statement on the store; `most_parts()` counts the active parts of the
    fullest of those tables. Not thread-safe: the writer's thread calls it, once per batch.
    """

    def __init__(
        self,
        tables: Sequence[str],
        run: Callable[[str], object],
        most_parts: Callable[[], int],
    ) -> None:
        self._tables = list(tables)
        self._run = run
        self._most_parts = most_parts
        self.paused = False
        # Merges running although the worker is behind, until the parts are drained.
        self._draining = False
        self._batches_since_count = 0

    def behind(self, behind: bool) -> None:
        """The next batch's inserts are (`behind`) or are not part of a backlog."""
        if not behind:
            self._draining = False
            if self.paused:
                self._switch(pause=False, why="the worker caught up")
            return
        self._batches_since_count += 1
        counted = self._batches_since_count >= CHECK_EVERY
        if counted:
            self._batches_since_count = 0
        if self.paused:
            if counted and (parts := self._most_parts()) >= MAX_PARTS:
                self._draining = True
                self._switch(pause=False, why=f"a table has {parts} parts (limit {MAX_PARTS})")
        elif not self._draining:
            self._switch(pause=True, why="the worker is catching up on a backlog")
        elif counted and (parts := self._most_parts()) <= DRAINED_PARTS:
            self._draining = False
            self._switch(pause=True, why=f"parts merged down to {parts}")

    def _switch(self, *, pause: bool, why: str) -> None:
        verb = "STOP" if pause else "START"
        for table in self._tables:
            self._run(f"SYSTEM {verb} MERGES {table}")
        self.paused = pause
        log.info(
            "embedded store: background merges %s (%s)",
            "paused" if pause else "resumed",
            why,
            extra={"merges_paused": pause},
        )
