"""Item create, update and delete: each publishes one section 2 event, never a table write.

create and update publish `incoming_call.item_amended` (source `api`), delete publishes
`incoming_call.item_deleted`; the worker applies them by the "Amendments" rules of DESIGN.md
section 3, so the rows stay a function of the events and `call_event` keeps who changed what.
A request is answered only once Kafka has the event (acks=all): a client that sees an error
retries, and a retried amendment with the same values changes nothing.

The event is checked by the worker's own decoder before it is published, so a value the
worker would dead-letter is a 400 here instead, naming the API's field.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any, Final

from worker.api.access import may_write, write_refusal
from worker.api.context import ApiContext
from worker.api.errors import ApiError, Failure
from worker.api.fields import INCOMING_CALL_LOG_RESOURCE, Kind, Resource
from worker.api.keys import ApiKey
from worker.api.sql import Params, scoped_where, select_rows
from worker.api.values import iso_millis, json_value
from worker.core.correlation import row_id
from worker.core.decode import Rejection, validate_object

SOURCE: Final = "api"

# API field -> event field of incoming_call.item_amended (DESIGN.md section 2).
AMENDABLE: Final = {
    "status": "status",
    "statusMessage": "status_message",
    "isAnswered": "is_answered",
    "callCostInUSDCents": "call_cost_usd_cents",
    "userId": "user_id",
    "userPhoneNumber": "user_phone_number",
    "incomingCallPolicyEscalationRuleId": "escalation_rule_id",
}
EVENT_TO_API: Final = {event: api for api, event in AMENDABLE.items()}
# Accepted in `data` without effect: the key decides the project, the path the item.
IGNORED: Final = frozenset({"projectId", "_id"})


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and "_type" in value and "value" in value:
        return value["value"]
    return value


class ItemWrites:
    def __init__(self, resource: Resource) -> None:
        self.resource = resource

    def check_permission(self, key: ApiKey, action: str) -> None:
        if not may_write(key):
            raise ApiError(Failure.NOT_PERMITTED, write_refusal(action, self.resource.title))

    # ---- the three writes -------------------------------------------------------------

    async def create(self, ctx: ApiContext, key: ApiKey, data: dict[str, Any]) -> dict[str, Any]:
        data = dict(data)
        parent_id = self._uuid(_unwrap(data.pop("incomingCallLogId", None)), "incomingCallLogId")
        dial_id = _unwrap(data.pop("dialId", None))
        if dial_id is None:
            dial_id = str(uuid.uuid4())
        if not isinstance(dial_id, str) or not 1 <= len(dial_id) <= 128:
            raise ApiError(Failure.BAD_REQUEST, "dialId must be a string of 1 to 128 characters")
        call_id = await self._parent_call_id(ctx, key, parent_id)
        if call_id is None:
            raise ApiError(
                Failure.BAD_REQUEST,
                f"incomingCallLogId {parent_id} is not an Incoming Call Log of this project",
            )
        fields = self._amended(data)
        await self._publish(ctx, key, call_id, "incoming_call.item_amended", dial_id, fields)
        answer: dict[str, Any] = {
            "_id": row_id("incoming_call_log_item", key.project_id, call_id, dial_id),
            "projectId": key.project_id,
            "incomingCallLogId": parent_id,
            "dialId": dial_id,
        }
        for name, value in fields.items():
            api_name = EVENT_TO_API[name]
            kind = self.resource.fields[api_name].kind
            # As the row will hold it (money a JSON number, as the response schema says).
            answer[api_name] = json_value(
                kind, Decimal(str(value)) if kind is Kind.DECIMAL else value
            )
        return answer

    async def update(
        self, ctx: ApiContext, key: ApiKey, item_id: str, data: dict[str, Any]
    ) -> None:
        fields = self._amended(dict(data))
        call_id, dial_id = await self._item(ctx, key, item_id)
        await self._publish(ctx, key, call_id, "incoming_call.item_amended", dial_id, fields)

    async def delete(self, ctx: ApiContext, key: ApiKey, item_id: str) -> None:
        call_id, dial_id = await self._item(ctx, key, item_id)
        await self._publish(ctx, key, call_id, "incoming_call.item_deleted", dial_id, {})

    # ---- parts --------------------------------------------------------------------------

    def _amended(self, data: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {}
        for name, value in data.items():
            if name in IGNORED:
                continue
            event_field = AMENDABLE.get(name)
            if event_field is None:
                if self.resource.field(name) is None:
                    raise ApiError(
                        Failure.BAD_REQUEST,
                        f"Invalid column on {self.resource.title} - {name}. Column does not exist.",
                    )
                raise ApiError(
                    Failure.BAD_REQUEST,
                    f"{name} cannot be set: it is computed from the call's events. Fields that "
                    "can be set: " + ", ".join(AMENDABLE),
                )
            fields[event_field] = _unwrap(value)
        if not fields:
            raise ApiError(
                Failure.BAD_REQUEST,
                "data must set at least one of: " + ", ".join(AMENDABLE),
            )
        return fields

    @staticmethod
    def _uuid(value: Any, name: str) -> str:
        if value is None:
            raise ApiError(Failure.BAD_REQUEST, f"{name} is required")
        try:
            return str(uuid.UUID(str(value)))
        except ValueError:
            raise ApiError(Failure.BAD_REQUEST, f"{name} must be a UUID, not {value!r}") from None

    async def _parent_call_id(self, ctx: ApiContext, key: ApiKey, parent_id: str) -> str | None:
        parent = INCOMING_CALL_LOG_RESOURCE
        params = Params()
        where = scoped_where(
            "project_id", key.project_id, [f"`id` = {params.bind(parent_id, 'UUID')}"], params
        )
        call = parent.fields["callProviderCallId"]
        rows = await ctx.rows(
            select_rows(ctx.database, parent.table, [call], where, [], 0, 1, params)
        )
        return str(rows[0][0]) if rows else None

    async def _item(self, ctx: ApiContext, key: ApiKey, item_id: str) -> tuple[str, str]:
        """(call_id, dial_id) of an item of the key's project; 404 when there is none."""
        params = Params()
        where = scoped_where(
            "project_id", key.project_id, [f"`id` = {params.bind(item_id, 'UUID')}"], params
        )
        wanted = [self.resource.fields["incomingCallLogId"], self.resource.fields["dialId"]]
        rows = await ctx.rows(
            select_rows(ctx.database, self.resource.table, wanted, where, [], 0, 1, params)
        )
        call_id = await self._parent_call_id(ctx, key, str(rows[0][0])) if rows else None
        if not rows or call_id is None:
            raise ApiError(
                Failure.NOT_FOUND, f"{self.resource.title} {item_id} does not exist in this project"
            )
        return call_id, str(rows[0][1])

    async def _publish(
        self,
        ctx: ApiContext,
        key: ApiKey,
        call_id: str,
        event_type: str,
        dial_id: str,
        fields: dict[str, Any],
    ) -> None:
        event: dict[str, Any] = {
            "schema_version": 1,
            "event_id": f"api-{uuid.uuid4()}",
            "type": event_type,
            "occurred_at": iso_millis(dt.datetime.now(dt.UTC)),
            "project_id": key.project_id,
            "call_id": call_id,
            "source": SOURCE,
            "dial_id": dial_id,
            **fields,
        }
        checked = validate_object(dict(event))
        if isinstance(checked, Rejection):
            name = EVENT_TO_API.get(checked.field or "", checked.field)
            raise ApiError(
                Failure.BAD_REQUEST,
                f"Invalid value for {name}: {checked.message}" if name else checked.message,
            )
        await ctx.publish(call_id, event)
