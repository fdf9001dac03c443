"""Routing details the OpenAPI document depends on: strict JSON bodies, session-id paths, Allow.

- ``StrictJsonRoute``: request bodies must be standard JSON (RFC 8259) in UTF-8. Python's
  ``json`` accepts ``NaN``, ``Infinity`` and ``-Infinity``; here they are refused as invalid
  JSON (422, ``field`` naming where the constant was), as are bodies nested too deeply for
  the parser and bodies that are not UTF-8. Nothing non-standard reaches the Store.
- ``{session_id:session_id}``: a path segment that is a session id, except the names that
  are paths of their own under ``/sessions`` (``/sessions/stats`` …). As OpenAPI says,
  a concrete path wins over a template, so ``GET /sessions/ghosts`` is not "the session
  ghosts" but a method ``/sessions/ghosts`` does not have (405).
- ``allowed_methods``: the methods a path answers, for the ``Allow`` header of a 405. The
  router's own 405 names only the first route it tried for the path (``Allow: GET`` on
  ``/sessions/{id}``, which also has PATCH and DELETE); this asks every route.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.convertors import Convertor, register_url_convertor
from starlette.routing import Match, Mount

from sessionkeeper.models import RESERVED_SESSION_IDS

# ── strict JSON bodies ───────────────────────────────────────────────────────


class NonStandardJson(json.JSONDecodeError):
    """A body Python's json would read but standard JSON does not allow (FastAPI answers a
    JSONDecodeError with a ``json_invalid`` validation error; api/errors.py reads ``field``)."""

    def __init__(self, reason: str, field: str, doc: str = "") -> None:
        super().__init__(reason, doc, 0)
        self.reason = reason
        self.field = field


class _Constant(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


class _Marker:
    def __init__(self, name: str) -> None:
        self.name = name


def _refuse(name: str) -> Any:
    raise _Constant(name)


def _path_of_marker(value: Any) -> str:
    """The field path of the first NaN/Infinity in a decoded body ('' at the top)."""
    stack: list[tuple[Any, str]] = [(value, "")]
    while stack:
        item, path = stack.pop(0)
        if isinstance(item, _Marker):
            return path
        if isinstance(item, dict):
            stack.extend((v, f"{path}.{k}" if path else str(k)) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{path}[{i}]") for i, v in enumerate(item))
    return ""


def loads_strict(raw: bytes) -> Any:
    """Decode a request body as standard JSON, or raise ``json.JSONDecodeError``."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NonStandardJson(
            f"the body is not UTF-8 (invalid byte at offset {exc.start})", "body"
        ) from None
    try:
        return json.loads(text, parse_constant=_refuse)
    except _Constant as exc:
        path = _path_of_marker(json.loads(text, parse_constant=_Marker))
        raise NonStandardJson(
            f"{path or 'the body'} is {exc.name}, which is not standard JSON "
            "(JSON has no NaN or Infinity)",
            path or "body",
            text,
        ) from None
    except RecursionError:
        raise NonStandardJson("the body is nested too deeply", "body", text) from None


class StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads_strict(await self.body())
        return self._json


class StrictJsonRoute(APIRoute):
    """An APIRoute whose JSON body is read by ``loads_strict``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict_handler


# ── session ids in paths ─────────────────────────────────────────────────────


class SessionIdConvertor(Convertor[str]):
    """One path segment, except a name reserved by a concrete path under /sessions when it is
    the last segment. The Store checks the id's format (422 naming ``session_id``)."""

    regex = "(?!(?:" + "|".join(map(re.escape, RESERVED_SESSION_IDS)) + ")$)[^/]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("session_id", SessionIdConvertor())

# ── Allow ─────────────────────────────────────────────────────────────────────

PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route of the app answers for this request's path."""
    routes = request.app.router.routes
    allowed: list[str] = []
    for method in PROBED_METHODS:
        probe = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "headers": [],
            "query_string": b"",
        }
        for route in routes:
            if isinstance(route, Mount):
                continue  # static files: their own rules
            match, _ = route.matches(probe)
            if match == Match.FULL:
                allowed.append(method)
                break
    return allowed
