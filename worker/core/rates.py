"""Rate plans: per direction and number prefix, how a call's talk time is billed.

A plan is a YAML list of entries with exactly the keys of `RateEntry` (see README, "Rate
plans"). Loading is the only I/O here; lookups and costing are pure (`worker.core.costing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

Direction = Literal["inbound", "outbound"]


def _decimal(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError("must be a number")
    return Decimal(str(value))


class RateEntry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: Direction
    prefix: Annotated[str, Field(pattern=r"^\d*$")]
    connect_fee_cents: Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0)]
    rate_cents_per_minute: Annotated[Decimal, BeforeValidator(_decimal), Field(ge=0)]
    initial_increment_seconds: Annotated[int, Field(ge=1, strict=True)]
    subsequent_increment_seconds: Annotated[int, Field(ge=1, strict=True)]


class RatePlanError(ValueError):
    """The rate plan file is missing or malformed; the message names the file and entry."""


@dataclass(frozen=True)
class RatePlan:
    entries: tuple[RateEntry, ...]
    name: str = "inline"

    def __post_init__(self) -> None:
        # Longest prefix first so lookup is the first match.
        table: dict[Direction, list[RateEntry]] = {"inbound": [], "outbound": []}
        for entry in self.entries:
            table[entry.direction].append(entry)
        for entries in table.values():
            entries.sort(key=lambda e: len(e.prefix), reverse=True)
        object.__setattr__(self, "_by_direction", table)

    def lookup(self, direction: Direction, number: str | None) -> RateEntry | None:
        """The entry with the longest prefix of the number's digits (without '+')."""
        if number is None:
            return None
        digits = number.lstrip("+")
        by_direction: dict[Direction, list[RateEntry]] = self._by_direction  # type: ignore[attr-defined]
        for entry in by_direction[direction]:
            if digits.startswith(entry.prefix):
                return entry
        return None


def parse_rate_plan(text: str, name: str = "inline") -> RatePlan:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RatePlanError(f"rate plan {name}: not valid YAML: {exc}") from None
    if not isinstance(data, list):
        raise RatePlanError(f"rate plan {name}: must be a YAML list of rate entries")
    entries = []
    seen: set[tuple[str, str]] = set()
    for index, item in enumerate(data):
        try:
            entry = RateEntry.model_validate(item)
        except ValidationError as exc:
            first = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in first["loc"]) or "entry"
            raise RatePlanError(
                f"rate plan {name}: entry {index} ({where}): {first['msg']}"
            ) from None
        if (entry.direction, entry.prefix) in seen:
            raise RatePlanError(
                f"rate plan {name}: entry {index}: duplicate {entry.direction} prefix "
                f"{entry.prefix!r}"
            )
        seen.add((entry.direction, entry.prefix))
        entries.append(entry)
    return RatePlan(tuple(entries), name)


def load_rate_plan(path: Path | None) -> RatePlan:
    """Load a plan file, or the shipped default plan when `path` is None."""
    if path is None:
        text = resources.files("worker.core").joinpath("rate_plans/default.yaml").read_text("utf-8")
        return parse_rate_plan(text, "default")
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise RatePlanError(
            f"RINGLOG_RATES_FILE: cannot read rate plan {path}: {exc.strerror}"
        ) from None
    return parse_rate_plan(text, str(path))
