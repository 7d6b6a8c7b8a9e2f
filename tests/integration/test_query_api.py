"""The OneUptime- and PortSIP-compatible APIs of a live worker (real Kafka, chDB), on rows
ingested through the pipeline: every answer compared exactly with an oracle computed in
Python from the same rows read with SQL."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from tests.support.live_api import PERMISSIONS, ROLES, LiveApi, api_json, api_record, live_api
from worker.api.fields import (
    CALL_LOG_RESOURCE,
    INCOMING_CALL_LOG_ITEM_RESOURCE,
    INCOMING_CALL_LOG_RESOURCE,
    ONEUPTIME_RESOURCES,
    PORTSIP_FIELDS,
    PORTSIP_SUMMARY,
    Field,
    Kind,
    Resource,
)

pytestmark = pytest.mark.kafka

READ_PERMISSION = {
    INCOMING_CALL_LOG_RESOURCE.path: "ReadIncomingCallLog",
    INCOMING_CALL_LOG_ITEM_RESOURCE.path: "ReadIncomingCallLogItem",
    CALL_LOG_RESOURCE.path: "ReadCallLog",
}


@pytest.fixture(scope="module")
def api(kafka_bootstrap: str, chdb_store_url: str) -> Iterator[LiveApi]:
    with live_api(kafka_bootstrap, chdb_store_url) as live:
        yield live


def owner(api: LiveApi, project: int = 0) -> str:
    return api.keys[api.projects[project]]["ProjectOwner"]


# ---- the oracle ----------------------------------------------------------------------------


def _nulls_last_key(value: Any, descending: bool) -> tuple[int, Any]:
    return (1, 0) if value is None else (0, value)


def oracle_sort(
    rows: list[dict[str, Any]], order: list[tuple[Field, bool]]
) -> list[dict[str, Any]]:
    """Stable sorts from the last key to the first; NULLs last in both directions; UUIDs by
    their text."""
    out = list(rows)
    for f, descending in reversed(order):
        present = [r for r in out if r[f.column] is not None]
        absent = [r for r in out if r[f.column] is None]

        def key(r: dict[str, Any], f: Field = f) -> Any:
            v = r[f.column]
            return str(v) if f.kind is Kind.UUID else v

        present.sort(key=key, reverse=descending)
        out = present + absent
    return out


def expected_list(
    api: LiveApi,
    resource: Resource,
    project: str,
    keep: Callable[[dict[str, Any]], bool],
    names: list[str],
    order: list[tuple[str, bool]] | None = None,
    skip: int = 0,
    limit: int = 10,
) -> dict[str, Any]:
    rows = [r for r in api.table_rows(resource.table.name, project) if keep(r)]
    sort = [(resource.fields[n], d) for n, d in (order or [("createdAt", True)])]
    if not any(f.name == "_id" for f, _ in sort):
        sort.append((resource.fields["_id"], False))
    ordered = oracle_sort(rows, sort)
    wanted = ["_id", *[n for n in resource.fields if n in names and n != "_id"]]
    return {
        "count": len(rows),
        "limit": limit,
        "skip": skip,
        "data": [api_record(resource, r, wanted) for r in ordered[skip : skip + limit]],
    }


def text_of(f: Field, value: Any) -> str:
    return str(value)


def matches(f: Field, op: str, spec: Any, value: Any) -> bool:
    """The contract's meaning of each operator (DESIGN.md section 6), in Python."""
    if op == "IsNull":
        return value is None
    if op == "NotNull":
        return value is not None
    if op == "NotContains":
        return value is None or spec.lower() not in text_of(f, value).lower()
    if value is None:
        return False
    if op in ("EqualTo", "plain"):
        return bool(value == spec)
    if op == "NotEqual":
        return bool(value != spec)
    if op in ("Includes", "list"):
        return value in spec
    if op == "GreaterThan":
        return bool(value > spec)
    if op == "GreaterThanOrEqual":
        return bool(value >= spec)
    if op == "LessThan":
        return bool(value < spec)
    if op == "LessThanOrEqual":
        return bool(value <= spec)
    if op == "InBetween":
        return bool(spec[0] <= value <= spec[1])
    text = text_of(f, value).lower()
    if op == "Search":
        return spec.lower() in text
    if op == "StartsWith":
        return text.startswith(spec.lower())
    if op == "EndsWith":
        return text.endswith(spec.lower())
    raise AssertionError(op)


def wire(f: Field, value: Any) -> Any:
    """A Python value as a request sends it."""
    if f.kind is Kind.BOOL:
        return bool(value)  # is_deleted is a UInt8 in the table
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    return value


def cases(f: Field, values: list[Any]) -> list[tuple[str, Any, Any]]:
    """(operator, request value, oracle value) for field `f`, from the values it holds."""
    present = sorted(
        {v for v in values if v is not None}, key=lambda v: str(v) if f.kind is Kind.UUID else v
    )
    out: list[tuple[str, Any, Any]] = [("IsNull", None, None), ("NotNull", None, None)]
    if not present:
        return out
    mid = present[len(present) // 2]
    if f.kind is not Kind.JSON:
        out += [
            ("plain", wire(f, mid), mid),
            ("EqualTo", wire(f, mid), mid),
            ("NotEqual", wire(f, mid), mid),
            ("Includes", [wire(f, present[0]), wire(f, mid)], [present[0], mid]),
            ("list", [wire(f, present[-1])], [present[-1]]),
        ]
    if f.kind.ordered:
        low, high = present[len(present) // 4], present[(3 * len(present)) // 4]
        for op in ("GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual"):
            out.append((op, wire(f, mid), mid))
        out.append(("InBetween", (wire(f, low), wire(f, high)), (low, high)))
    if f.kind.textual:
        text = str(mid)
        needle = text[1:5] if len(text) > 5 else text
        out += [
            ("Search", needle.swapcase(), needle),
            ("StartsWith", text[:3].swapcase(), text[:3]),
            ("EndsWith", text[-3:].swapcase(), text[-3:]),
            ("NotContains", needle.swapcase(), needle),
        ]
    return out


def request_spec(op: str, value: Any) -> Any:
    if op in ("plain", "list"):
        return value
    if op == "InBetween":
        return {"_type": "InBetween", "startValue": value[0], "endValue": value[1]}
    if op in ("IsNull", "NotNull"):
        return {"_type": op}
    return {"_type": op, "value": value}


# ---- OneUptime: list, count, get-item ---------------------------------------------------------


def test_list_defaults_are_oneuptimes(api: LiveApi) -> None:
    project = api.projects[0]
    for resource in ONEUPTIME_RESOURCES:
        got = api.call("POST", f"/api/{resource.path}/get-list", key=owner(api))
        assert got.status_code == 200, got.text
        assert got.json() == expected_list(api, resource, project, lambda r: True, ["_id"])
        # GET and an empty JSON object answer the same
        assert (
            api.call("GET", f"/api/{resource.path}/get-list", key=owner(api)).json() == got.json()
        )
        assert (
            api.call("POST", f"/api/{resource.path}/get-list", key=owner(api), json={}).json()
            == got.json()
        )


def test_every_operator_on_every_field_matches_the_oracle(api: LiveApi) -> None:
    project = api.projects[1]
    tried = 0
    for resource in ONEUPTIME_RESOURCES:
        rows = api.table_rows(resource.table.name, project)
        everything = {name: True for name in resource.fields}
        for name, f in resource.fields.items():
            for op, sent, meant in cases(f, [r[f.column] for r in rows]):
                body = {
                    "query": {name: request_spec(op, sent)},
                    "select": everything,
                    "sort": {"_id": "ASC"},
                    "limit": 10000,
                }
                got = api.call(
                    "POST", f"/api/{resource.path}/get-list", key=owner(api, 1), json=body
                )
                assert got.status_code == 200, (resource.path, name, op, got.text)

                def keep(r: dict[str, Any], f: Field = f, op: str = op, meant: Any = meant) -> bool:
                    return matches(f, op, meant, r[f.column])

                expected = expected_list(
                    api,
                    resource,
                    project,
                    keep,
                    list(resource.fields),
                    order=[("_id", False)],
                    limit=10000,
                )
                assert got.json() == expected, (resource.path, name, op, sent)
                count = api.call(
                    "POST",
                    f"/api/{resource.path}/count",
                    key=owner(api, 1),
                    json={"query": body["query"]},
                )
                assert count.json() == {"count": expected["count"]}, (resource.path, name, op)
                tried += 1
    assert tried > 250


def test_several_fields_are_anded_and_sorts_are_stable(api: LiveApi) -> None:
    project = api.projects[0]
    item = INCOMING_CALL_LOG_ITEM_RESOURCE
    body = {
        "query": {"isAnswered": False, "status": {"_type": "NotEqual", "value": "Busy"}},
        "select": {"status": True, "dialDurationInSeconds": True, "userPhoneNumber": True},
        "sort": {"status": "ASC", "dialDurationInSeconds": -1},
        "skip": 3,
        "limit": 7,
    }
    got = api.call("POST", "/api/incoming-call-log-item/get-list", key=owner(api), json=body)
    assert got.json() == expected_list(
        api,
        item,
        project,
        lambda r: r["is_answered"] is False and r["status"] is not None and r["status"] != "Busy",
        ["status", "dialDurationInSeconds", "userPhoneNumber"],
        order=[("status", False), ("dialDurationInSeconds", True)],
        skip=3,
        limit=7,
    )
    # every sortable field, both ways, pages through the same total order
    for name in item.fields:
        for direction, descending in (("ASC", False), ("DESC", True)):
            pages = [
                api.call(
                    "POST",
                    f"/api/incoming-call-log-item/get-list?skip={skip}&limit=25",
                    key=owner(api),
                    json={"sort": {name: direction}, "select": {name: True}},
                ).json()
                for skip in (0, 25)
            ]
            expected = [
                expected_list(
                    api, item, project, lambda r: True, [name], [(name, descending)], skip, 25
                )
                for skip in (0, 25)
            ]
            assert pages == expected, (name, direction)


def test_skip_and_limit_edges(api: LiveApi) -> None:
    resource = CALL_LOG_RESOURCE
    path = "/api/call-log/get-list"
    total = len(api.table_rows(resource.table.name, api.projects[0]))
    beyond = api.call("POST", f"{path}?skip={total + 5}", key=owner(api)).json()
    assert beyond == {"count": total, "limit": 10, "skip": total + 5, "data": []}
    assert api.call("POST", f"{path}?limit=0", key=owner(api)).json()["limit"] == 10
    assert api.call("POST", f"{path}?limit=10000", key=owner(api)).json()["limit"] == 10000
    body_paging = api.call("POST", path, key=owner(api), json={"skip": 2, "limit": 3}).json()
    assert (body_paging["skip"], body_paging["limit"], len(body_paging["data"])) == (2, 3, 3)
    query_wins = api.call(
        "POST", f"{path}?skip=1&limit=2", key=owner(api), json={"skip": 5, "limit": 9}
    )
    assert (query_wins.json()["skip"], query_wins.json()["limit"]) == (1, 2)
    for query, message in [
        ("limit=10001", "Limit should be less than 10000"),
        ("limit=-1", "limit cannot be less than 0"),
        ("skip=-3", "skip cannot be less than 0"),
        ("limit=ten", "limit must be a whole number, not 'ten'"),
        (f"skip={2**64}", "skip is too large"),
    ]:
        got = api.call("POST", f"{path}?{query}", key=owner(api))
        assert (got.status_code, got.json()) == (400, {"error": message}), query


def test_get_item_and_count(api: LiveApi) -> None:
    project = api.projects[0]
    for resource in ONEUPTIME_RESOURCES:
        rows = api.table_rows(resource.table.name, project)
        row = rows[len(rows) // 2]
        everything = {name: True for name in resource.fields}
        path = f"/api/{resource.path}/{row['id']}/get-item"
        got = api.call("POST", path, key=owner(api), json={"select": everything})
        assert (got.status_code, got.json()) == (
            200,
            api_record(resource, row, list(resource.fields)),
        )
        assert api.call("GET", path, key=owner(api)).json() == {"_id": str(row["id"])}
        # another project's row, or none at all: 200 {} as OneUptime
        assert api.call("GET", path, key=owner(api, 1)).json() == {}
        missing = f"/api/{resource.path}/{uuid.uuid4()}/get-item"
        assert (
            api.call("GET", missing, key=owner(api)).status_code,
            api.call("GET", missing, key=owner(api)).json(),
        ) == (200, {})
        bad = api.call("GET", f"/api/{resource.path}/12345/get-item", key=owner(api))
        assert (bad.status_code, bad.json()) == (
            400,
            {
                "error": 'Invalid ID format: "12345". Expected a valid UUID '
                '(e.g., "550e8400-e29b-41d4-a716-446655440000").'
            },
        )
        counted = api.call("POST", f"/api/{resource.path}/count", key=owner(api))
        assert counted.json() == {"count": len(rows)}


def test_values_are_plain_json_as_the_seeds_show_them(api: LiveApi) -> None:
    project = api.projects[0]
    parent = next(
        r
        for r in api.table_rows("incoming_call_log", project)
        if r["call_cost_in_usd_cents"] is not None
    )
    got = api.call(
        "POST",
        f"/api/incoming-call-log/{parent['id']}/get-item",
        key=owner(api),
        json={"select": {"callCostInUSDCents": True, "startedAt": True, "projectId": True}},
    )
    # money keeps its four decimals on the wire; times are RFC 3339 UTC with milliseconds
    cents = format(parent["call_cost_in_usd_cents"], "f")
    assert f'"callCostInUSDCents":{cents}' in got.text
    assert got.json()["startedAt"].endswith("Z") and len(got.json()["startedAt"]) == 24
    call = next(r for r in api.table_rows("call_log", project) if r["call_data"])
    data = api.call(
        "POST",
        f"/api/call-log/{call['id']}/get-item",
        key=owner(api),
        json={"select": {"callData": True}},
    ).json()
    assert isinstance(data["callData"], dict) and data["callData"] == api_json(
        CALL_LOG_RESOURCE.fields["callData"], call["call_data"]
    )


# ---- credentials and project scoping ------------------------------------------------------


def test_permission_matrix(api: LiveApi) -> None:
    project = api.projects[0]
    keys = api.keys[project]
    names = [r.value for r in ROLES] + [p.value for p in PERMISSIONS]
    for resource in ONEUPTIME_RESOURCES:
        for name in names:
            allowed = name in {r.value for r in ROLES} or name == READ_PERMISSION[resource.path]
            routes: list[tuple[str, str, dict[str, Any] | None]] = [
                ("POST", f"/api/{resource.path}/get-list", {}),
                ("GET", f"/api/{resource.path}/get-list", None),
                ("POST", f"/api/{resource.path}/count", {}),
                ("GET", f"/api/{resource.path}/{uuid.uuid4()}/get-item", None),
            ]
            for method, path, body in routes:
                got = api.call(method, path, key=keys[name], json=body)
                if allowed:
                    assert got.status_code == 200, (name, path, got.text)
                else:
                    assert (got.status_code, got.json()) == (
                        422,
                        {
                            "error": f"You do not have permissions to read {resource.title}. You "
                            "need one of these permissions: Project Owner, Project Admin, Project "
                            f"Member, Viewer, Read {resource.title}"
                        },
                    ), (name, path)
    for name in names:
        allowed = name in {r.value for r in ROLES} or name == "ReadCdr"
        got = api.call("GET", "/api/calllogs", bearer=keys[name])
        assert got.status_code == (200 if allowed else 403), (name, got.text)
        if not allowed:
            assert got.json()["errors"][0]["code"] == "FORBIDDEN"


def test_credentials_missing_bad_expired_or_revoked(api: LiveApi) -> None:
    keys = api.keys[api.projects[0]]
    path = "/api/incoming-call-log-item/get-list"
    assert api.call("POST", path).json() == {
        "error": "Authenticated user or a valid API key is needed to read record of Incoming "
        "Call Log Item."
    }
    assert api.call("POST", path).status_code == 401
    for secret in ("", "not-a-key", str(uuid.uuid4()), keys["expired"], keys["revoked"]):
        got = api.call("POST", path, key=secret)
        assert (got.status_code, got.json()) == (400, {"error": "Invalid API Key"}), secret
    # PortSIP: a bearer token, 401 otherwise, with PortSIP's error body
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": f"Bearer {keys['revoked']}"},
    ):
        got = api.call("GET", "/api/calllogs", headers=headers)
        assert got.status_code == 401 and got.json()["errors"][0]["code"] == "UNAUTHORIZED"
    # the OneUptime header does not open PortSIP's routes, nor the bearer OneUptime's
    assert api.call("GET", "/api/calllogs", key=keys["ProjectOwner"]).status_code == 401
    assert api.call("POST", path, bearer=keys["ProjectOwner"]).status_code == 401


def test_projects_never_see_each_other(api: LiveApi) -> None:
    _first, second = api.projects
    for resource in ONEUPTIME_RESOURCES:
        theirs = api.table_rows(resource.table.name, second)
        ids = [str(r["id"]) for r in theirs]
        # a projectId in the request narrows the key's project, never widens it
        for query in ({}, {"projectId": second}, {"_id": ids}):
            got = api.call(
                "POST",
                f"/api/{resource.path}/get-list?limit=10000",
                key=owner(api),
                json={"query": query},
            ).json()
            assert not set(ids) & {d["_id"] for d in got["data"]}
            counted = api.call(
                "POST", f"/api/{resource.path}/count", key=owner(api), json={"query": query}
            )
            if query:
                assert counted.json() == {"count": 0}
        assert (
            api.call("GET", f"/api/{resource.path}/{ids[0]}/get-item", key=owner(api)).json() == {}
        )
    their_cdr = api.table_rows("cdr", second)[0]["cdr_id"]
    got = api.call("GET", f"/api/calllogs/{their_cdr}", bearer=owner(api))
    assert got.status_code == 404
    listed = api.call(
        "GET", "/api/calllogs", bearer=owner(api), params={"filter": f"id eq '{their_cdr}'"}
    ).json()
    assert listed == {"count": 0, "items": []}
    their_item = api.table_rows("incoming_call_log_item", second)[0]["id"]
    for method, path in [
        ("PUT", f"/api/incoming-call-log-item/{their_item}"),
        ("POST", f"/api/incoming-call-log-item/{their_item}/update-item"),
    ]:
        got = api.call(method, path, key=owner(api), json={"data": {"statusMessage": "mine now"}})
        assert got.status_code == 404, got.text
    for method, path in [
        ("DELETE", f"/api/incoming-call-log-item/{their_item}"),
        ("POST", f"/api/incoming-call-log-item/{their_item}/delete-item"),
        ("GET", f"/api/incoming-call-log-item/{their_item}/delete-item"),
    ]:
        got = api.call(method, path, key=owner(api))
        assert got.status_code == 404, got.text


def test_read_only_resources_refuse_writes(api: LiveApi) -> None:
    some_id = str(uuid.uuid4())
    for resource in (INCOMING_CALL_LOG_RESOURCE, CALL_LOG_RESOURCE):
        base = f"/api/{resource.path}"
        for method, path, body, action in [
            ("POST", base, {"data": {"status": "Busy"}}, "create"),
            ("PUT", f"{base}/{some_id}", {"data": {"status": "Busy"}}, "update"),
            ("POST", f"{base}/{some_id}/update-item", {"data": {"status": "Busy"}}, "update"),
            ("DELETE", f"{base}/{some_id}", None, "delete"),
            ("POST", f"{base}/{some_id}/delete-item", None, "delete"),
            ("GET", f"{base}/{some_id}/delete-item", None, "delete"),
        ]:
            got = api.call(method, path, key=owner(api), json=body)
            assert (got.status_code, got.json()) == (
                422,
                {"error": f"{action} on {resource.title} is not allowed."},
            ), (method, path)
    # writing items needs ProjectOwner or ProjectAdmin
    keys = api.keys[api.projects[0]]
    for name in ("ProjectMember", "Viewer", "ReadIncomingCallLogItem"):
        got = api.call(
            "POST", "/api/incoming-call-log-item", key=keys[name], json={"data": {"status": "Busy"}}
        )
        assert (got.status_code, got.json()) == (
            422,
            {
                "error": "You do not have permissions to create Incoming Call Log Item. You need "
                "one of these permissions: Project Owner, Project Admin"
            },
        )


# ---- PortSIP /api/calllogs ------------------------------------------------------------------


def portsip_item(row: dict[str, Any], detail: bool = False) -> dict[str, Any]:
    names = list(PORTSIP_SUMMARY) + (["cost", "billed_account"] if detail else [])
    out: dict[str, Any] = {}
    for name in names:
        f = PORTSIP_FIELDS[name]
        value = row[f.column]
        if value is None:
            out[name] = None if f.kind in (Kind.INT, Kind.DECIMAL) else ""
        else:
            out[name] = api_json(f, value)
    return out


def portsip_expected(
    api: LiveApi,
    keep: Callable[[dict[str, Any]], bool],
    order: list[tuple[str, bool]] | None = None,
    skip: int = 0,
    top: int = 100,
) -> dict[str, Any]:
    rows = [r for r in api.table_rows("cdr", api.projects[0]) if keep(r)]
    sort = [(PORTSIP_FIELDS[n], d) for n, d in (order or [("started_at", False)])]
    if not any(f.name == "id" for f, _ in sort):
        sort.append((PORTSIP_FIELDS["id"], False))
    ordered = oracle_sort(rows, sort)
    return {"count": len(rows), "items": [portsip_item(r) for r in ordered[skip : skip + top]]}


def options(query: str) -> dict[str, str]:
    """`a=1&b=2` as query parameters (httpx encodes them: a `+` must not become a space)."""
    return dict(part.split("=", 1) for part in query.split("&"))


def test_calllogs_list_filter_orderby_search(api: LiveApi) -> None:
    key = api.keys[api.projects[0]]["ReadCdr"]
    rows = api.table_rows("cdr", api.projects[0])
    assert rows, "the traffic has CDRs"
    got = api.call("GET", "/api/calllogs", bearer=key)
    assert got.json() == portsip_expected(api, lambda r: True)
    some = rows[len(rows) // 2]
    caller, duration = some["caller"], some["duration"]
    # The search needs a display name, which a CDR may lack: the first one from the middle on.
    named = next(
        r["caller_display_name"]
        for r in rows[len(rows) // 2 :] + rows[: len(rows) // 2]
        if r["caller_display_name"]
    )
    cases: list[
        tuple[str, Callable[[dict[str, Any]], bool], list[tuple[str, bool]] | None, int, int]
    ] = [
        (f"filter=caller eq '{caller}'", lambda r: r["caller"] == caller, None, 0, 100),
        (
            f"$filter=caller ne '{caller}'",
            lambda r: r["caller"] is not None and r["caller"] != caller,
            None,
            0,
            100,
        ),
        (
            f"filter=duration ge {duration} and direction eq '{some['direction']}'",
            lambda r: (
                r["duration"] is not None
                and r["duration"] >= duration
                and r["direction"] == some["direction"]
            ),
            None,
            0,
            100,
        ),
        (
            f"filter=(duration lt {duration}) or startswith(caller, '{caller[:2].upper()}')",
            lambda r: (
                (r["duration"] is not None and r["duration"] < duration)
                or (r["caller"] or "").lower().startswith(caller[:2].lower())
            ),
            None,
            0,
            100,
        ),
        ("filter=answered_at eq null", lambda r: r["answered_at"] is None, None, 0, 100),
        (
            "filter=contains(callee_display_name,'DESK')",
            lambda r: "desk" in (r["callee_display_name"] or "").lower(),
            None,
            0,
            100,
        ),
        (
            "orderby=duration desc, caller&top=5&skip=2",
            lambda r: True,
            [("duration", True), ("caller", False)],
            2,
            5,
        ),
        (
            f"search={named[:3].upper()}",
            lambda r: any(
                named[:3].lower() in (r[c] or "").lower()
                for c in ("caller", "callee", "caller_display_name", "callee_display_name")
            ),
            None,
            0,
            100,
        ),
    ]
    for query, keep, order, skip, top in cases:
        got = api.call("GET", "/api/calllogs", bearer=key, params=options(query))
        assert got.status_code == 200, (query, got.text)
        assert got.json() == portsip_expected(api, keep, order, skip, top), query
    detail = api.call("GET", f"/api/calllogs/{some['cdr_id']}", bearer=key)
    assert detail.json() == portsip_item(some, detail=True)
    missing = api.call("GET", "/api/calllogs/no-such-record", bearer=key)
    assert (missing.status_code, missing.json()["errors"][0]["code"]) == (404, "NOT_FOUND")
    for query, detail_text in [
        ("top=101", "top cannot be more than 100"),
        ("top=0", "top must be between 1 and 100"),
        ("skip=-1", "skip cannot be less than 0"),
        ("filter=caller eq", "filter: Failed to parse"),
        ("filter=bogus eq 1", "filter: unknown field 'bogus'"),
        ("orderby=caller sideways", "orderby: direction must be asc or desc"),
    ]:
        got = api.call("GET", "/api/calllogs", bearer=key, params=options(query))
        assert got.status_code == 400, query
        error = got.json()["errors"][0]
        assert (error["code"], error["message"]) == ("VALIDATE_FAILED", "field validation failed")
        assert detail_text in error["detail"], (query, error)


# ---- bad input --------------------------------------------------------------------------------

ONEUPTIME_CORPUS: list[tuple[str, str, bytes | None, int, str]] = [
    # (method, path, raw body, status, words the error must contain)
    ("POST", "/api/call-log/get-list", b'{"query": {', 400, "malformed JSON body"),
    ("POST", "/api/call-log/get-list", b"[1, 2]", 400, "valid dictionary"),
    ("POST", "/api/call-log/get-list", b'{"bogus": 1}', 400, "unknown field 'bogus'"),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"query": {"bogus": 1}}',
        400,
        "Invalid column on Call Log - bogus",
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"query": {"status": {"_type": "Like", "value": "%"}}}',
        400,
        "Unknown operator 'Like' on status",
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"query": {"callDurationInSeconds": "long"}}',
        400,
        "Invalid value for callDurationInSeconds: 'long' is not a whole number",
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"query": {"userId": 42}}',
        400,
        "Invalid value for userId: 42 is not a UUID",
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"query": "status = 1"}',
        400,
        "query: Input should be a valid dictionary",
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"select": {"status; DROP TABLE call_log": true}}',
        400,
        'Cannot select on "status; DROP TABLE call_log"',
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"sort": {"1=1) --": "ASC"}}',
        400,
        'Cannot sort on "1=1) --"',
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"sort": {"status": "ASC; DROP"}}',
        400,
        'sort.status must be "ASC", "DESC", 1 or -1',
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"limit": 100000000}',
        400,
        "Limit should be less than 10000",
    ),
    ("POST", "/api/call-log/get-list", b'{"limit": -1}', 400, "limit cannot be less than 0"),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"limit": "10"}',
        400,
        "limit: Input should be a valid integer",
    ),
    (
        "POST",
        "/api/call-log/get-list?limit=99999999999999999999999",
        b"",
        400,
        "Limit should be less than 10000",
    ),
    ("POST", "/api/call-log/get-list?skip=-7", b"", 400, "skip cannot be less than 0"),
    (
        "POST",
        "/api/call-log/count",
        b'{"query": {"createdAt": {"_type": "GreaterThan", "value": "soon"}}}',
        400,
        "is not an RFC 3339 date-time",
    ),
    ("GET", "/api/call-log/1%27%20OR%201=1/get-item", None, 400, 'Invalid ID format: "1\' OR 1=1"'),
    (
        "POST",
        "/api/incoming-call-log-item",
        b'{"data": {"incomingCallLogId": "nope", "status": "Busy"}}',
        400,
        "incomingCallLogId must be a UUID",
    ),
    ("POST", "/api/incoming-call-log-item", b'{"date": {}}', 400, "unknown field 'date'"),
    (
        "PUT",
        f"/api/incoming-call-log-item/{uuid.UUID(int=1)}",
        b'{"data": {"dialDurationInSeconds": 5}}',
        400,
        "dialDurationInSeconds cannot be set: it is computed",
    ),
    (
        "GET",
        "/api/no-such-resource/get-list",
        None,
        404,
        "Page not found - /api/no-such-resource/get-list",
    ),
    (
        "POST",
        "/api/call-log/get-list",
        b'{"query": {"toNumber": "' + b"x" * (1024 * 1024) + b'"}}',
        413,
        "request body larger than 1048576 bytes",
    ),
]


def test_bad_input_gets_a_clear_4xx_and_ingestion_goes_on(api: LiveApi) -> None:
    from tests.support import builders as b
    from tests.support.call_rows import by_call, expected_tables, read_tables
    from tests.support.in_process_worker import produce

    for method, path, body, status, words in ONEUPTIME_CORPUS:
        headers = {"Content-Type": "application/json"}
        got = api.call(method, path, key=owner(api), content=body, headers=headers)
        assert got.status_code == status, (path, body and body[:80], got.text[:300])
        message = got.json()["error"]
        assert words in message, (path, message)
        assert "Traceback" not in got.text and owner(api) not in got.text
    # a SQL-looking value is only ever a value: no match, no error
    sneaky = {
        "query": {"status": "x' OR '1'='1", "toNumber": {"_type": "Search", "value": "%' --"}}
    }
    got = api.call("POST", "/api/call-log/get-list", key=owner(api), json=sneaky)
    assert (got.status_code, got.json()["count"]) == (200, 0)
    bearer = api.keys[api.projects[0]]["ReadCdr"]
    for query, words in [
        ({"filter": "caller eq '1' or"}, "filter: Failed to parse"),
        ({"filter": "caller eq '1'; DROP TABLE cdr"}, "filter"),
        ({"filter": "(caller eq '1'"}, "filter"),
        ({"orderby": "caller; DROP TABLE cdr"}, "orderby"),
        ({"top": "1e9"}, "top must be a whole number"),
        ({"search": "x" * 201}, "search is longer than 200 characters"),
    ]:
        got = api.call("GET", "/api/calllogs", bearer=bearer, params=query)
        assert got.status_code == 400, (query, got.text)
        assert words in got.json()["errors"][0]["detail"], (query, got.json())
    # the worker went on ingesting meanwhile, with exact rows
    events = [*b.answered_on_second_attempt("api-bad-input"), *b.nobody_answers("api-bad-2")]
    api.submit(produce(api.settings, [b.encode(e) for e in events]))
    api.submit(api.run.drained())
    rows = read_tables(api.run.worker.store)
    mine = {t: [r for r in rs if r["project_id"] == b.PROJECT] for t, rs in rows.items()}
    assert mine == expected_tables(by_call(events))
