"""What every provider normalizer takes and returns.

A normalizer is a pure function `(payload, context) -> Normalized`:

* `events` are canonical events (DESIGN.md section 2) as JSON-ready dicts: times as RFC 3339
  strings with an offset, money as decimal strings, `source` the provider's name, `call_id`
  the provider's parent-call id (so every leg of a call lands on one partition). Their
  `event_id`s are derived from the provider's own ids and sequence numbers (`event_id`), never
  random, so a provider's retry or a re-import yields the same ids and changes nothing.
* `unmapped` says what could not be mapped and why: the gateway dead-letters the original
  payload with that reason (DLQ topic), it never guesses. A payload can yield both: the
  events it could map, and the parts it could not.

Where a provider's model does not map one-to-one (an Asterisk CONGESTION, a PortSIP `fail`,
Twilio's negative price strings, FreeSWITCH µs epochs and "0" for never), the choice is
written in the provider's table in docs/providers/<provider>.md.

`checked` is the last step of every normalizer: each event it built is validated with the
worker's own decoder, and one the worker would dead-letter becomes an `Unmapped` here, so a
gateway never produces an event that the worker rejects.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final

from worker.core.decode import Rejection, validate_object

# Deterministic ids for what ringlog must name but the provider does not (event ids, the user
# behind an extension nobody mapped): uuid5 under this namespace.
PROVIDER_NAMESPACE: Final = uuid.UUID("0f3b7a52-9c1e-5d44-8a6b-2e71c9d0a4f3")

# Codes of `Unmapped` (the `error.code` of the dead letter).
NOT_PROVIDER_FORMAT: Final = "not_provider_format"  # not this provider's payload at all
MISSING_FIELD: Final = "missing_field"  # a field the mapping needs is absent
INVALID_FIELD: Final = "invalid_field"  # present but unusable (bad time, bad number)
UNMAPPED_VALUE: Final = "unmapped_value"  # a status/cause the mapping table does not cover
UNKNOWN_EVENT: Final = "unknown_event"  # an event name ringlog does not use

# The contract's E.164 (DESIGN.md section 2): "+" and 2-15 digits.
# ASCII digits only (\d would take other scripts' digits), matched whole (fullmatch).
E164_PATTERN: Final = re.compile(r"\+[1-9][0-9]{1,14}")


@dataclass(frozen=True)
class ProviderContext:
    """What the gateway or importer knows that the payload does not.

    `project_id`: the ringlog project of this traffic. `policy_for_number` maps the called
    (routing) number, E.164, to an incoming call policy id; `default_policy_id` is used when
    the number is not listed (None: such a call cannot be mapped, it is dead-lettered).
    `user_for_endpoint` maps a dialled number or extension to a ringlog user id; an endpoint not
    listed gets `derived_user_id(project_id, endpoint)`, stable for that endpoint.
    `phone_for_endpoint` maps what a PBX writes where the contract needs E.164 (an extension,
    a national-format DID, a device endpoint such as `PJSIP/alice`) to its E.164 number: PBXs
    rarely write E.164 and a prefix rule would be a guess. `time_zone` is the zone of provider
    timestamps written without an offset (Asterisk's `dateformat` times are the PBX's local
    time); the caller builds it (e.g. `zoneinfo.ZoneInfo`), so the core reads no tz database.
    `received_at`: when the gateway received the request (UTC), the time of the payloads
    that carry none (Twilio's voice webhook and `<Dial action>` callback); None when
    unknown (an importer), and then such a payload is unmapped, never stamped with a clock.
    """

    project_id: str
    policy_for_number: Mapping[str, str] = field(default_factory=dict)
    default_policy_id: str | None = None
    user_for_endpoint: Mapping[str, str] = field(default_factory=dict)
    phone_for_endpoint: Mapping[str, str] = field(default_factory=dict)
    time_zone: tzinfo = UTC
    received_at: datetime | None = None

    def policy(self, number: str) -> str | None:
        return self.policy_for_number.get(number, self.default_policy_id)

    def user(self, endpoint: str) -> str:
        return self.user_for_endpoint.get(endpoint) or derived_user_id(self.project_id, endpoint)

    def phone_number(self, endpoint: str) -> str | None:
        """`endpoint` as E.164: itself when it already is, else its listed number, else None."""
        if is_e164(endpoint):
            return endpoint
        listed = self.phone_for_endpoint.get(endpoint)
        return listed if listed is not None and is_e164(listed) else None


@dataclass(frozen=True)
class Unmapped:
    code: str
    message: str
    field: str | None = None


@dataclass(frozen=True)
class Normalized:
    events: tuple[dict[str, Any], ...] = ()
    unmapped: tuple[Unmapped, ...] = ()

    def __add__(self, other: Normalized) -> Normalized:
        return Normalized(self.events + other.events, self.unmapped + other.unmapped)

    @classmethod
    def unmappable(cls, code: str, message: str, field: str | None = None) -> Normalized:
        """Nothing mapped, for one reason."""
        return cls(unmapped=(Unmapped(code, message, field),))


def each_item(
    page: Any,
    key: str,
    normalize: Callable[[Any, ProviderContext], Normalized],
    ctx: ProviderContext,
    what: str,
) -> Normalized:
    """Every record of a list API's page (`page[key]`), normalized one by one."""
    items = page.get(key) if isinstance(page, Mapping) else None
    if not isinstance(items, list):
        return Normalized.unmappable(NOT_PROVIDER_FORMAT, f"not {what} (no {key} list)")
    out = Normalized()
    for item in items:
        out = out + normalize(item, ctx)
    return out


def event_id(provider: str, *parts: object) -> str:
    """A stable event id from the provider's own ids and sequence numbers."""
    return f"{provider}-{uuid.uuid5(PROVIDER_NAMESPACE, '|'.join(str(p) for p in parts))}"


def derived_user_id(project_id: str, endpoint: str) -> str:
    return str(uuid.uuid5(PROVIDER_NAMESPACE, f"user|{project_id}|{endpoint}"))


def is_e164(number: str) -> bool:
    """+ then 2..15 digits, the first not 0 (the contract's E.164)."""
    return E164_PATTERN.fullmatch(number) is not None


def rfc3339(moment: datetime) -> str:
    """A time as the contract writes it: UTC, milliseconds, Z."""
    utc = moment.astimezone(UTC)
    return utc.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def checked(events: Iterable[dict[str, Any]], unmapped: Iterable[Unmapped] = ()) -> Normalized:
    """The events the worker accepts; each one it would reject becomes an `Unmapped`."""
    kept: list[dict[str, Any]] = []
    problems = list(unmapped)
    for event in events:
        verdict = validate_object(dict(event))
        if isinstance(verdict, Rejection):
            problems.append(
                Unmapped(
                    verdict.code,
                    f"{event.get('type')}: {verdict.message}",
                    verdict.field,
                )
            )
        else:
            kept.append(event)
    return Normalized(tuple(kept), tuple(problems))
