"""Request parsing: URL parameters and a (decompressed) body -> a Request, with ClickHouse's
rules for settings, query parameters, sessions and splitting `INSERT ... FORMAT X` from its
data."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from worker.adapters.chdb_front.errors import UNKNOWN_SETTING, QueryFailure

SESSION_TIMEOUT_S: Final = 60.0

# URL parameters that are not ClickHouse settings (or that chDB rejects / ignores here).
_TRANSPORT_PARAMS: Final = frozenset(
    {
        "query",
        "database",
        "default_format",
        "user",
        "password",
        "query_id",
        "session_id",
        "session_timeout",
        "session_check",
        "quota_key",
        "compress",
        "decompress",
        "buffer_size",
        "wait_end_of_query",
        "client_protocol_version",
        "role",
        "enable_http_compression",
        "send_progress_in_http_headers",
        "http_headers_progress_interval_ms",
        "http_response_headers",
    }
)
_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TRAILING_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_INSERT_START = re.compile(rb"^\s*INSERT\b", re.IGNORECASE)
_INSERT_FORMAT = re.compile(rb"\bFORMAT\s+(\w+)", re.IGNORECASE)
_DATA_SEPARATOR = re.compile(rb"[ \t]*\r?\n|[ \t]+")


@dataclass
class Request:
    sql: bytes  # the statement (for inserts: without the data)
    data: bytes | None  # insert data (decompressed), None for plain statements
    data_format: str | None
    database: str | None
    default_format: str | None
    settings: dict[str, str]
    params: dict[str, str]
    session_id: str | None
    session_timeout: float
    read_only: bool


def _split_insert(text: bytes) -> tuple[bytes, bytes, str] | None:
    """`INSERT ... FORMAT X\\n<data>` -> (statement without FORMAT, data, X)."""
    if not _INSERT_START.search(text):
        return None
    match = _INSERT_FORMAT.search(text)
    if match is None:
        return None
    rest = match.end()
    sep = _DATA_SEPARATOR.match(text, rest)
    data_start = sep.end() if sep else rest
    if sep is None and rest != len(text):
        return None
    return text[: match.start()].rstrip(), text[data_start:], match.group(1).decode()


def build_request(method: str, params: Mapping[str, str], body: bytes) -> Request:
    """Turn URL parameters and a (decompressed) body into a Request, as ClickHouse does."""
    query = params.get("query", "").encode()
    if query and body:
        head = TRAILING_FORMAT.search(query)
        if _INSERT_START.search(query) and head:
            stmt = query[: head.start()].rstrip()
            split: tuple[bytes, bytes, str] | None = (stmt, body, head.group(1).decode())
        else:
            split = _split_insert(query + b"\n" + body)
            if split is None:
                query = query + b"\n" + body
    else:
        query = query or body
        split = _split_insert(query)
    if not query.strip() and split is None:
        raise QueryFailure(62, "Code: 62. DB::Exception: Empty query. (SYNTAX_ERROR)", status=400)
    settings: dict[str, str] = {}
    bind: dict[str, str] = {}
    for key, value in params.items():
        if key.startswith("param_"):
            bind[key[len("param_") :]] = value
        elif key not in _TRANSPORT_PARAMS:
            if not _SETTING_NAME.match(key):
                raise QueryFailure(
                    UNKNOWN_SETTING,
                    f"Code: {UNKNOWN_SETTING}. DB::Exception: Unknown setting '{key}'. "
                    "(UNKNOWN_SETTING)",
                    status=400,
                )
            settings[key] = value
    try:
        session_timeout = float(params.get("session_timeout", SESSION_TIMEOUT_S))
    except ValueError:
        session_timeout = SESSION_TIMEOUT_S
    common: dict[str, Any] = {
        "database": params.get("database") or None,
        "settings": settings,
        "params": bind,
        "session_id": params.get("session_id") or None,
        "session_timeout": session_timeout,
        "read_only": method == "GET",
    }
    if split is not None:
        stmt, data, fmt = split
        return Request(sql=stmt, data=data, data_format=fmt, default_format=None, **common)
    return Request(
        sql=query,
        data=None,
        data_format=None,
        default_format=params.get("default_format"),
        **common,
    )
