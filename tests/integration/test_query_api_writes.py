"""Item create, update and delete through the OneUptime-compatible API, with the worker
running: each write is an event on the input topic, applied by the worker; the rows read back
through the API and with SQL are exactly the pure core's rows for the call's events (the
API's own events included, read back from call_event), and `ringlog rebuild` rewrites the
same rows."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from tests.support import builders as b
from tests.support.call_rows import by_call, expected_tables, read_tables
from tests.support.live_api import LiveApi, live_api
from worker.adapters.clickhouse.store import ClickHouseStore
from worker.cli.main import app
from worker.core.correlation import row_id

pytestmark = pytest.mark.kafka

CALL = "api-writes"


def item_id(dial: str) -> str:
    return row_id("incoming_call_log_item", b.PROJECT, CALL, dial)


def mine(tables: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    return {t: [r for r in rows if r["project_id"] == b.PROJECT] for t, rows in tables.items()}


def api_events(api: LiveApi) -> list[dict[str, Any]]:
    rows = api.sql(
        f"SELECT payload FROM {api.settings.database}.call_event FINAL "
        f"WHERE source = 'api' ORDER BY occurred_at, event_id"
    )
    return [orjson.loads(r["payload"]) for r in rows]


def test_create_update_delete_then_rebuild(kafka_bootstrap: str, chdb_store_url: str) -> None:
    events = b.answered_on_second_attempt(CALL)
    extra = [b.encode(e) for e in events]
    parent = row_id("incoming_call_log", b.PROJECT, CALL)
    with live_api(kafka_bootstrap, chdb_store_url, calls=20, extra=extra) as api:
        keys = api.keys[b.PROJECT]
        owner, admin = keys["ProjectOwner"], keys["ProjectAdmin"]
        other_parent = api.table_rows("incoming_call_log", api.projects[0])[0]["id"]
        if api.projects[0] == b.PROJECT:
            other_parent = api.table_rows("incoming_call_log", api.projects[1])[0]["id"]

        # create: the answer carries the deterministic _id, before the worker wrote anything
        created = api.call(
            "POST",
            "/api/incoming-call-log-item",
            key=owner,
            json={
                "data": {
                    "incomingCallLogId": {"_type": "ObjectID", "value": parent},
                    "dialId": "manual-1",
                    "status": "Completed",
                    "isAnswered": True,
                    "callCostInUSDCents": "1.2500",
                    "userPhoneNumber": {"_type": "Phone", "value": "+15550333"},
                }
            },
        )
        assert (created.status_code, created.json()) == (
            200,
            {
                "_id": item_id("manual-1"),
                "projectId": b.PROJECT,
                "incomingCallLogId": parent,
                "dialId": "manual-1",
                "status": "Completed",
                "isAnswered": True,
                "callCostInUSDCents": 1.25,
                "userPhoneNumber": "+15550333",
            },
        )
        assert '"callCostInUSDCents":1.2500' in created.text
        api.submit(api.run.drained())
        read = api.call(
            "GET", f"/api/incoming-call-log-item/{item_id('manual-1')}/get-item", key=owner
        )
        assert read.json() == {"_id": item_id("manual-1")}
        cost = api.call(
            "POST",
            f"/api/incoming-call-log-item/{item_id('manual-1')}/get-item",
            key=owner,
            json={"select": {"callCostInUSDCents": True, "costSource": True, "status": True}},
        )
        assert cost.json() == {
            "_id": item_id("manual-1"),
            "status": "Completed",
            "callCostInUSDCents": 1.25,
            "costSource": "manual",
        }

        # update an item the dial events made (an admin may), through both routes
        first = api.call(
            "PUT",
            f"/api/incoming-call-log-item/{item_id(f'{CALL}-2')}",
            key=admin,
            json={"data": {"callCostInUSDCents": 9.5, "statusMessage": "refund agreed"}},
        )
        assert (first.status_code, first.json()) == (200, {})
        second = api.call(
            "POST",
            f"/api/incoming-call-log-item/{item_id(f'{CALL}-2')}/update-item",
            key=owner,
            json={"data": {"statusMessage": "refund paid"}},
        )
        assert (second.status_code, second.json()) == (200, {})
        api.submit(api.run.drained())

        # delete the created item: hidden from FINAL, out of the parent's totals
        gone = api.call("DELETE", f"/api/incoming-call-log-item/{item_id('manual-1')}", key=owner)
        assert (gone.status_code, gone.json()) == (200, {})
        api.submit(api.run.drained())
        assert (
            api.call(
                "GET", f"/api/incoming-call-log-item/{item_id('manual-1')}/get-item", key=owner
            ).json()
            == {}
        )
        again = api.call("DELETE", f"/api/incoming-call-log-item/{item_id('manual-1')}", key=owner)
        assert again.status_code == 404  # nothing left to delete in this project

        # refusals: nothing published
        refusals = [
            (
                "POST",
                "/api/incoming-call-log-item",
                {"data": {"incomingCallLogId": str(other_parent), "status": "Busy"}},
                400,
                "is not an Incoming Call Log of this project",
            ),
            (
                "POST",
                "/api/incoming-call-log-item",
                {"data": {"incomingCallLogId": parent}},
                400,
                "data must set at least one of",
            ),
            (
                "POST",
                "/api/incoming-call-log-item",
                {"data": {"incomingCallLogId": parent, "status": "Bored"}},
                400,
                "Invalid value for status",
            ),
            (
                "POST",
                "/api/incoming-call-log-item",
                {"data": {"incomingCallLogId": parent, "callCostInUSDCents": -1}},
                400,
                "Invalid value for callCostInUSDCents",
            ),
            (
                "PUT",
                f"/api/incoming-call-log-item/{item_id('never')}",
                {"data": {"status": "Busy"}},
                404,
                "does not exist in this project",
            ),
        ]
        for method, path, body, status, words in refusals:
            got = api.call(method, path, key=owner, json=body)
            assert got.status_code == status and words in got.json()["error"], got.text

        published = api_events(api)
        assert [(e["type"], e["dial_id"], e["source"]) for e in published] == [
            ("incoming_call.item_amended", "manual-1", "api"),
            ("incoming_call.item_amended", f"{CALL}-2", "api"),
            ("incoming_call.item_amended", f"{CALL}-2", "api"),
            ("incoming_call.item_deleted", "manual-1", "api"),
        ]
        expected = expected_tables(by_call([*events, *published]))
        assert mine(read_tables(api.run.worker.store)) == expected
        parent_row = api.call(
            "POST",
            f"/api/incoming-call-log/{parent}/get-item",
            key=owner,
            json={"select": {"dialAttempts": True, "outgoingCallCostInUSDCents": True}},
        ).json()
        assert parent_row["dialAttempts"] == 2  # the deleted item counts no more
        settings = api.settings

    # rebuild from call_event (the worker stopped: it owned the embedded store)
    result = CliRunner().invoke(
        app,
        [
            "rebuild",
            "--clickhouse-url",
            settings.clickhouse_url,
            "--database",
            settings.database,
            "--rates-file",
            str(settings.rates_file),
            "--project",
            b.PROJECT,
        ],
    )
    assert result.exit_code == 0, result.output
    with ClickHouseStore(settings.clickhouse_url, settings.database) as store:
        assert mine(read_tables(store)) == expected
