"""The one place where failures become HTTP responses.

Every error body has the same shape (``ErrorBody`` in the OpenAPI document):
``{"error": <stable code>, "detail": <sentence>, ...}`` plus the exception's details
(``field``, ``limit``…). The status comes from the nearest class in the exception's MRO, so a
subclass (TooLarge is an InvalidInput) gets its own status when it has one and its parent's
otherwise. The same shape covers what FastAPI refuses before a route runs (422 with ``field``
and ``errors``), routing errors (404, 405 with a complete ``Allow``) and unexpected
exceptions (500).
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from sessionkeeper.api.routing import NonStandardJson, allowed_methods
from sessionkeeper.api.schemas import UNION_TAGS
from sessionkeeper.errors import (
    Conflict,
    DatabaseError,
    Forbidden,
    InvalidInput,
    NotFound,
    SchemaMismatch,
    SessionkeeperError,
    TooLarge,
    Unauthorized,
    Unavailable,
)

logger = logging.getLogger(__name__)

STATUS: dict[type[SessionkeeperError], int] = {
    NotFound: 404,
    TooLarge: 413,
    InvalidInput: 422,
    Conflict: 409,
    Unauthorized: 401,
    Forbidden: 403,
    SchemaMismatch: 503,
    Unavailable: 503,
    DatabaseError: 500,
}
RETRY_AFTER_SECONDS = "1"


def status_for(exc: SessionkeeperError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def error_body(code: str, detail: str, **details: Any) -> dict[str, Any]:
    extra = {k: v for k, v in details.items() if k not in ("error", "detail")}
    return {"error": code, "detail": detail, **extra}


def error_response(exc: SessionkeeperError) -> JSONResponse:
    """The response for one of our errors: its status, its body, and the headers that go with
    the status (``WWW-Authenticate`` on 401, ``Retry-After`` on 503). Also used by the
    middleware that answers before routing (``api/limits.py``)."""
    status = status_for(exc)
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    elif status == 503:
        # Retryable (the database is down, starting, locked or slow): say when to retry.
        logger.warning("%s: %s", exc.code, exc.message)
        headers = {"Retry-After": RETRY_AFTER_SECONDS}
    elif status >= 500:
        logger.error("%s: %s", exc.code, exc.message)
    return JSONResponse(
        error_body(exc.code, exc.message, **exc.details), status_code=status, headers=headers
    )


async def _sessionkeeper_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SessionkeeperError)
    return error_response(exc)


def _field_path(loc: tuple[int | str, ...]) -> str:
    # ("body", "single", "messages", 0, "role") → "messages[0].role"; the first element says
    # where (body, query, path, header) and union tags are not fields.
    path = ""
    for part in loc[1:]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in UNION_TAGS:
            path += f".{part}" if path else part
    return path


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems: list[dict[str, str]] = []
    for error in exc.errors():
        loc = tuple(error.get("loc", ()))
        where = str(loc[0]) if loc else "request"
        if error.get("type") == "json_invalid":
            problems.append(_json_problem(exc, error))
            continue
        problems.append(
            {"field": _field_path(loc) or where, "in": where, "message": str(error.get("msg"))}
        )
    if not problems:
        body = error_body(InvalidInput.code, "invalid request", field="request")
        return JSONResponse(body, status_code=422)
    first = problems[0]
    # "query field 'since': Input should have timezone info"; "body: Input should be …"
    subject = first["in"]
    if first["field"] != first["in"]:
        subject += f" field {first['field']!r}"
    detail = f"{subject}: {first['message']}"
    if len(problems) > 1:
        detail += f" (and {len(problems) - 1} more)"
    return JSONResponse(
        error_body(InvalidInput.code, detail, field=first["field"], errors=problems),
        status_code=422,
    )


def _json_problem(exc: RequestValidationError, error: Any) -> dict[str, str]:
    """A body that is not (standard) JSON: where, and why."""
    cause = exc.__cause__
    if isinstance(cause, NonStandardJson):
        return {"field": cause.field, "in": "body", "message": cause.reason}
    ctx = error.get("ctx") or {}
    loc = tuple(error.get("loc", ()))
    at = f" at character {loc[1]}" if len(loc) > 1 and isinstance(loc[1], int) else ""
    reason = ctx.get("error", "invalid JSON")
    return {"field": "body", "in": "body", "message": f"the body is not valid JSON: {reason}{at}"}


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Routing errors (unknown path 404, wrong method 405) in the same shape as ours.
    assert isinstance(exc, StarletteHTTPException)
    try:
        code = HTTPStatus(exc.status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        code = "http_error"
    headers = dict(exc.headers or {})
    detail = str(exc.detail)
    if exc.status_code == 405:
        allowed = allowed_methods(request)
        if allowed:
            headers["Allow"] = ", ".join(allowed)
            detail = f"{request.method} is not allowed here; allowed: {headers['Allow']}"
    return JSONResponse(error_body(code, detail), status_code=exc.status_code, headers=headers)


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    # Starlette's ServerErrorMiddleware calls this, then re-raises: the server logs the
    # traceback ("Exception in ASGI application") and the client gets our shape, not text.
    logger.error("unexpected %s: %s", type(exc).__name__, exc)
    return JSONResponse(
        error_body("internal_error", "internal server error (a bug: see the server log)"),
        status_code=500,
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(SessionkeeperError, _sessionkeeper_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
