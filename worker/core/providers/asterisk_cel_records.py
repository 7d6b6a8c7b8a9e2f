"""Asterisk CEL records as the importer and the gateway read them, before any mapping.

Two notations of the same record:

* a CSV line written by `cel_custom` with the legacy mapping that Asterisk ships
  (`configs/samples/cel_custom.conf.sample`): 20 quoted columns, in this order::

    eventtype, eventtime, CALLERID(name), CALLERID(num), CALLERID(ANI), CALLERID(RDNIS),
    CALLERID(DNID), CHANNEL(exten), CHANNEL(context), CHANNEL(channame), CHANNEL(appname),
    CHANNEL(appdata), CHANNEL(amaflags), CHANNEL(accountcode), CHANNEL(uniqueid),
    CHANNEL(linkedid), BRIDGEPEER, CHANNEL(userfield), userdeftype, eventextra

* one JSON object per line holding the AMI `CEL` event's fields (`EventName`, `EventTime`,
  `CallerIDnum`, ..., `UniqueID`, `LinkedID`, `Extra`); key case is ignored, since AMI-to-JSON
  bridges differ in it.

Parsing never raises: a line that is not a CEL record becomes an `Unmapped` saying why.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from worker.core.providers.base import MISSING_FIELD, NOT_PROVIDER_FORMAT, Unmapped

CSV_COLUMNS = (
    "eventtype",
    "eventtime",
    "cid_name",
    "cid_num",
    "cid_ani",
    "cid_rdnis",
    "cid_dnid",
    "exten",
    "context",
    "channame",
    "appname",
    "appdata",
    "amaflags",
    "accountcode",
    "uniqueid",
    "linkedid",
    "peer",
    "userfield",
    "userdeftype",
    "extra",
)
# AMI `CEL` event header -> the CSV column of the same value (lower-cased keys).
AMI_FIELDS = {
    "eventname": "eventtype",
    "eventtime": "eventtime",
    "calleridname": "cid_name",
    "calleridnum": "cid_num",
    "calleridani": "cid_ani",
    "calleridrdnis": "cid_rdnis",
    "calleriddnid": "cid_dnid",
    "exten": "exten",
    "context": "context",
    "channel": "channame",
    "application": "appname",
    "appdata": "appdata",
    "amaflags": "amaflags",
    "accountcode": "accountcode",
    "uniqueid": "uniqueid",
    "linkedid": "linkedid",
    "peer": "peer",
    "userfield": "userfield",
    "extra": "extra",
}
_REQUIRED = ("eventtype", "eventtime", "uniqueid", "linkedid")


@dataclass(frozen=True, slots=True)
class CelRecord:
    """One CEL record, every value as Asterisk wrote it (text; "" when empty)."""

    eventtype: str
    eventtime: str
    cid_name: str
    cid_num: str
    cid_ani: str
    cid_rdnis: str
    cid_dnid: str
    exten: str
    context: str
    channame: str
    appname: str
    appdata: str
    amaflags: str
    accountcode: str
    uniqueid: str
    linkedid: str
    peer: str
    userfield: str
    userdeftype: str
    extra: str


def _record(values: Mapping[str, str]) -> CelRecord | Unmapped:
    for name in _REQUIRED:
        if not values.get(name, "").strip():
            return Unmapped(MISSING_FIELD, f"CEL record without {name}", name)
    cleaned = {name: values.get(name, "").strip() for name in CSV_COLUMNS}
    return CelRecord(**cleaned)


def parse_csv_line(line: str) -> CelRecord | Unmapped:
    """One `cel_custom` CSV line (legacy 20-column mapping)."""
    rows = list(csv.reader(io.StringIO(line, newline="")))
    if len(rows) != 1:
        return Unmapped(NOT_PROVIDER_FORMAT, "expected exactly one cel_custom CSV record")
    return _from_row(rows[0])


def _from_row(row: list[str]) -> CelRecord | Unmapped:
    if len(row) != len(CSV_COLUMNS):
        return Unmapped(
            NOT_PROVIDER_FORMAT,
            f"a cel_custom record of the legacy mapping has {len(CSV_COLUMNS)} columns, "
            f"this line has {len(row)}",
        )
    return _record(dict(zip(CSV_COLUMNS, row, strict=True)))


def parse_ami_json_line(line: str) -> CelRecord | Unmapped:
    """One JSON object holding an AMI `CEL` event."""
    try:
        data: Any = orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        return Unmapped(NOT_PROVIDER_FORMAT, f"not JSON: {exc}")
    if not isinstance(data, dict):
        return Unmapped(NOT_PROVIDER_FORMAT, "an AMI CEL event must be a JSON object")
    lowered = {str(k).lower(): v for k, v in data.items()}
    event = lowered.get("event")
    if event is not None and str(event) != "CEL":
        return Unmapped(NOT_PROVIDER_FORMAT, f"AMI event {str(event)[:64]!r} is not CEL", "Event")
    if "eventname" not in lowered:
        return Unmapped(NOT_PROVIDER_FORMAT, "not an AMI CEL event: no EventName", "EventName")
    values: dict[str, str] = {}
    for key, column in AMI_FIELDS.items():
        value = lowered.get(key)
        if value is None:
            continue
        # Extra is a JSON object in the event; some bridges decode it: keep it as text.
        values[column] = value if isinstance(value, str) else orjson.dumps(value).decode()
    return _record(values)


def parse_line(line: str) -> CelRecord | Unmapped:
    """A line of either notation: JSON objects start with `{`, anything else is CSV."""
    if line.lstrip().startswith("{"):
        return parse_ami_json_line(line)
    return parse_csv_line(line)


def parse_text(text: str) -> Iterator[CelRecord | Unmapped]:
    """Every non-blank line of a CEL file or stream, in order. One record per line: that is
    how `cel_custom` and AMI bridges write them, and a broken line then costs one record, not
    the rest of the file."""
    for line in text.splitlines():
        if line.strip():
            yield parse_line(line)
