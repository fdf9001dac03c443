"""The OpenAPI document tells the truth, and /docs works without the internet.

- One error body (``ErrorBody``) for every 4xx and 5xx; FastAPI's ``HTTPValidationError``
  nowhere; each operation lists the statuses it can answer.
- The documented patterns accept exactly what the Store accepts (``sessionkeeper.models``).
- ``Allow`` on a 405 lists every method of the path, as the document does.
- Swagger UI and ReDoc load their scripts and styles from this server (files installed with
  the package); a headless Chromium renders /docs with every other origin blocked.

The live checks against a real server are in tests/test_schemathesis.py.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import unicodedata
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import uvicorn

from sessionkeeper.api import create_app
from sessionkeeper.api.openapi import assets_dir
from sessionkeeper.api.schemas import (
    CHAT_CONTENT_PATTERN,
    LABEL_PATTERN,
    LABEL_SCHEMA,
    NO_NUL,
    RESERVED_SESSION_IDS,
    SEARCH_PATTERN,
    SESSION_ID_PATTERN,
    SESSION_ID_SCHEMA,
)
from sessionkeeper.config import Settings
from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import LABEL_RE, SESSION_ID_RE
from sessionkeeper.store import search

API = "/api/engine/sessions"
ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}
# operationId → the statuses it documents (success first).
STATUSES = {
    "healthz": {200},
    "healthz_head": {200},
    "readyz": {200, 503},
    "readyz_head": {200, 503},
    "whoami": {200, 401, 500, 503},
    "metrics_endpoint": {200, 401, 403, 500, 503},
    "purge_ghosts": {200, 401, 403, 422, 500, 503},
    "prune_sessions": {200, 401, 403, 422, 500, 503},
    "forget_user": {200, 401, 403, 422, 500, 503},
    "create_session": {201, 401, 403, 409, 413, 422, 500, 503},
    "list_sessions": {200, 401, 422, 500, 503},
    "get_stats": {200, 401, 422, 500, 503},
    "search_messages": {200, 401, 422, 500, 503},
    "get_session": {200, 401, 404, 422, 500, 503},
    "update_session": {200, 401, 403, 404, 409, 413, 422, 500, 503},
    "delete_session": {200, 401, 404, 422, 500, 503},
    "end_session": {200, 401, 404, 422, 500, 503},
    "get_messages": {200, 401, 404, 422, 500, 503},
    "add_messages": {201, 401, 404, 413, 422, 500, 503},
    "delete_message": {200, 401, 404, 422, 500, 503},
    "context_window": {200, 401, 404, 422, 500, 503},
    "get_usage": {200, 401, 404, 422, 500, 503},
    "compact_session": {200, 401, 404, 409, 422, 500, 503},
    "export_session": {200, 401, 404, 422, 500, 503},
    "fork_session": {201, 401, 404, 409, 413, 422, 500, 503},
    "rewind_session": {200, 401, 404, 422, 500, 503},
    "list_branches": {200, 401, 404, 422, 500, 503},
    "chat_stream": {200, 401, 403, 404, 409, 413, 422, 500, 503},
    "chat_model": {200, 401, 500, 503},
    "list_policies": {200, 401, 403, 500, 503},
    "run_policies": {200, 401, 403, 422, 500, 503},
    "get_policy": {200, 401, 403, 404, 422, 500, 503},
    "set_policy": {200, 401, 403, 422, 500, 503},
    "delete_policy": {200, 401, 403, 404, 422, 500, 503},
}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    app = create_app(Settings(database_url="sqlite://", maintenance=False))
    return dict(app.openapi())


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_error_is_the_one_error_body(document: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in json.dumps(document)
    body = document["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error", "detail"] and "field" in body["properties"]
    found = {}
    for _path, method, operation in operations(document):
        found[operation["operationId"]] = {int(s) for s in operation["responses"]}
        for status, response in operation["responses"].items():
            if method == "head":  # the headers alone: no body, for no status
                assert "content" not in response, (operation["operationId"], status)
                continue
            if int(status) < 400:
                continue
            schema = response["content"]["application/json"]["schema"]
            if operation["operationId"] == "readyz":  # the error body, and what was checked
                not_ready = document["components"]["schemas"]["NotReady"]
                assert {"error", "detail"} <= set(not_ready["required"])
                schema = ERROR_REF
            assert schema == ERROR_REF, (operation["operationId"], status)
            assert set(response["content"]) == {"application/json"}
        if 401 in found[operation["operationId"]]:
            assert operation["security"] == [{"APIKey": []}]
    assert found == STATUSES


def test_retry_after_and_www_authenticate_are_documented(document: dict[str, Any]) -> None:
    create = document["paths"][API]["post"]["responses"]
    assert create["503"]["headers"]["Retry-After"]["required"] is True
    assert create["401"]["headers"]["WWW-Authenticate"]["required"] is True


def test_constraints_are_in_the_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    create = schemas["SessionCreate"]["properties"]
    sid = create["session_id"]["anyOf"][0]
    assert (sid["pattern"], sid["maxLength"]) == (SESSION_ID_PATTERN, 128)
    assert sid["not"] == {"enum": list(RESERVED_SESSION_IDS)}
    assert create["agent_id"]["pattern"] == LABEL_PATTERN
    assert create["title"]["anyOf"][0]["maxLength"] == 200
    assert create["metadata"]["anyOf"][0] == {"$ref": "#/components/schemas/JsonObject"}
    message = schemas["MessageCreate"]["properties"]
    assert message["content"]["maxLength"] == 100_000 and message["content"]["pattern"] == NO_NUL
    assert message["token_count"]["anyOf"][0]["maximum"] == 2**31 - 1
    chat = schemas["ChatBody"]["properties"]["content"]
    assert chat["pattern"] == CHAT_CONTENT_PATTERN
    value = schemas["JsonValue"]["anyOf"]
    assert {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1} in value

    def param(path: str, method: str, name: str) -> dict[str, Any]:
        found = [p for p in document["paths"][path][method]["parameters"] if p["name"] == name]
        schema: dict[str, Any] = found[0]["schema"]
        assert "anyOf" not in schema or {"type": "null"} not in schema["anyOf"]
        return schema

    q = param(f"{API}/search", "get", "q")
    assert (q["minLength"], q["maxLength"], q["pattern"]) == (1, 1000, SEARCH_PATTERN)
    assert param(API, "get", "offset")["maximum"] == 2**31 - 1
    assert param(API, "get", "agent_id")["pattern"] == LABEL_PATTERN
    assert param(API, "get", "created_after") == {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 with an offset, e.g. 2025-01-31T12:00:00+00:00.",
        "title": "Created After",
    }
    messages = f"{API}/{{session_id}}/messages"
    assert param(messages, "get", "after_seq")["maximum"] == 2**31 - 1
    assert param(messages, "get", "session_id")["pattern"] == SESSION_ID_PATTERN
    assert param(f"{messages}/{{seq}}", "delete", "seq")["maximum"] == 2**31 - 1
    assert param(f"{API}/ghosts", "delete", "older_than_minutes")["maximum"] == 100 * 366 * 1440
    assert param(f"{API}/prune", "post", "days")["maximum"] == 100 * 366
    assert param(f"{API}/stats", "get", "stale_days")["maximum"] == 100 * 366
    stream = document["paths"]["/api/engine/chat/stream"]["post"]["responses"]["200"]
    assert list(stream["content"]["text/event-stream"]) == ["itemSchema"]


# Every keyword a schema may use: JSON Schema 2020-12 (core, applicator, unevaluated,
# validation, format, content, meta-data) and the four OpenAPI 3.1 adds; "x-…" extensions.
KEYWORDS = frozenset(
    {
        # core
        "$schema", "$id", "$ref", "$anchor", "$dynamicRef", "$dynamicAnchor", "$vocabulary",
        "$comment", "$defs",
        # applicator, unevaluated
        "prefixItems", "items", "contains", "additionalProperties", "properties",
        "patternProperties", "dependentSchemas", "propertyNames", "if", "then", "else",
        "allOf", "anyOf", "oneOf", "not", "unevaluatedItems", "unevaluatedProperties",
        # validation, format, content
        "type", "const", "enum", "multipleOf", "maximum", "exclusiveMaximum", "minimum",
        "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
        "uniqueItems", "maxContains", "minContains", "maxProperties", "minProperties",
        "required", "dependentRequired", "format", "contentEncoding", "contentMediaType",
        "contentSchema",
        # meta-data, then OpenAPI 3.1's
        "title", "description", "default", "deprecated", "readOnly", "writeOnly", "examples",
        "discriminator", "xml", "externalDocs", "example",
    }
)  # fmt: skip
_ONE = {"items", "contains", "additionalProperties", "propertyNames", "if", "then", "else",
        "not", "contentSchema", "unevaluatedItems", "unevaluatedProperties"}  # fmt: skip
_LIST = {"prefixItems", "allOf", "anyOf", "oneOf"}
_MAP = {"properties", "patternProperties", "$defs", "dependentSchemas"}


def _unknown_keywords(schema: Any, where: str) -> Iterator[str]:
    if not isinstance(schema, dict):
        return  # true / false
    for key, value in schema.items():
        if key not in KEYWORDS and not key.startswith("x-"):
            yield f"{where}: {key}"
        if key in _ONE:
            yield from _unknown_keywords(value, f"{where}/{key}")
        elif key in _LIST:
            for i, sub in enumerate(value):
                yield from _unknown_keywords(sub, f"{where}/{key}/{i}")
        elif key in _MAP:
            for name, sub in value.items():
                yield from _unknown_keywords(sub, f"{where}/{key}/{name}")


def _schemas(node: Any, where: str) -> Iterator[tuple[str, Any]]:
    """Every schema in an OpenAPI document: its components and each ``schema`` and
    ``itemSchema`` of parameters, bodies, responses and headers."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{where}/{key}"
            if here == "#/components/schemas":
                yield from ((f"{here}/{name}", s) for name, s in value.items())
            elif key in ("schema", "itemSchema"):
                yield here, value
            else:
                yield from _schemas(value, here)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _schemas(item, f"{where}/{i}")


def test_schemas_use_only_json_schema_keywords(document: dict[str, Any]) -> None:
    """No pydantic keyword ("ge", "le", …) where JSON Schema has its own ("minimum"…): a
    validator or client generator ignores what it does not know."""
    schemas = list(_schemas(document, "#"))
    assert len(schemas) > 100
    unknown = [found for where, s in schemas for found in _unknown_keywords(s, where)]
    assert unknown == []
    budget = document["components"]["schemas"]["ChatBody"]["properties"]["max_context_tokens"]
    assert budget["anyOf"][0] == {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}


SAMPLES = [
    "a", "A-1", ".", "..", "...", ".a", "a.", "a..b", ":", "_", "-", "a b", "a/b", "a@b", "a+b",
    "é", "a\x00", "", "x" * 64, "x" * 65, "x" * 128, "x" * 129, "agent:x:1", "1.2.3", "a\n",
]  # fmt: skip


def documented(schema: dict[str, Any]) -> Any:
    """The schema as a JSON Schema validator reads it (ECMA-262 patterns, not Python's re)."""
    return jsonschema_rs.validator_for(schema).is_valid


def test_documented_patterns_accept_what_the_store_accepts() -> None:
    session_id, label = documented(SESSION_ID_SCHEMA), documented(LABEL_SCHEMA)
    for value in SAMPLES:
        assert session_id(value) == bool(SESSION_ID_RE.fullmatch(value)), value
        assert label(value) == bool(LABEL_RE.fullmatch(value)), value


def _accepted(query: str) -> bool:
    try:
        search.check_query(query)
    except InvalidInput:
        return False
    return True


def test_text_patterns_match_the_store_rules_for_every_character() -> None:
    no_nul = documented({"type": "string", "pattern": NO_NUL})
    chat = documented({"type": "string", "pattern": CHAT_CONTENT_PATTERN})
    query = documented({"type": "string", "pattern": SEARCH_PATTERN})
    assert no_nul("") and no_nul("hi") and not no_nul("a\x00b")
    assert not chat("") and not query("") and not query('"" ?!')
    for code in range(0x30000):  # every character of the planes in use (not surrogates)
        char = chr(code)
        if 0xD800 <= code <= 0xDFFF or unicodedata.category(char) == "Cn":
            continue  # unassigned in this Python's Unicode: the validator's may be newer
        assert chat(char) == (bool(char.strip()) and char != "\x00"), hex(code)
        assert chat(f" {char} ") == chat(char), hex(code)
        assert query(char) == _accepted(char), hex(code)


# ── routing: Allow, reserved names ──────────────────────────────────────


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'o.db'}", maintenance=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def test_allow_lists_every_method_the_document_lists(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    for path, item in document["paths"].items():
        concrete = path.replace("{session_id}", "s1").replace("{seq}", "1")
        r = await client.request("OPTIONS", concrete)
        assert r.status_code == 405, (path, r.text)
        assert r.json()["error"] == "method_not_allowed"
        allowed = set(r.headers["allow"].split(", "))
        assert allowed == {m.upper() for m in item}, (path, r.headers["allow"])
    r = await client.put(f"{API}/s1")
    assert (r.status_code, r.headers["allow"]) == (405, "GET, PATCH, DELETE")


async def test_fixed_paths_are_not_session_ids(client: httpx.AsyncClient) -> None:
    # OpenAPI: a concrete path wins over a template, so /sessions/ghosts has DELETE only.
    for name, method in [("ghosts", "GET"), ("prune", "DELETE"), ("stats", "PATCH")]:
        r = await client.request(method, f"{API}/{name}")
        assert r.status_code == 405, (name, r.text)
    r = await client.post(API, json={"session_id": "stats"})
    assert (r.status_code, r.json()["field"]) == (422, "session_id")
    assert (await client.get(f"{API}/stats/messages")).status_code == 404  # an id like others


# ── /docs and /redoc, offline ────────────────────────────────────────────


async def test_docs_load_everything_from_this_server(client: httpx.AsyncClient) -> None:
    for page, assets in [
        ("/docs", ["swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"]),
        ("/redoc", ["redoc.standalone.js", "favicon.png"]),
    ]:
        r = await client.get(page)
        assert r.status_code == 200 and "text/html" in r.headers["content-type"]
        html = r.text
        assert "://" not in html.replace('"http://test', ""), html  # no other origin, no CDN
        assert "fonts.googleapis" not in html and "validatorUrl" in html or page == "/redoc"
        for name in assets:
            assert f"/docs-assets/{name}" in html, (page, name)
            asset = await client.get(f"/docs-assets/{name}")
            assert asset.status_code == 200 and len(asset.content) > 1000, name
    assert (await client.get("/openapi.json")).json()["info"]["title"] == "sessionkeeper"


def test_docs_assets_are_installed_files() -> None:
    folder = Path(assets_dir())
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js"):
        assert (folder / name).stat().st_size > 100_000, name


async def test_redoc_script_shows_no_remote_logo(client: httpx.AsyncClient) -> None:
    script = (await client.get("/docs-assets/redoc.standalone.js")).text
    assert "cdn.redoc.ly" not in script and "/docs-assets/favicon.png" in script


CHROMIUM = os.environ.get("SESSIONKEEPER_CHROMIUM", "/usr/bin/chromium")


@pytest.mark.browser
def test_docs_render_in_chromium_with_other_origins_blocked(tmp_path: Path) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'b.db'}", maintenance=False))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        elsewhere: list[str] = []
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM, args=["--headless=new", "--no-sandbox", "--disable-gpu"]
            )
            try:
                page = browser.new_page()

                def route(r: Any) -> None:
                    if r.request.url.startswith(base):
                        r.continue_()
                    else:
                        elsewhere.append(r.request.url)
                        r.abort()

                page.route("**/*", route)
                page.goto(f"{base}/docs")
                page.wait_for_selector(".opblock-summary-path", timeout=15_000)
                paths = page.locator(".opblock-summary-path").all_inner_texts()
                assert any("/api/engine/sessions" in text for text in paths), paths
                page.wait_for_load_state("networkidle")
                page.goto(f"{base}/redoc")
                page.wait_for_function(
                    "document.body.innerText.includes('/api/engine/sessions/{session_id}')",
                    timeout=15_000,
                )
                page.wait_for_load_state("networkidle")  # late images (ReDoc's logo) too
            finally:
                browser.close()
        assert elsewhere == [], elsewhere
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
