"""MERGES WAIT FOR THE BACKLOG: the embedded store's merge switch, statement by statement."""

from __future__ import annotations

import pytest

from worker.adapters.clickhouse.merge_pause import (
    CHECK_EVERY,
    DRAINED_PARTS,
    MAX_PARTS,
    MergePause,
)

TABLES = ["`db`.`a`", "`db`.`b`"]
STOP = ["SYSTEM STOP MERGES `db`.`a`", "SYSTEM STOP MERGES `db`.`b`"]
START = ["SYSTEM START MERGES `db`.`a`", "SYSTEM START MERGES `db`.`b`"]


class Switch:
    """A MergePause over a list of the statements it ran and a settable parts count."""

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.parts = 0
        self.counts = 0
        self.pause = MergePause(TABLES, self.ran.append, self._most_parts)

    def _most_parts(self) -> int:
        self.counts += 1
        return self.parts

    def hints(self, *behind: bool) -> list[str]:
        """The statements run for these hints, in order."""
        self.ran.clear()
        for one in behind:
            self.pause.behind(one)
        return list(self.ran)


def test_merges_pause_while_behind_and_resume_when_caught_up() -> None:
    switch = Switch()
    assert switch.hints(False) == []  # merges run as ClickHouse runs them
    assert switch.hints(True) == STOP
    assert switch.pause.paused
    assert switch.hints(True, True, True) == []
    assert switch.hints(False) == START
    assert not switch.pause.paused
    assert switch.hints(False, False) == []
    assert switch.hints(True) == STOP


def test_parts_are_counted_every_few_batches_and_bound_the_pause() -> None:
    """Behind for long, merges resume when a table reaches MAX_PARTS and pause again once
    every table is down to DRAINED_PARTS; the parts are counted every CHECK_EVERY batches."""
    switch = Switch()
    switch.parts = MAX_PARTS - 1
    assert switch.hints(*[True] * CHECK_EVERY) == STOP  # counted once, below the bound
    assert switch.counts == 1
    switch.parts = MAX_PARTS
    assert switch.hints(*[True] * (CHECK_EVERY - 1)) == []  # not counted yet
    assert switch.counts == 1
    assert switch.hints(True) == START
    assert switch.counts == 2 and not switch.pause.paused
    switch.parts = DRAINED_PARTS + 1
    assert switch.hints(*[True] * CHECK_EVERY) == []  # still draining
    switch.parts = DRAINED_PARTS
    assert switch.hints(*[True] * CHECK_EVERY) == STOP
    assert switch.pause.paused and switch.counts == 4


def test_catching_up_ends_a_drain() -> None:
    """Merges resumed for the parts stay on when the worker catches up, and the next backlog
    pauses them at once, without waiting for a count."""
    switch = Switch()
    switch.parts = MAX_PARTS
    assert switch.hints(*[True] * CHECK_EVERY) == STOP + START
    assert switch.hints(False) == []
    switch.parts = 0
    assert switch.hints(True) == STOP


def test_a_failed_switch_is_tried_again_at_the_next_batch() -> None:
    """A statement that raised leaves the switch as it was: the next hint runs it again."""
    ran: list[str] = []
    failing = True

    def run(sql: str) -> None:
        if failing:
            raise ConnectionError("store down")
        ran.append(sql)

    pause = MergePause(TABLES, run, lambda: 0)
    with pytest.raises(ConnectionError):
        pause.behind(True)
    assert not pause.paused
    failing = False
    pause.behind(True)
    assert ran == STOP and pause.paused
