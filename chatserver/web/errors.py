"""HTTP error bodies: ``{"error": {"code", "message"}}``, from a ChatError or Starlette's own.

An error about one input field also carries ``field`` (its path in the body) and
``reason`` (one of ``chatserver.errors.REASONS``); neither is there otherwise.
"""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from chatserver.errors import ChatError

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "bad_request",
    409: "conflict",
    413: "too_large",
    429: "rate_limited",
    503: "unavailable",
}


def error_body(error: ChatError) -> dict[str, Any]:
    body: dict[str, Any] = {"code": error.code, "message": error.message}
    if error.field is not None:
        body["field"] = error.field
    if error.reason is not None:
        body["reason"] = error.reason
    return {"error": body}


def error_response(error: ChatError) -> JSONResponse:
    retry_after = getattr(error, "retry_after", None)
    return JSONResponse(
        error_body(error),
        status_code=error.status,
        headers={"Retry-After": str(retry_after)} if retry_after is not None else None,
    )


async def on_chat_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ChatError)
    return error_response(exc)


async def on_http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "internal")
    return JSONResponse(
        {"error": {"code": code, "message": str(exc.detail)}},
        status_code=exc.status_code,
        headers=exc.headers,
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    return JSONResponse(
        {"error": {"code": "internal", "message": "internal error"}}, status_code=500
    )
