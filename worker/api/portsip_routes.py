"""PortSIP-compatible call logs (DESIGN.md section 6): `GET /api/calllogs` and
`GET /api/calllogs/{id}` over the cdr table, with PortSIP's query options (`filter`,
`orderby`, `skip`, `top`, `search`; the `$`-prefixed spellings too), its field names, its
`{"count", "items"}` envelope, `Authorization: Bearer` and `{"errors": [...]}` bodies.
"""

from __future__ import annotations

from typing import Annotated, Any, Final

import orjson
from fastapi import APIRouter, Depends, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from schemas.tables import CDR
from worker.api.access import may_read, read_refusal
from worker.api.context import ApiContext, ContextProvider, context_of, remember_key
from worker.api.errors import ApiError, Failure
from worker.api.fields import PORTSIP_DETAIL, PORTSIP_FIELDS, PORTSIP_SUMMARY, Field
from worker.api.keys import ApiKey, Permission
from worker.api.models import PortsipError
from worker.api.odata_filter import filter_sql, orderby, search_sql
from worker.api.oneuptime_query import BadRequest
from worker.api.sql import Params, count_rows, scoped_where, select_rows
from worker.api.values import iso_millis, json_value

DEFAULT_TOP: Final = 100
MAX_TOP: Final = 100
MAX_SEARCH: Final = 200

BEARER = HTTPBearer(auto_error=False, description="A ringlog API key (`ringlog apikey create`)")

# Module level: FastAPI resolves the (postponed) annotations of the handlers here.
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(BEARER)]

SUMMARY_FIELDS: Final = [PORTSIP_FIELDS[name] for name in PORTSIP_SUMMARY]
DETAIL_FIELDS: Final = [PORTSIP_FIELDS[name] for name in PORTSIP_DETAIL]

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": PortsipError, "description": text}
    for status, text in (
        (400, "VALIDATE_FAILED: a bad query option"),
        (401, "UNAUTHORIZED: no token or a bad one"),
        (403, "FORBIDDEN: the key may not read call logs"),
        (404, "NOT_FOUND"),
        (503, "ClickHouse unavailable"),
    )
}


class CallLogSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str
    session_id: str
    caller: str
    caller_domain: str
    caller_display_name: str
    callee: str
    callee_domain: str
    callee_display_name: str
    started_at: str
    rang_at: str
    answered_at: str
    ended_at: str
    call_id: str
    direction: str
    end_reason: str
    reroute_reason: str
    status_code: int | None
    destination: str
    outbound_caller_id: str
    did_cid: str
    trunk: str
    duration: int | None
    service_number: str
    user_data: str


class CallLogDetail(CallLogSummary):
    cost: float | None
    billed_account: str


class CallLogList(BaseModel):
    count: int
    items: list[CallLogSummary]


def _value(f: Field, value: object) -> Any:
    # As PortSIP's own examples: an absent text or time is "", not null.
    if value is None:
        return None if f.kind in (f.kind.INT, f.kind.DECIMAL) else ""
    if f.kind is f.kind.DATETIME:
        return iso_millis(value)  # type: ignore[arg-type]
    return json_value(f.kind, value)


def _item(fields: list[Field], row: tuple[object, ...]) -> dict[str, Any]:
    return {f.name: _value(f, v) for f, v in zip(fields, row, strict=True)}


def portsip_router(provider: ContextProvider) -> APIRouter:
    router = APIRouter(prefix="/api", tags=["PortSIP call logs"], responses=ERRORS)

    async def reader(
        request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> tuple[ApiContext, ApiKey]:
        ctx = context_of(provider)
        if credentials is None or not credentials.credentials.strip():
            raise ApiError(Failure.NO_CREDENTIALS, "send `Authorization: Bearer <API key>`")
        key = await ctx.key(credentials.credentials)
        if key is None:
            raise ApiError(Failure.BAD_KEY, "the token is not a valid API key")
        remember_key(request, key)
        if not may_read(key, Permission.READ_CDR):
            raise ApiError(Failure.NOT_PERMITTED, read_refusal("Cdr", Permission.READ_CDR))
        return ctx, key

    @router.get("/calllogs", response_model=CallLogList, operation_id="listCallLogs")
    async def list_call_logs(
        request: Request,
        credentials: Credentials,
        filter: Annotated[
            str | None,
            Query(description="OData: eq ne gt ge lt le and or ( ) startswith endswith contains"),
        ] = None,
        orderby_: Annotated[
            str | None, Query(alias="orderby", description="`field [asc|desc], ...`")
        ] = None,
        skip: Annotated[str | None, Query(description="Records to skip (default 0)")] = None,
        top: Annotated[
            str | None, Query(description="Records to answer, 1..100 (default 100)")
        ] = None,
        search: Annotated[
            str | None, Query(description="Free text over caller, callee and display names")
        ] = None,
        count: Annotated[
            str | None, Query(description="Accepted for compatibility: count is always answered")
        ] = None,
    ) -> Response:
        ctx, key = await reader(request, credentials)
        options = {k.lstrip("$"): v for k, v in request.query_params.items()}
        try:
            first = _number("skip", options.get("skip"), 0, None)
            size = _number("top", options.get("top"), DEFAULT_TOP, MAX_TOP)
            if size < 1:
                raise BadRequest("top must be between 1 and 100")
            params = Params()
            where_parts: list[str] = []
            if options.get("filter"):
                where_parts.append(filter_sql(options["filter"], params))
            text = options.get("search")
            if text:
                if len(text) > MAX_SEARCH:
                    raise BadRequest(f"search is longer than {MAX_SEARCH} characters")
                where_parts.append(search_sql(text, params))
            order = orderby(options.get("orderby"))
            where = scoped_where("project_id", key.project_id, where_parts, params)
        except BadRequest as exc:
            raise ApiError(Failure.BAD_REQUEST, str(exc)) from None
        total = await ctx.rows(count_rows(ctx.database, CDR, where, params))
        rows = await ctx.rows(
            select_rows(ctx.database, CDR, SUMMARY_FIELDS, where, order, first, size, params)
        )
        body = {"count": int(total[0][0]), "items": [_item(SUMMARY_FIELDS, r) for r in rows]}  # type: ignore[call-overload]
        return Response(orjson.dumps(body), media_type="application/json")

    @router.get(
        "/calllogs/{record_id}", response_model=CallLogDetail, operation_id="retrieveCallLog"
    )
    async def get_call_log(request: Request, record_id: str, credentials: Credentials) -> Response:
        ctx, key = await reader(request, credentials)
        params = Params()
        where = scoped_where(
            "project_id", key.project_id, [f"`cdr_id` = {params.bind(record_id, 'String')}"], params
        )
        rows = await ctx.rows(
            select_rows(ctx.database, CDR, DETAIL_FIELDS, where, [], 0, 1, params)
        )
        if not rows:
            raise ApiError(Failure.NOT_FOUND, f"no call log with id {record_id!r}")
        return Response(orjson.dumps(_item(DETAIL_FIELDS, rows[0])), media_type="application/json")

    return router


def _number(name: str, value: str | None, default: int, maximum: int | None) -> int:
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {value!r}") from None
    if number < 0:
        raise BadRequest(f"{name} cannot be less than 0")
    if maximum is not None and number > maximum:
        raise BadRequest(f"{name} cannot be more than {maximum}")
    if number >= 2**63:
        raise BadRequest(f"{name} is too large")
    return number
