"""Fault injection for the fault tests and drills, as a wrapping adapter around the store.

`StoreDownWhileFileExists` wraps the pipeline's `Store` port: while the file exists every
insert and reload fails with `StoreUnavailable`, exactly as an unreachable ClickHouse would.
A file, not a flag in memory, so a test can take the store of a worker in another process
down and bring it back. The production store knows nothing of it: the worker runs it only
when started through `python -m devtools worker --store-down-while FILE`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from schemas.rows import TableName
from worker.pipeline.ports import CallEventRow, Store, StoreUnavailable


class StoreDownWhileFileExists:
    """A `Store` that is unavailable while `flag` exists, the wrapped store otherwise."""

    def __init__(self, store: Store, flag: Path) -> None:
        self._store = store
        self._flag = flag

    def _check(self, doing: str) -> None:
        if self._flag.exists():
            raise StoreUnavailable(
                f"{doing}: ClickHouse unavailable (injected fault: {self._flag})"
            )

    def insert(self, table: TableName, rows: Sequence[Mapping[str, object]]) -> None:
        self._check(f"inserting into {table}")
        self._store.insert(table, rows)

    def load_call_events(self, keys: Sequence[tuple[str, str]]) -> list[CallEventRow]:
        self._check("loading call events")
        return self._store.load_call_events(keys)
