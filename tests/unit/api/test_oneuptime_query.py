"""OneUptime's list language compiled to SQL: exact SQL text and bound values for every
operator, and a 400 that names the culprit for everything else."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from worker.api.fields import (
    CALL_LOG_RESOURCE,
    INCOMING_CALL_LOG_ITEM_RESOURCE,
    INCOMING_CALL_LOG_RESOURCE,
    camel_case,
)
from worker.api.oneuptime_query import BadRequest, conditions, ordering, paging, selected
from worker.api.sql import Params

ITEM = INCOMING_CALL_LOG_ITEM_RESOURCE
UID = "0b6c1e2a-0000-4000-8000-00000000000a"


def compile_query(query: dict[str, Any], resource: Any = ITEM) -> tuple[list[str], dict[str, Any]]:
    params = Params()
    return conditions(resource, query, params), params.values


def test_names_follow_oneuptime() -> None:
    assert camel_case("call_cost_in_usd_cents") == "callCostInUSDCents"
    assert camel_case("id") == "_id"
    assert camel_case("incoming_call_policy_escalation_rule_id") == (
        "incomingCallPolicyEscalationRuleId"
    )
    assert list(ITEM.fields)[:4] == ["_id", "projectId", "incomingCallLogId", "dialId"]
    assert "version" not in ITEM.fields and "ingestedAt" not in ITEM.fields
    assert CALL_LOG_RESOURCE.fields["callData"].kind.value == "json"


@pytest.mark.parametrize(
    ("query", "sql", "values"),
    [
        ({"status": "Completed"}, ["`status` = {p0:String}"], ["Completed"]),
        ({"userId": None}, ["`user_id` IS NULL"], []),
        (
            {"status": ["Busy", "Failed"]},
            ["`status` IN {p0:Array(String)}"],
            [["Busy", "Failed"]],
        ),
        (
            {"status": ["Busy", None]},
            ["`status` IN {p0:Array(String)} OR `status` IS NULL"],
            [["Busy"]],
        ),
        (
            {"isAnswered": {"_type": "EqualTo", "value": True}},
            ["`is_answered` = {p0:Bool}"],
            [True],
        ),
        (
            {"userId": {"_type": "NotEqual", "value": UID}},
            ["`user_id` != {p0:UUID}"],
            [UID],
        ),
        (
            {"dialDurationInSeconds": {"_type": "GreaterThan", "value": 10}},
            ["`dial_duration_in_seconds` > {p0:Int64}"],
            [10],
        ),
        (
            {"callCostInUSDCents": {"_type": "LessThanOrEqual", "value": "2.5"}},
            ["`call_cost_in_usd_cents` <= {p0:Decimal(38, 10)}"],
            [Decimal("2.5")],
        ),
        (
            {"startedAt": {"_type": "GreaterThanOrEqual", "value": "2024-05-01T10:00:00+02:00"}},
            ["`started_at` >= {p0:DateTime64(3, 'UTC')}"],
            ["2024-05-01 08:00:00.000"],
        ),
        (
            {
                "startedAt": {
                    "_type": "LessThan",
                    "value": {"_type": "DateTime", "value": "2024-05-01T08:00:00.5Z"},
                }
            },
            ["`started_at` < {p0:DateTime64(3, 'UTC')}"],
            ["2024-05-01 08:00:00.500"],
        ),
        (
            {"talkDurationInSeconds": {"_type": "InBetween", "startValue": 1, "endValue": 60}},
            [
                "`talk_duration_in_seconds` >= {p0:Int64} AND "
                "`talk_duration_in_seconds` <= {p1:Int64}"
            ],
            [1, 60],
        ),
        (
            {"userPhoneNumber": {"_type": "Search", "value": "555"}},
            ["positionCaseInsensitiveUTF8(toString(`user_phone_number`), {p0:String}) > 0"],
            ["555"],
        ),
        (
            {"statusMessage": {"_type": "StartsWith", "value": "Clo"}},
            ["startsWith(lowerUTF8(toString(`status_message`)), lowerUTF8({p0:String}))"],
            ["Clo"],
        ),
        (
            {"statusMessage": {"_type": "EndsWith", "value": "EVENT"}},
            ["endsWith(lowerUTF8(toString(`status_message`)), lowerUTF8({p0:String}))"],
            ["EVENT"],
        ),
        (
            {"statusMessage": {"_type": "NotContains", "value": "x"}},
            [
                "`status_message` IS NULL OR "
                "positionCaseInsensitiveUTF8(toString(`status_message`), {p0:String}) = 0"
            ],
            ["x"],
        ),
        ({"endedAt": {"_type": "IsNull"}}, ["`ended_at` IS NULL"], []),
        ({"endedAt": {"_type": "NotNull"}}, ["`ended_at` IS NOT NULL"], []),
        (
            {"userId": {"_type": "Includes", "value": [UID.upper()]}},
            ["`user_id` IN {p0:Array(UUID)}"],
            [[UID]],
        ),
        (
            {"userPhoneNumber": {"_type": "Phone", "value": "+15550100"}},
            ["`user_phone_number` = {p0:String}"],
            ["+15550100"],
        ),
    ],
)
def test_every_operator_compiles_to_bound_sql(
    query: dict[str, Any], sql: list[str], values: list[Any]
) -> None:
    got_sql, got_values = compile_query(query)
    assert got_sql == sql
    assert list(got_values.values()) == values


def test_a_hostile_value_is_only_ever_a_parameter() -> None:
    hostile = "x') OR 1=1 --"
    got_sql, values = compile_query(
        {"status": hostile, "dialId": {"_type": "Search", "value": hostile}}
    )
    assert all(hostile not in s for s in got_sql)
    assert list(values.values()) == [hostile, hostile]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"nope": 1}, "Invalid column on Incoming Call Log Item - nope. Column does not exist."),
        ({"`status`": 1}, "Invalid column on Incoming Call Log Item - `status`."),
        ({"status": {"_type": "Bogus", "value": 1}}, "Unknown operator 'Bogus' on status"),
        (
            {"status": {"_type": "GreaterThan", "value": "a"}},
            "GreaterThan does not apply to status",
        ),
        ({"isAnswered": {"_type": "Search", "value": "t"}}, "Search does not apply to isAnswered"),
        (
            {"dialDurationInSeconds": "ten"},
            "Invalid value for dialDurationInSeconds: 'ten' is not a whole number",
        ),
        ({"dialDurationInSeconds": True}, "is not a whole number"),
        ({"userId": "not-a-uuid"}, "Invalid value for userId: 'not-a-uuid' is not a UUID"),
        ({"isAnswered": "yes"}, "Invalid value for isAnswered: 'yes' is not true or false"),
        (
            {"startedAt": {"_type": "GreaterThan", "value": "yesterday"}},
            "is not an RFC 3339 date-time",
        ),
        (
            {"startedAt": {"_type": "GreaterThan", "value": "1900-01-01T00:00:00Z"}},
            "is not an RFC 3339",
        ),
        ({"callCostInUSDCents": {"_type": "LessThan", "value": "NaN"}}, "is not a number"),
        ({"callCostInUSDCents": {"_type": "LessThan", "value": 1e30}}, "is not a number"),
        ({"status": {"_type": "InBetween", "startValue": 1}}, "InBetween does not apply to status"),
        (
            {"dialDurationInSeconds": {"_type": "InBetween", "startValue": 1}},
            "needs startValue and endValue",
        ),
        ({"status": {"_type": "EqualTo"}}, "EqualTo on status needs a value"),
        ({"status": {"_type": "Includes", "value": "Busy"}}, "Includes on status needs a list"),
        ({"status": {"a": 1}}, "query.status must be a value, null, a list or an operator"),
        ({"status": {"_type": "Search", "value": 5}}, "Search on status needs a string value"),
        ({"status": list(range(1001))}, "at most 1000 values"),
    ],
)
def test_bad_queries_name_what_is_wrong(query: dict[str, Any], message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        compile_query(query)
    assert message in str(caught.value)


def test_json_fields_take_text_operators_only() -> None:
    got_sql, _ = compile_query(
        {"callData": {"_type": "Search", "value": "retry"}}, CALL_LOG_RESOURCE
    )
    assert got_sql == ["positionCaseInsensitiveUTF8(toString(`call_data`), {p0:String}) > 0"]
    with pytest.raises(BadRequest, match="Includes does not apply to callData"):
        compile_query({"callData": ["x"]}, CALL_LOG_RESOURCE)


@pytest.mark.parametrize(
    ("query_skip", "query_limit", "body", "expected"),
    [
        (None, None, None, (0, 10)),
        ("5", "20", {"skip": 1, "limit": 2}, (5, 20)),  # the query string wins
        (None, None, {"skip": 1, "limit": 2}, (1, 2)),
        (None, "0", None, (0, 10)),  # as OneUptime: 0 means the default
        (None, "10000", None, (0, 10000)),
        (None, None, {"limit": "7"}, (0, 7)),
    ],
)
def test_paging(
    query_skip: str | None,
    query_limit: str | None,
    body: dict[str, Any] | None,
    expected: tuple[int, int],
) -> None:
    assert paging(query_skip, query_limit, body) == expected


@pytest.mark.parametrize(
    ("query_skip", "query_limit", "message"),
    [
        (None, "10001", "Limit should be less than 10000"),
        ("-1", None, "skip cannot be less than 0"),
        (None, "-5", "limit cannot be less than 0"),
        (None, "ten", "limit must be a whole number, not 'ten'"),
        ("1e3", None, "skip must be a whole number"),
        (None, str(2**64), "Limit should be less than 10000"),
        (str(2**64), None, "skip is too large"),
    ],
)
def test_bad_paging(query_skip: str | None, query_limit: str | None, message: str) -> None:
    with pytest.raises(BadRequest) as caught:
        paging(query_skip, query_limit, None)
    assert message.lower() in str(caught.value).lower()


def test_select_defaults_to_id_and_keeps_table_order() -> None:
    assert [f.name for f in selected(ITEM, None)] == ["_id"]
    assert [f.name for f in selected(ITEM, {})] == ["_id"]
    chosen = selected(ITEM, {"isAnswered": True, "status": True, "dialId": False})
    assert [f.name for f in chosen] == ["_id", "status", "isAnswered"]
    refusals: list[tuple[dict[str, Any], str]] = [
        (
            {"bogus": True},
            'Cannot select on "bogus". This column does not exist on Incoming Call Log Item. '
            "Here are the columns you can select on instead: _id, projectId, ",
        ),
        ({"status": "yes"}, "select.status must be true or false"),
    ]
    for select, message in refusals:
        with pytest.raises(BadRequest) as caught:
            selected(ITEM, select)
        assert message in str(caught.value)


def test_sort_default_direction_forms_and_tie_break() -> None:
    default = ordering(INCOMING_CALL_LOG_RESOURCE, None)
    assert [o.sql() for o in default] == [
        "`created_at` DESC NULLS LAST",
        "toString(`id`) ASC NULLS LAST",
    ]
    forms = ordering(ITEM, {"status": "asc", "dialId": -1, "startedAt": 1, "endedAt": "DESC"})
    assert [(o.field.name, o.descending) for o in forms] == [
        ("status", False),
        ("dialId", True),
        ("startedAt", False),
        ("endedAt", True),
        ("_id", False),
    ]
    assert [o.field.name for o in ordering(ITEM, {"_id": "DESC"})] == ["_id"]
    sorts: list[tuple[dict[str, Any], str]] = [
        ({"nope": "ASC"}, 'Cannot sort on "nope"'),
        ({"status": "up"}, 'sort.status must be "ASC", "DESC", 1 or -1'),
        ({"status": True}, 'sort.status must be "ASC", "DESC", 1 or -1'),
    ]
    for sort, message in sorts:
        with pytest.raises(BadRequest) as caught:
            ordering(ITEM, sort)
        assert message in str(caught.value)
