"""PortSIP's filter, orderby and search compiled to SQL: the OData subset of DESIGN.md
section 6 only, values bound, anything else a 400 naming it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from worker.api.odata_filter import filter_sql, orderby, search_sql
from worker.api.oneuptime_query import BadRequest
from worker.api.sql import Params


def compiled(text: str) -> tuple[str, list[Any]]:
    params = Params()
    return filter_sql(text, params), list(params.values.values())


@pytest.mark.parametrize(
    ("text", "sql", "values"),
    [
        ("caller eq '101'", "`caller` = {p0:String}", ["101"]),
        ("caller ne '101'", "`caller` != {p0:String}", ["101"]),
        ("duration gt 5", "`duration` > {p0:Int64}", [5]),
        ("duration ge 5", "`duration` >= {p0:Int64}", [5]),
        ("status_code lt 300", "`status_code` < {p0:Int64}", [300]),
        ("cost le 2.5", "`cost` <= {p0:Decimal(38, 10)}", [Decimal("2.5")]),
        (
            "started_at gt '2022-01-01T00:00:00Z'",
            "`started_at` > {p0:DateTime64(3, 'UTC')}",
            ["2022-01-01 00:00:00.000"],
        ),
        (
            "started_at lt 2022-01-01T02:00:00+02:00",
            "`started_at` < {p0:DateTime64(3, 'UTC')}",
            ["2022-01-01 00:00:00.000"],
        ),
        ("answered_at eq null", "`answered_at` IS NULL", []),
        ("answered_at ne null", "`answered_at` IS NOT NULL", []),
        ("id eq '77'", "`cdr_id` = {p0:String}", ["77"]),
        ("call_id eq 'abc@pbx'", "`sip_call_id` = {p0:String}", ["abc@pbx"]),
        (
            "startswith(callee,'+49')",
            "startsWith(lowerUTF8(toString(`callee`)), lowerUTF8({p0:String}))",
            ["+49"],
        ),
        (
            "endswith(callee_display_name,'desk')",
            "endsWith(lowerUTF8(toString(`callee_display_name`)), lowerUTF8({p0:String}))",
            ["desk"],
        ),
        (
            "contains(caller_display_name,'ANA')",
            "positionCaseInsensitiveUTF8(toString(`caller_display_name`), {p0:String}) > 0",
            ["ANA"],
        ),
        (
            "caller eq '1' and (duration gt 5 or direction eq 'INBOUND_CALL')",
            "(`caller` = {p0:String}) AND ((`duration` > {p1:Int64}) OR "
            "(`direction` = {p2:String}))",
            ["1", 5, "INBOUND_CALL"],
        ),
        ("caller eq 'x'' or 1 eq 1 --'", "`caller` = {p0:String}", ["x' or 1 eq 1 --"]),
    ],
)
def test_the_subset_compiles(text: str, sql: str, values: list[Any]) -> None:
    assert compiled(text) == (sql, values)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("caller eq", "filter: Failed to parse"),
        ("bogus eq '1'", "filter: unknown field 'bogus'"),
        ("caller eq 1", "1' is not a valid value for caller"),
        ("duration eq 'five'", "'five' is not a valid value for duration"),
        ("started_at gt 'yesterday'", "'yesterday' is not a valid value for started_at"),
        ("length(caller) eq 3", "the left side of a comparison must be a field name"),
        ("tolower(caller) eq 'a'", "the left side of a comparison must be a field name"),
        ("substringof('a', caller)", "Unknown function: 'substringof'"),  # the grammar's own
        ("contains(caller, 5)", "contains(field, 'text') takes a field and a quoted string"),
        ("not (caller eq '1')", "not UnaryOp"),
        ("caller in ('1', '2')", "unsupported comparison In"),
        ("duration gt null", "duration can only be compared to null with eq or ne"),
        ("duration add 1 eq 2", "filter"),
        ("caller eq '1' " + "and caller eq '1' " * 2500, "longer than 4000 characters"),
    ],
)
def test_outside_the_subset_is_refused(text: str, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        compiled(text)
    assert message in str(caught.value)


def test_orderby_and_search() -> None:
    assert [o.sql() for o in orderby(None)] == [
        "`started_at` ASC NULLS LAST",
        "`cdr_id` ASC NULLS LAST",
    ]
    assert [o.sql() for o in orderby("duration desc, caller")] == [
        "`duration` DESC NULLS LAST",
        "`caller` ASC NULLS LAST",
        "`cdr_id` ASC NULLS LAST",
    ]
    for bad, message in [
        ("nope asc", "unknown field 'nope'"),
        ("duration sideways", "direction must be asc or desc"),
        ("duration desc extra", "is not 'field [asc|desc]'"),
        ("duration,", "is not 'field [asc|desc]'"),
    ]:
        with pytest.raises(BadRequest) as caught:
            orderby(bad)
        assert message in str(caught.value)
    params = Params()
    assert search_sql("ana", params).count("{p0:String}") == 4
    assert params.values == {"p0": "ana"}
