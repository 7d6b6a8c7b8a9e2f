"""Request and response bodies of the query APIs, as pydantic models: they validate what
comes in and are what the generated OpenAPI document (`/openapi.json`) describes."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, create_model

from worker.api.fields import Field as ApiField
from worker.api.fields import Kind, Resource


class ListBody(BaseModel):
    """OneUptime's list request (`get-list`)."""

    model_config = ConfigDict(extra="forbid")
    query: dict[str, Any] | None = Field(default=None, description="Fields ANDed; see the README")
    select: dict[str, Any] | None = Field(
        default=None, description='{"field": true}, default _id only'
    )
    sort: dict[str, Any] | None = Field(default=None, description='{"field": "ASC"|"DESC"|1|-1}')
    skip: StrictInt | None = Field(
        default=None, ge=0, le=2**63 - 1, description="Used when the query string has none"
    )
    limit: StrictInt | None = Field(
        default=None, ge=0, le=10_000, description="Used when the query string has none"
    )


class CountBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: dict[str, Any] | None = None


class ItemBody(BaseModel):
    """get-item's body: which fields to answer."""

    model_config = ConfigDict(extra="forbid")
    select: dict[str, Any] | None = None


class WriteBody(BaseModel):
    """create and update: `{"data": {...}}` as OneUptime."""

    model_config = ConfigDict(extra="forbid")
    data: dict[str, Any]
    miscDataProps: dict[str, Any] | None = None


class CountResponse(BaseModel):
    count: int


class OneUptimeError(BaseModel):
    error: str


class PortsipErrorItem(BaseModel):
    code: str
    message: str
    detail: str | None = None


class PortsipError(BaseModel):
    errors: list[PortsipErrorItem]


class Empty(BaseModel):
    model_config = ConfigDict(extra="forbid")


_ANNOTATIONS: dict[Kind, Any] = {
    Kind.UUID: uuid.UUID | None,
    Kind.STRING: str | None,
    Kind.JSON: dict[str, Any] | None,
    Kind.INT: int | None,
    Kind.DECIMAL: float | None,
    Kind.DATETIME: dt.datetime | None,
    Kind.BOOL: bool | None,
}


def record_model(name: str, fields: dict[str, ApiField]) -> type[BaseModel]:
    """A row of `fields`: every field optional (the request's `select` chooses them)."""
    definitions: dict[str, Any] = {}
    for api_name, f in fields.items():
        python_name = "id" if api_name == "_id" else api_name
        definitions[python_name] = (
            _ANNOTATIONS[f.kind],
            Field(None, alias=api_name) if api_name != python_name else None,
        )
    return create_model(name, __config__=ConfigDict(extra="forbid"), **definitions)


def list_model(resource: Resource, record: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        f"{record.__name__}List",
        count=(int, ...),
        limit=(int, ...),
        skip=(int, ...),
        data=(list[record], ...),  # type: ignore[valid-type]
    )
