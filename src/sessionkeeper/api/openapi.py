"""The OpenAPI document and the pages that show it (``/docs``, ``/redoc``), served offline.

What the document promises, and how it is kept true (``tests/test_openapi.py`` and the
schemathesis run in ``tests/test_schemathesis.py`` check it against a real server):

- One error body for every 4xx and 5xx: ``ErrorBody`` (``{"error", "detail", "field"?, …}``).
  Each route lists the error statuses it can answer (``error_responses``); FastAPI's own
  ``HTTPValidationError`` never appears, because no route answers with it.
- The rules of the Store (``store/validate.py``) appear as constraints: id and label patterns,
  lengths, number ranges, "no NUL", standard JSON metadata (``JsonObject`` / ``JsonValue``).
  Bodies are checked by the Store (one rule, one message); query and path numbers by FastAPI.
- Requests are authenticated with ``Authorization: Bearer <API key>`` (``APIKey``); without any
  key the server runs open on loopback and the header is not needed.
- Swagger UI and ReDoc come from files installed with the package (``fastapi-offline`` ships
  swagger-ui-dist, Apache-2.0, and ReDoc, MIT): no CDN, no web fonts, no online validator.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from sessionkeeper.api.schemas import JSON_OBJECT_MARKER, NO_NUL, ErrorBody
from sessionkeeper.models import MAX_METADATA_BYTES
from sessionkeeper.store.validate import MAX_METADATA_DEPTH

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs-assets"
SCHEMAS = "#/components/schemas/"

# What each error status means on this API; a route may say more about its own case.
ERROR_DESCRIPTIONS: dict[int, str] = {
    401: "No valid API key: send `Authorization: Bearer <key>` (not needed while the server "
    "runs open: no keys configured, loopback only).",
    403: "The key may not do this (an agent outside its scope, or an admin-only operation).",
    404: "No such session, or one of an agent outside the key's scope (the same answer).",
    409: "The request collides with existing state.",
    413: "Content or metadata over its limit; nothing was stored.",
    422: "A parameter or body field is invalid; `field` names it.",
    500: "An internal error (a bug or a damaged database); nothing to retry.",
    503: "The database is not answering, locked or slow: retry after `Retry-After` seconds.",
}
# Every route with a body (api/limits.py).
BODY_LIMIT_NOTE = (
    " Also: a request body over the server's limit (`SESSIONKEEPER_MAX_BODY_SIZE`, 8 MiB by "
    "default), refused before it is read (`field`: `body`)."
)
_HEADERS: dict[int, dict[str, Any]] = {
    401: {
        "WWW-Authenticate": {
            "description": "Always `Bearer`.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    503: {
        "Retry-After": {
            "description": "Seconds to wait before retrying.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status with ``ErrorBody``; ``s409="…"`` overrides a
    description. 500 and 503 are added to every route that reaches the database."""
    out: dict[int | str, dict[str, Any]] = {}
    for status in sorted({*statuses, 500, 503}):
        description = descriptions.get(f"s{status}", ERROR_DESCRIPTIONS[status])
        if status == 413:
            description += BODY_LIMIT_NOTE
        entry: dict[str, Any] = {"model": ErrorBody, "description": description}
        if status in _HEADERS:
            entry["headers"] = _HEADERS[status]
        out[status] = entry
    return out


# ── JSON metadata: standard JSON, as the Store accepts it ────────────────────

JSON_OBJECT: dict[str, Any] = {
    "type": "object",
    "description": (
        "Standard JSON: no NaN or Infinity, integers within 64 bits, text without NUL (or lone "
        f"surrogates); at most {MAX_METADATA_DEPTH} levels deep and {MAX_METADATA_BYTES:,} bytes "
        "(413 beyond)."
    ),
    "propertyNames": {"pattern": NO_NUL},
    "additionalProperties": {"$ref": SCHEMAS + "JsonValue"},
}
JSON_VALUE: dict[str, Any] = {
    "description": "Any standard JSON value (see JsonObject).",
    "anyOf": [
        {"type": "null"},
        {"type": "boolean"},
        {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
        # A number with a fraction or an exponent: any finite value.
        {"type": "number", "not": {"type": "integer"}},
        {"type": "string", "pattern": NO_NUL},
        {"type": "array", "items": {"$ref": SCHEMAS + "JsonValue"}},
        {"$ref": SCHEMAS + "JsonObject"},
    ],
}
EXTRA_SCHEMAS = {"JsonObject": JSON_OBJECT, "JsonValue": JSON_VALUE}


def complete_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Add the shared JSON schemas to FastAPI's document (idempotent, in place)."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(EXTRA_SCHEMAS)
    # No route answers with FastAPI's validation body (see api/errors.py): make sure it is not
    # offered as if one did.
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    _place_json_objects(schemas)
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for parameter in operation.get("parameters", []):
                if "schema" in parameter:  # not one described by content (api/filters.py)
                    _no_null(parameter["schema"])
            for status, response in operation.get("responses", {}).items():
                if status[0] in "45":
                    _json_error(response)
    # An event stream documented per event (itemSchema) has no schema for the whole stream;
    # FastAPI adds {"type": "string"}, which would say the events are strings.
    for item in document.get("paths", {}).values():
        for operation in item.values():
            for response in operation.get("responses", {}).values():
                stream = response.get("content", {}).get("text/event-stream")
                if stream and "itemSchema" in stream:
                    stream.pop("schema", None)
    return document


def _place_json_objects(node: Any) -> None:
    """Every schema marked as metadata (schemas.Metadata) becomes a reference to JsonObject."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, dict) and value.get(JSON_OBJECT_MARKER):
                node[key] = {"$ref": SCHEMAS + "JsonObject"}
            else:
                _place_json_objects(value)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            if isinstance(value, dict) and value.get(JSON_OBJECT_MARKER):
                node[i] = {"$ref": SCHEMAS + "JsonObject"}
            else:
                _place_json_objects(value)


def _json_error(response: dict[str, Any]) -> None:
    """Error bodies are JSON even where the success is not (FastAPI files an error model of an
    event-stream route under text/event-stream)."""
    content = response.get("content", {})
    for media_type in list(content):
        if media_type != "application/json" and content[media_type].get("schema") == {
            "$ref": SCHEMAS + "ErrorBody"
        }:
            content.setdefault("application/json", content.pop(media_type))


def _no_null(schema: dict[str, Any]) -> None:
    """A parameter is absent or text, never JSON null: drop FastAPI's null branch of an
    optional parameter (``anyOf: [X, {type: null}]`` → ``X``)."""
    branches = schema.get("anyOf")
    if not isinstance(branches, list):
        return
    kept = [b for b in branches if b != {"type": "null"}]
    if len(kept) == 1:
        del schema["anyOf"]
        schema.update({k: v for k, v in kept[0].items() if k not in schema})
    else:
        schema["anyOf"] = kept


# ── the pages ─────────────────────────────────────────────────────────────────


def assets_dir() -> str:
    """swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png."""
    return str(resources.files("fastapi_offline") / "static")


# ReDoc's sidebar shows a logo from Redocly's CDN; ours is served from here instead.
REDOC_REMOTE_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


def _redoc_script() -> bytes:
    script = (resources.files("fastapi_offline") / "static" / "redoc.standalone.js").read_bytes()
    return script.replace(REDOC_REMOTE_LOGO.encode(), f"{ASSETS_URL}/favicon.png".encode())


def install_docs(app: FastAPI) -> None:
    """``/openapi.json``, ``/docs`` (Swagger UI) and ``/redoc``, with their files under
    ``/docs-assets``. The app must be built with ``docs_url=None, redoc_url=None``."""
    generate = app.openapi  # FastAPI's: cached, rebuilt when routes change
    app.openapi = lambda: complete_openapi(generate())  # type: ignore[method-assign]
    redoc_js = _redoc_script()

    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_script() -> Response:  # before the mount, so it wins
        return Response(redoc_js, media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    oauth2_redirect = f"{DOCS_URL}/oauth2-redirect"

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=f"{root}{oauth2_redirect}",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            # No call to the online validator (its badge would fetch from swagger.io).
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": True},
        )

    @app.get(oauth2_redirect, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=f"{root}{OPENAPI_URL}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
