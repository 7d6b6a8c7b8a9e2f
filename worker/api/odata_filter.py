"""PortSIP's query options over the cdr table: `filter` (an OData subset), `orderby`, `search`.

The filter is parsed by odata-query's grammar; this module walks the tree and accepts only
the subset of DESIGN.md section 6: `eq ne gt ge lt le`, `and`, `or`, parentheses, and the
functions `startswith`, `endswith` and `contains` (case-insensitive). Field names come from
the PortSIP allow-list, values become bound parameters; anything else is a `BadRequest`
naming it.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Final

from odata_query import ast
from odata_query.exceptions import ODataException
from odata_query.grammar import ODataLexer, ODataParser

from worker.api.fields import PORTSIP_FIELDS, PORTSIP_SEARCHED, Field, Kind
from worker.api.oneuptime_query import BadRequest
from worker.api.sql import Order, Params, column

MAX_FILTER_LENGTH: Final = 4000
MAX_DEPTH: Final = 50

_COMPARATORS: Final[dict[type[ast._Comparator], str]] = {
    ast.Eq: "=",
    ast.NotEq: "!=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Lt: "<",
    ast.LtE: "<=",
}
_FUNCTIONS: Final = {
    "startswith": "startsWith(lowerUTF8({col}), lowerUTF8({value}))",
    "endswith": "endsWith(lowerUTF8({col}), lowerUTF8({value}))",
    "contains": "positionCaseInsensitiveUTF8({col}, {value}) > 0",
}


def filter_sql(text: str, params: Params) -> str:
    if len(text) > MAX_FILTER_LENGTH:
        raise BadRequest(f"filter is longer than {MAX_FILTER_LENGTH} characters")
    try:
        tree = ODataParser().parse(ODataLexer().tokenize(text))
    except ODataException as exc:
        raise BadRequest(f"filter: {exc}") from None
    except (ValueError, TypeError, IndexError, RecursionError) as exc:
        raise BadRequest(f"filter could not be parsed: {exc}") from None
    return _node(tree, params, 0)


def _node(node: ast._Node, params: Params, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise BadRequest(f"filter nests deeper than {MAX_DEPTH} levels")
    if isinstance(node, ast.BoolOp):
        op = (
            "AND" if isinstance(node.op, ast.And) else "OR" if isinstance(node.op, ast.Or) else None
        )
        if op is None:
            raise BadRequest(f"filter: unsupported operator {type(node.op).__name__}")
        return (
            f"({_node(node.left, params, depth + 1)}) {op} ({_node(node.right, params, depth + 1)})"
        )
    if isinstance(node, ast.Compare):
        return _compare(node, params)
    if isinstance(node, ast.Call):
        return _call(node, params)
    raise BadRequest(
        "filter: only comparisons (eq ne gt ge lt le), and, or, parentheses and startswith / "
        f"endswith / contains are supported, not {type(node).__name__}"
    )


def _field(node: ast._Node) -> Field:
    if not isinstance(node, ast.Identifier) or node.namespace:
        raise BadRequest("filter: the left side of a comparison must be a field name")
    f = PORTSIP_FIELDS.get(node.name)
    if f is None:
        raise BadRequest(
            f"filter: unknown field {node.name!r}; fields: " + ", ".join(PORTSIP_FIELDS)
        )
    return f


def _compare(node: ast.Compare, params: Params) -> str:
    op = _COMPARATORS.get(type(node.comparator))
    if op is None:
        raise BadRequest(f"filter: unsupported comparison {type(node.comparator).__name__}")
    f = _field(node.left)
    col = column(f)
    if isinstance(node.right, ast.Null):
        if op not in ("=", "!="):
            raise BadRequest(f"filter: {f.name} can only be compared to null with eq or ne")
        return f"{col} IS {'' if op == '=' else 'NOT '}NULL"
    return f"{col} {op} {params.bind(_literal(f, node.right), _bind_type(f))}"


def _call(node: ast.Call, params: Params) -> str:
    name = node.func.name.lower() if isinstance(node.func, ast.Identifier) else ""
    template = _FUNCTIONS.get(name)
    if template is None:
        raise BadRequest(
            f"filter: unsupported function {name or '?'!r}; use startswith, endswith or contains"
        )
    if len(node.args) != 2 or not isinstance(node.args[1], ast.String):
        raise BadRequest(f"filter: {name}(field, 'text') takes a field and a quoted string")
    f = _field(node.args[0])
    value = params.bind(node.args[1].val, "String")
    return template.format(col=f"toString({column(f)})", value=value)


def _bind_type(f: Field) -> str:
    return {Kind.INT: "Int64", Kind.DECIMAL: "Decimal(38, 10)"}.get(f.kind, f.ch_type)


def _literal(f: Field, node: ast._Node) -> object:
    try:
        if f.kind is Kind.INT and isinstance(node, ast.Integer):
            return int(node.val)
        if f.kind is Kind.DECIMAL and isinstance(node, ast.Integer | ast.Float | ast.String):
            return Decimal(node.val)
        if f.kind is Kind.DATETIME and isinstance(node, ast.DateTime | ast.String | ast.Date):
            parsed = dt.datetime.fromisoformat(node.val)
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=dt.UTC)
            return parsed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        if f.kind is Kind.STRING and isinstance(node, ast.String):
            return node.val
    except (ValueError, InvalidOperation, OverflowError):
        pass
    shown = getattr(node, "val", type(node).__name__)
    raise BadRequest(f"filter: {shown!r} is not a valid value for {f.name} ({f.kind.value})")


def search_sql(text: str, params: Params) -> str:
    value = params.bind(text, "String")
    return " OR ".join(
        f"positionCaseInsensitiveUTF8(toString({column(PORTSIP_FIELDS[name])}), {value}) > 0"
        for name in PORTSIP_SEARCHED
    )


def orderby(text: str | None) -> list[Order]:
    """`field [asc|desc], ...`; default `started_at` ascending; the id breaks ties."""
    order: list[Order] = []
    for part in (text or "started_at asc").split(","):
        words = part.split()
        if not words or len(words) > 2:
            raise BadRequest(f"orderby: {part.strip()!r} is not 'field [asc|desc]'")
        f = PORTSIP_FIELDS.get(words[0])
        if f is None:
            raise BadRequest(f"orderby: unknown field {words[0]!r}")
        direction = words[1].lower() if len(words) == 2 else "asc"
        if direction not in ("asc", "desc"):
            raise BadRequest(f"orderby: direction must be asc or desc, not {words[1]!r}")
        order.append(Order(f, direction == "desc"))
    if not any(o.field.name == "id" for o in order):
        order.append(Order(PORTSIP_FIELDS["id"], descending=False))
    return order
