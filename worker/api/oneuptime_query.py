"""OneUptime's list language: `select`, `sort`, `query`, `skip` and `limit` (DESIGN.md section 6).

Each function checks one part of a request against the resource's allow-list and returns what
the SQL needs; anything unknown or ill-typed raises `BadRequest` with a message that names the
field, the operator or the value at fault (OneUptime's wording where it has one).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from worker.api.fields import Field, Kind, Resource
from worker.api.sql import Order, Params, column

DEFAULT_LIMIT: Final = 10
MAX_LIMIT: Final = 10_000
MAX_LIST_VALUES: Final = 1000  # values in one IN list
MAX_DECIMAL: Final = Decimal(10) ** 18

# OneUptime's typed-value wrappers, accepted around any input value.
VALUE_WRAPPERS: Final = frozenset(
    {"ObjectID", "Phone", "DateTime", "Email", "Name", "Text", "Decimal", "Number", "Date"}
)
COMPARISONS: Final = {
    "GreaterThan": ">",
    "GreaterThanOrEqual": ">=",
    "LessThan": "<",
    "LessThanOrEqual": "<=",
}
TEXT_OPERATORS: Final = frozenset({"Search", "StartsWith", "EndsWith", "NotContains"})
OPERATORS: Final = frozenset(
    {
        "EqualTo",
        "NotEqual",
        *COMPARISONS,
        "InBetween",
        *TEXT_OPERATORS,
        "IsNull",
        "NotNull",
        "Includes",
    }
)


class BadRequest(ValueError):
    """A request the API refuses with 400; the message names what is wrong."""


# ---- skip and limit -----------------------------------------------------------------------


def paging(
    query_skip: str | None, query_limit: str | None, body: Mapping[str, Any] | None
) -> tuple[int, int]:
    """(skip, limit): from the query string, else the body; defaults 0 and 10.

    As OneUptime: a limit of 0 means the default; a negative number or a limit above 10000
    is refused.
    """
    body = body or {}
    skip = _count("skip", query_skip if query_skip is not None else body.get("skip"), 2**63 - 1)
    limit = _count(
        "limit", query_limit if query_limit is not None else body.get("limit"), MAX_LIMIT
    )
    return skip, limit or DEFAULT_LIMIT


def _count(name: str, value: object, maximum: int) -> int:
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise BadRequest(f"{name} must be a whole number, not {value!r}")
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise BadRequest(f"{name} must be a whole number, not {value!r}") from None
    if not isinstance(value, int):
        raise BadRequest(f"{name} must be a whole number, not {value!r}")
    if value < 0:
        raise BadRequest(f"{name} cannot be less than 0")
    if value > maximum:
        raise BadRequest(
            f"Limit should be less than {MAX_LIMIT}" if name == "limit" else f"{name} is too large"
        )
    return value


# ---- select -------------------------------------------------------------------------------


def selected(resource: Resource, select: Mapping[str, Any] | None) -> list[Field]:
    """The columns to answer, in the table's order; `_id` always, and only `_id` by default."""
    chosen = {"_id"}
    for name, wanted in (select or {}).items():
        if resource.field(name) is None:
            raise BadRequest(
                f'Invalid select clause. Cannot select on "{name}". This column does not exist '
                f"on {resource.title}. Here are the columns you can select on instead: "
                + ", ".join(resource.fields)
            )
        if wanted is True or wanted == 1:
            chosen.add(name)
        elif not (wanted is False or wanted == 0):
            raise BadRequest(f"select.{name} must be true or false, not {wanted!r}")
    return [f for name, f in resource.fields.items() if name in chosen]


# ---- sort ---------------------------------------------------------------------------------

_DIRECTIONS: Final[dict[object, bool]] = {"ASC": False, "DESC": True, 1: False, -1: True}


def ordering(resource: Resource, sort: Mapping[str, Any] | None) -> list[Order]:
    """ORDER BY: the request's fields (default `createdAt` descending), then `_id` so that
    pages are stable."""
    order: list[Order] = []
    for name, direction in (sort or {"createdAt": "DESC"}).items():
        f = resource.field(name)
        if f is None:
            raise BadRequest(
                f'Invalid sort clause. Cannot sort on "{name}". This column does not exist on '
                f"{resource.title}."
            )
        key = direction.upper() if isinstance(direction, str) else direction
        if isinstance(key, bool) or key not in _DIRECTIONS:
            raise BadRequest(f'sort.{name} must be "ASC", "DESC", 1 or -1, not {direction!r}')
        order.append(Order(f, _DIRECTIONS[key]))
    if not any(o.field.name == "_id" for o in order):
        order.append(Order(resource.fields["_id"], descending=False))
    return order


# ---- query --------------------------------------------------------------------------------


def conditions(resource: Resource, query: Mapping[str, Any] | None, params: Params) -> list[str]:
    """One SQL condition per queried field (ANDed by the caller)."""
    out: list[str] = []
    for name, spec in (query or {}).items():
        f = resource.field(name)
        if f is None:
            raise BadRequest(f"Invalid column on {resource.title} - {name}. Column does not exist.")
        # A projectId here can only narrow the key's project scope (to nothing, for another
        # project): the caller ANDs the scope to these conditions.
        out.append(_condition(f, spec, params))
    return out


def _condition(f: Field, spec: Any, params: Params) -> str:
    col = column(f)
    if spec is None:
        return f"{col} IS NULL"
    if isinstance(spec, list):
        return _includes(f, spec, params)
    if isinstance(spec, dict) and "_type" in spec:
        op = spec["_type"]
        if op in VALUE_WRAPPERS:
            return f"{col} = {_bind(f, spec, params)}"
        if op not in OPERATORS:
            raise BadRequest(
                f"Unknown operator {op!r} on {f.name}. Operators: " + ", ".join(sorted(OPERATORS))
            )
        return _operator(f, op, spec, params)
    if isinstance(spec, dict):
        raise BadRequest(
            f'query.{f.name} must be a value, null, a list or an operator {{"_type": ..., '
            '"value": ...}'
        )
    return f"{col} = {_bind(f, spec, params)}"


def _operator(f: Field, op: str, spec: Mapping[str, Any], params: Params) -> str:
    col = column(f)
    if op == "IsNull":
        return f"{col} IS NULL"
    if op == "NotNull":
        return f"{col} IS NOT NULL"
    if op == "InBetween":
        if not f.kind.ordered:
            raise _not_for(op, f)
        if "startValue" not in spec or "endValue" not in spec:
            raise BadRequest(f"InBetween on {f.name} needs startValue and endValue")
        low = _bind(f, spec["startValue"], params)
        high = _bind(f, spec["endValue"], params)
        return f"{col} >= {low} AND {col} <= {high}"
    if "value" not in spec:
        raise BadRequest(f"{op} on {f.name} needs a value")
    value = spec["value"]
    if op == "Includes":
        if not isinstance(value, list):
            raise BadRequest(f"Includes on {f.name} needs a list value")
        return _includes(f, value, params)
    if op == "EqualTo":
        return f"{col} = {_bind(f, value, params)}" if value is not None else f"{col} IS NULL"
    if op == "NotEqual":
        # SQL's != : never matches NULL (as OneUptime).
        if value is None:
            return f"{col} IS NOT NULL"
        return f"{col} != {_bind(f, value, params)}"
    if op in COMPARISONS:
        if not f.kind.ordered:
            raise _not_for(op, f)
        return f"{col} {COMPARISONS[op]} {_bind(f, value, params)}"
    # Text operators: case-insensitive, on the value as text.
    if not f.kind.textual:
        raise _not_for(op, f)
    if not isinstance(value, str):
        raise BadRequest(f"{op} on {f.name} needs a string value, not {value!r}")
    text = params.bind(value, "String")
    as_text = f"toString({col})"
    if op == "Search":
        return f"positionCaseInsensitiveUTF8({as_text}, {text}) > 0"
    if op == "StartsWith":
        return f"startsWith(lowerUTF8({as_text}), lowerUTF8({text}))"
    if op == "EndsWith":
        return f"endsWith(lowerUTF8({as_text}), lowerUTF8({text}))"
    # NotContains matches NULL, unlike NotEqual (as OneUptime).
    return f"{col} IS NULL OR positionCaseInsensitiveUTF8({as_text}, {text}) = 0"


def _not_for(op: str, f: Field) -> BadRequest:
    return BadRequest(f"{op} does not apply to {f.name} (a {f.kind.value} field)")


def _includes(f: Field, values: list[Any], params: Params) -> str:
    if len(values) > MAX_LIST_VALUES:
        raise BadRequest(f"at most {MAX_LIST_VALUES} values in a list on {f.name}")
    if f.kind is Kind.JSON:
        raise _not_for("Includes", f)
    coerced = [_coerce(f, v) for v in values if v is not None]
    parts = [f"{column(f)} IN {params.bind(coerced, f'Array({_bind_type(f)})')}"]
    if any(v is None for v in values):
        parts.append(f"{column(f)} IS NULL")
    return " OR ".join(parts)


def _bind(f: Field, value: Any, params: Params) -> str:
    return params.bind(_coerce(f, value), _bind_type(f))


def _bind_type(f: Field) -> str:
    # Wider than the column where a request may legitimately compare outside its range.
    if f.kind is Kind.INT:
        return "Int64"
    if f.kind is Kind.DECIMAL:
        return "Decimal(38, 10)"
    if f.kind is Kind.JSON:
        return "String"
    if f.kind is Kind.BOOL:
        return "Bool"
    return f.ch_type


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and value.get("_type") in VALUE_WRAPPERS and "value" in value:
        return value["value"]
    return value


def _coerce(f: Field, value: Any) -> object:
    value = _unwrap(value)
    try:
        return _COERCE[f.kind](value)
    except (TypeError, ValueError, InvalidOperation):
        raise BadRequest(
            f"Invalid value for {f.name}: {_show(value)} is not {_EXPECTED[f.kind]}"
        ) from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _uuid(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return str(uuid.UUID(value))


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError
    if not -(2**63) <= value < 2**63:
        raise ValueError
    return value


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TypeError
    number = Decimal(str(value))
    if not number.is_finite() or abs(number) >= MAX_DECIMAL:
        raise ValueError
    return number


def _datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError
    parsed = dt.datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    utc = parsed.astimezone(dt.UTC)
    if not dt.datetime(1970, 1, 1, tzinfo=dt.UTC) <= utc < dt.datetime(2106, 1, 1, tzinfo=dt.UTC):
        raise ValueError
    return utc.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError
    return value


_COERCE: Final[dict[Kind, Callable[[Any], object]]] = {
    Kind.UUID: _uuid,
    Kind.STRING: _string,
    Kind.JSON: _string,
    Kind.INT: _int,
    Kind.DECIMAL: _decimal,
    Kind.DATETIME: _datetime,
    Kind.BOOL: _bool,
}
_EXPECTED: Final = {
    Kind.UUID: "a UUID",
    Kind.STRING: "a string",
    Kind.JSON: "a string (callData matches as JSON text)",
    Kind.INT: "a whole number",
    Kind.DECIMAL: "a number",
    Kind.DATETIME: "an RFC 3339 date-time",
    Kind.BOOL: "true or false",
}
