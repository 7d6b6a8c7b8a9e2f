"""OneUptime-compatible routes (DESIGN.md section 6): list, count and get-item of
`/api/incoming-call-log`, `/api/incoming-call-log-item` and `/api/call-log`, with OneUptime's
alternate routes, its `ApiKey` header, its status codes and `{"error": ...}` bodies.

Create, update and delete exist for every resource, as in OneUptime; on the read-only ones
they answer 422 ("... is not allowed"). On items they publish events (`item_writes`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.security import APIKeyHeader
from starlette.responses import Response

from worker.api.access import may_read, read_refusal
from worker.api.context import ApiContext, ContextProvider, context_of, remember_key
from worker.api.errors import ApiError, Failure
from worker.api.fields import (
    CALL_LOG_RESOURCE,
    INCOMING_CALL_LOG_ITEM_RESOURCE,
    INCOMING_CALL_LOG_RESOURCE,
    ONEUPTIME_RESOURCES,
    Resource,
)
from worker.api.item_writes import ItemWrites
from worker.api.keys import ApiKey, Permission
from worker.api.models import (
    CountBody,
    CountResponse,
    Empty,
    ItemBody,
    ListBody,
    OneUptimeError,
    WriteBody,
    list_model,
    record_model,
)
from worker.api.oneuptime_query import BadRequest, conditions, ordering, paging, selected
from worker.api.sql import Params, count_rows, scoped_where, select_rows
from worker.api.values import record

API_KEY_HEADER = APIKeyHeader(
    name="ApiKey", auto_error=False, description="A ringlog API key (`ringlog apikey create`)"
)

# Module level: FastAPI resolves the (postponed) annotations of the handlers here.
Secret = Annotated[str | None, Depends(API_KEY_HEADER)]

READ_PERMISSIONS = {
    INCOMING_CALL_LOG_RESOURCE.path: Permission.READ_INCOMING_CALL_LOG,
    INCOMING_CALL_LOG_ITEM_RESOURCE.path: Permission.READ_INCOMING_CALL_LOG_ITEM,
    CALL_LOG_RESOURCE.path: Permission.READ_CALL_LOG,
}

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": OneUptimeError, "description": text}
    for status, text in (
        (400, "Bad request: the message names the field, operator or value"),
        (401, "No API key"),
        (404, "Update or delete of an item the key's project does not have"),
        (413, "Body larger than 1 MiB"),
        (422, "The key may not do this"),
        (503, "ClickHouse or Kafka unavailable"),
    )
}


def json_response(body: object) -> Response:
    return Response(orjson.dumps(body), media_type="application/json")


def bad_request(exc: BadRequest) -> ApiError:
    return ApiError(Failure.BAD_REQUEST, str(exc))


def checked_id(item_id: str) -> str:
    try:
        return str(uuid.UUID(item_id))
    except ValueError:
        raise ApiError(
            Failure.BAD_REQUEST,
            f'Invalid ID format: "{item_id}". Expected a valid UUID '
            '(e.g., "550e8400-e29b-41d4-a716-446655440000").',
        ) from None


async def authenticate(
    request: Request, ctx: ApiContext, secret: str | None, action: str, title: str
) -> ApiKey:
    # The raw header: FastAPI's APIKeyHeader (kept for the OpenAPI document) reads an empty
    # header as none, but OneUptime answers an empty key as an invalid one.
    secret = request.headers.get(API_KEY_HEADER.model.name)
    if secret is None:
        raise ApiError(
            Failure.NO_CREDENTIALS,
            f"Authenticated user or a valid API key is needed to {action} record of {title}.",
        )
    key = await ctx.key(secret) if secret.strip() else None
    if key is None:
        raise ApiError(Failure.BAD_KEY, "Invalid API Key")
    remember_key(request, key)
    return key


def oneuptime_router(provider: ContextProvider) -> APIRouter:
    router = APIRouter(prefix="/api", responses=ERRORS)
    for resource in ONEUPTIME_RESOURCES:
        _add_resource(router, resource, provider)
    return router


def _add_resource(router: APIRouter, resource: Resource, provider: ContextProvider) -> None:
    permission = READ_PERMISSIONS[resource.path]
    record_type = record_model(resource.title.replace(" ", ""), resource.fields)
    list_type = list_model(resource, record_type)

    async def reader(request: Request, secret: str | None) -> tuple[ApiContext, ApiKey]:
        ctx = context_of(provider)
        key = await authenticate(request, ctx, secret, "read", resource.title)
        if not may_read(key, permission):
            raise ApiError(Failure.NOT_PERMITTED, read_refusal(resource.title, permission))
        return ctx, key

    async def get_list(
        request: Request,
        secret: Secret,
        body: Annotated[ListBody | None, Body()] = None,
        skip: Annotated[str | None, Query(description="Rows to skip (default 0)")] = None,
        limit: Annotated[
            str | None, Query(description="Rows to answer, 1..10000 (default 10)")
        ] = None,
    ) -> Response:
        ctx, key = await reader(request, secret)
        spec = body or ListBody()
        try:
            first, size = paging(skip, limit, spec.model_dump(include={"skip", "limit"}))
            columns = selected(resource, spec.select)
            order = ordering(resource, spec.sort)
            params = Params()
            where = scoped_where(
                "project_id", key.project_id, conditions(resource, spec.query, params), params
            )
        except BadRequest as exc:
            raise bad_request(exc) from None
        count = await ctx.rows(count_rows(ctx.database, resource.table, where, params))
        rows = await ctx.rows(
            select_rows(ctx.database, resource.table, columns, where, order, first, size, params)
        )
        return json_response(
            {
                "count": int(count[0][0]),  # type: ignore[call-overload]
                "limit": size,
                "skip": first,
                "data": [record(columns, row) for row in rows],
            }
        )

    async def get_list_plain(
        request: Request,
        secret: Secret,
        skip: Annotated[str | None, Query(description="Rows to skip (default 0)")] = None,
        limit: Annotated[
            str | None, Query(description="Rows to answer, 1..10000 (default 10)")
        ] = None,
    ) -> Response:
        return await get_list(request, secret, None, skip, limit)

    async def count(
        request: Request, secret: Secret, body: Annotated[CountBody | None, Body()] = None
    ) -> Response:
        ctx, key = await reader(request, secret)
        params = Params()
        try:
            where = scoped_where(
                "project_id",
                key.project_id,
                conditions(resource, (body or CountBody()).query, params),
                params,
            )
        except BadRequest as exc:
            raise bad_request(exc) from None
        rows = await ctx.rows(count_rows(ctx.database, resource.table, where, params))
        return json_response({"count": int(rows[0][0])})  # type: ignore[call-overload]

    async def get_item(
        request: Request,
        item_id: str,
        secret: Secret,
        body: Annotated[ItemBody | None, Body()] = None,
    ) -> Response:
        ctx, key = await reader(request, secret)
        canonical = checked_id(item_id)
        try:
            columns = selected(resource, (body or ItemBody()).select)
        except BadRequest as exc:
            raise bad_request(exc) from None
        params = Params()
        where = scoped_where(
            "project_id", key.project_id, [f"`id` = {params.bind(canonical, 'UUID')}"], params
        )
        rows = await ctx.rows(
            select_rows(ctx.database, resource.table, columns, where, [], 0, 1, params)
        )
        # As OneUptime: a missing row (or another project's) is 200 {}.
        return json_response(record(columns, rows[0]) if rows else {})

    async def get_item_plain(request: Request, item_id: str, secret: Secret) -> Response:
        return await get_item(request, item_id, secret, None)

    def add(path: str, endpoint: Any, method: str, op: str, summary: str, model: Any) -> None:
        _route(router, resource, path, endpoint, method, op, summary, model)

    rows_doc = f"List {resource.title} rows: query, select, sort, skip and limit as OneUptime"
    add("/get-list", get_list, "POST", "list", rows_doc, list_type)
    add("/get-list", get_list_plain, "GET", "list_get", rows_doc, list_type)
    add("/count", count, "POST", "count", f"Count {resource.title} rows", CountResponse)
    item_doc = f"One {resource.title} by id ({{}} when the key's project has none)"
    add("/{item_id}/get-item", get_item, "POST", "get", item_doc, record_type | Empty)
    add("/{item_id}/get-item", get_item_plain, "GET", "get_get", item_doc, record_type | Empty)
    _add_writes(router, resource, provider, record_type)


def _route(
    router: APIRouter,
    resource: Resource,
    path: str,
    endpoint: Any,
    method: str,
    op: str,
    summary: str,
    model: Any,
) -> None:
    router.add_api_route(
        f"/{resource.path}{path}",
        endpoint,
        methods=[method],
        operation_id=f"{op}_{resource.path}".replace("-", "_"),
        summary=summary,
        response_model=model,
        tags=[resource.title],
    )


def _add_writes(
    router: APIRouter, resource: Resource, provider: ContextProvider, record_type: type[Any]
) -> None:
    writes = ItemWrites(resource) if resource.writable else None

    async def writer(
        request: Request, secret: str | None, action: str
    ) -> tuple[ApiContext, ApiKey]:
        ctx = context_of(provider)
        key = await authenticate(request, ctx, secret, action, resource.title)
        if writes is None:
            raise ApiError(Failure.NOT_PERMITTED, f"{action} on {resource.title} is not allowed.")
        writes.check_permission(key, action)
        return ctx, key

    async def create(
        request: Request, secret: Secret, body: Annotated[WriteBody, Body()]
    ) -> Response:
        ctx, key = await writer(request, secret, "create")
        assert writes is not None
        return json_response(await writes.create(ctx, key, body.data))

    async def update(
        request: Request, item_id: str, secret: Secret, body: Annotated[WriteBody, Body()]
    ) -> Response:
        ctx, key = await writer(request, secret, "update")
        assert writes is not None
        await writes.update(ctx, key, checked_id(item_id), body.data)
        return json_response({})

    async def update_plain(request: Request, item_id: str, secret: Secret) -> Response:
        await writer(request, secret, "update")
        raise ApiError(
            Failure.BAD_REQUEST,
            "Invalid request body. The update payload should be an object of the form "
            '{ "data": {...} }.',
        )

    async def delete(request: Request, item_id: str, secret: Secret) -> Response:
        ctx, key = await writer(request, secret, "delete")
        assert writes is not None
        await writes.delete(ctx, key, checked_id(item_id))
        return json_response({})

    def add(path: str, endpoint: Any, method: str, op: str, summary: str, model: Any) -> None:
        _route(router, resource, path, endpoint, method, op, summary, model)

    title = resource.title
    add("", create, "POST", "create", f"Create a {title}", record_type)
    add("/{item_id}", update, "PUT", "update", f"Update a {title}", Empty)
    add("/{item_id}/update-item", update, "POST", "update_post", f"Update a {title}", Empty)
    add("/{item_id}/update-item", update_plain, "GET", "update_get", "Needs a body: POST", Empty)
    add("/{item_id}", delete, "DELETE", "delete", f"Delete a {title}", Empty)
    add("/{item_id}/delete-item", delete, "POST", "delete_post", f"Delete a {title}", Empty)
    add("/{item_id}/delete-item", delete, "GET", "delete_get", f"Delete a {title}", Empty)
