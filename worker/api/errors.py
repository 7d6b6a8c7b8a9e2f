"""The query APIs' refusals, and how each dialect answers them.

Handlers raise `ApiError(kind, message)`; the dialect of the route decides the status and the
body: OneUptime `{"error": message}` (not permitted is 422, a bad key 400, as OneUptime), PortSIP
`{"errors": [{"code", "message", "detail"}]}`. Nothing else ever reaches a client: an
unexpected exception is logged with its traceback and answered as a bare server error.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

import orjson
from starlette.responses import Response


class Failure(Enum):
    BAD_REQUEST = "bad_request"
    NO_CREDENTIALS = "no_credentials"
    BAD_KEY = "bad_key"
    NOT_PERMITTED = "not_permitted"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    UNAVAILABLE = "unavailable"
    SERVER = "server"


class ApiError(Exception):
    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure
        self.message = message


ONEUPTIME_STATUS: Final = {
    Failure.BAD_REQUEST: 400,
    Failure.NO_CREDENTIALS: 401,
    Failure.BAD_KEY: 400,  # OneUptime: "Invalid API Key" is a 400
    Failure.NOT_PERMITTED: 422,  # OneUptime's NotAuthorizedException
    Failure.NOT_FOUND: 404,
    Failure.TOO_LARGE: 413,
    Failure.UNAVAILABLE: 503,
    Failure.SERVER: 500,
}
PORTSIP_STATUS: Final = {
    Failure.BAD_REQUEST: (400, "VALIDATE_FAILED", "field validation failed"),
    Failure.NO_CREDENTIALS: (401, "UNAUTHORIZED", "authentication required"),
    Failure.BAD_KEY: (401, "UNAUTHORIZED", "authentication error"),
    Failure.NOT_PERMITTED: (403, "FORBIDDEN", "permission denied"),
    Failure.NOT_FOUND: (404, "NOT_FOUND", "not found"),
    Failure.TOO_LARGE: (413, "VALIDATE_FAILED", "request too large"),
    Failure.UNAVAILABLE: (503, "UNAVAILABLE", "service unavailable"),
    Failure.SERVER: (500, "UNKNOWN", "unknown error"),
}

PORTSIP_PREFIX: Final = "/api/calllogs"


def is_portsip(path: str) -> bool:
    return path == PORTSIP_PREFIX or path.startswith(PORTSIP_PREFIX + "/")


def error_response(path: str, failure: Failure, message: str) -> Response:
    headers: dict[str, str] = {}
    if is_portsip(path):
        status, code, summary = PORTSIP_STATUS[failure]
        body: object = {"errors": [{"code": code, "message": summary, "detail": message}]}
        if failure in (Failure.NO_CREDENTIALS, Failure.BAD_KEY):
            headers["WWW-Authenticate"] = "Bearer"
    else:
        status = ONEUPTIME_STATUS[failure]
        body = {"error": message}
    return Response(orjson.dumps(body), status, headers, media_type="application/json")
