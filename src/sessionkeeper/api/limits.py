"""Request limits, before anything reads a body: the head's size, the API key, the body's size.

FastAPI reads and parses a route's body before it solves the route's dependencies, the API
key check among them: four concurrent 100 MB POSTs without a key once took the server from
64 MB to 986 MB before the 401s. ``RequestLimits`` is a pure ASGI middleware that runs before
routing, for every HTTP request:

0. A request line plus headers over ``MAX_HEAD_SIZE`` (16 KiB) is answered 414 (the request
   line alone is over it) or 431. h11 answers a head that arrives in pieces itself
   (``api/http11.py``); one that arrived in a single read reaches the app and is held to the
   same rule here.

Then, for a request with a body (a ``Content-Length`` above 0, or a ``Transfer-Encoding``;
requests without one pass through untouched):

1. Under ``/api/engine`` and at ``/mcp`` the API key is checked from the headers alone
   (``api/auth.py``); a request it refuses is answered (401, 403, 503) without reading a
   byte of the body. The caller is left in the scope (``PRINCIPAL_SCOPE_KEY``) for
   ``get_principal`` (and ``mcp/http.py``), so the key is verified once per request.
2. A ``Content-Length`` above the limit is answered 413 before the body is read.
3. A body of unannounced length (chunked) is counted as it arrives: the read that passes the
   limit fails with 413 at once, so no more than the limit is ever handed to the app. Nothing
   is buffered here.

Every answer is ``ErrorBody``; the request metrics count those given here, before routing,
under the route ``<unmatched>`` (a body read past the limit inside a route is 413 under that
route). The server drains and discards what the client still sends
after such an early answer (uvicorn does, keeping the connection), so the client reads the
401 or 413 instead of a reset; a client that sends ``Expect: 100-continue`` never uploads the
body at all.

The body limit (``Settings.max_body_size``, ``SESSIONKEEPER_MAX_BODY_SIZE``, default 8 MiB)
fits the largest message the Store accepts written in any JSON spelling: 100,000 characters
of content at up to 12 bytes each (``\\ud83d\\ude00`` escapes) plus 1,000,000 bytes of
metadata at up to 3 times that (``\\u`` escapes of 4-byte characters) is 4.2 MB. Starlette's
and FastAPI's own body limit (``max_body_size``) would run outside this middleware, so before
the key check, and answer in its own body rather than ``ErrorBody``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sessionkeeper.api.deps import PRINCIPAL_SCOPE_KEY, authenticate
from sessionkeeper.api.errors import error_body, error_response
from sessionkeeper.errors import SessionkeeperError, TooLarge

API_PREFIX = "/api/engine"
MCP_PATH = "/mcp"  # the MCP server (mcp/http.py): the same keys
SETTING = "SESSIONKEEPER_MAX_BODY_SIZE"
# The request line plus headers, as h11 (the HTTP parser ``serve`` runs) limits them.
MAX_HEAD_SIZE = 16 * 1024


def head_refusal(line_size: int | None, head_size: int, limit: int) -> tuple[int, str, str]:
    """(status, error code, detail) for a request head of ``head_size`` bytes over ``limit``;
    ``line_size`` is its request line's (None: the line itself never ended)."""
    if line_size is None or line_size > limit:
        return (
            414,
            "uri_too_long",
            f"the request line (method, URL and version) is over {limit:,} bytes; "
            "send long values in a request body",
        )
    return (
        431,
        "request_header_fields_too_large",
        f"the request line and headers are {head_size:,} bytes together, over {limit:,}",
    )


def _head_sizes(scope: Scope) -> tuple[int, int]:
    """(request line, whole head) in bytes, as they arrived (to the odd space)."""
    target = len(scope.get("raw_path") or scope["path"].encode())
    query: bytes = scope.get("query_string", b"")
    if query:
        target += 1 + len(query)
    line = len(scope["method"]) + 1 + target + len(" HTTP/1.1\r\n")
    fields = sum(len(name) + len(value) + 4 for name, value in scope["headers"])
    return line, line + fields + 2


def too_large(limit: int, size: int | None = None) -> TooLarge:
    """The refusal of a body over ``limit`` bytes (``size``: its announced length)."""
    said = "" if size is None else f"{size:,} bytes, "
    return TooLarge(
        f"the request body is {said}over the limit of {limit:,} bytes ({SETTING}); nothing was "
        "stored (send a large batch of messages as several requests)",
        field="body",
        limit=limit,
    )


class BodyTooLarge(StarletteHTTPException):
    """Raised by the counting ``receive`` when a body passes the limit.

    An HTTPException, because FastAPI re-raises those from its body reading (anything else
    becomes "400 There was an error parsing the body"); its handler answers with ``error``.
    """

    def __init__(self, error: TooLarge) -> None:
        super().__init__(status_code=413, detail=error.message)
        self.error = error


async def _body_too_large(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BodyTooLarge)
    return error_response(exc.error)


def has_body(headers: Headers) -> bool:
    """HTTP/1.1: a body is announced by ``Transfer-Encoding`` or a ``Content-Length``."""
    if "transfer-encoding" in headers:
        return True
    length = content_length(headers)
    return length is not None and length > 0


def content_length(headers: Headers) -> int | None:
    """The announced length; None when there is none (the server refuses a malformed one)."""
    value = headers.get("content-length")
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        return None


def is_protected(scope: Scope) -> bool:
    """Whether the path is the API's (every route under ``/api/engine`` needs a caller, and
    so does the MCP server at ``/mcp``)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path in (API_PREFIX, MCP_PATH) or path.startswith(API_PREFIX + "/")


class _CountedReceive:
    """``receive`` that fails with 413 once more than ``limit`` body bytes have arrived."""

    def __init__(self, receive: Receive, limit: int) -> None:
        self.receive = receive
        self.limit = limit
        self.received = 0

    async def __call__(self) -> Message:
        if self.received > self.limit:
            raise BodyTooLarge(too_large(self.limit))
        message = await self.receive()
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > self.limit:
                raise BodyTooLarge(too_large(self.limit))
        return message


class RequestLimits:
    """The head's size, then the key, then the body's size (see the module docstring)."""

    def __init__(self, app: ASGIApp, limit: int, head_limit: int = MAX_HEAD_SIZE) -> None:
        self.app = app
        self.limit = limit
        self.head_limit = head_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        line, head = _head_sizes(scope)
        if head > self.head_limit:
            # h11 refuses a head over its limit only while it is incomplete (api/http11.py);
            # one that arrived whole in a single read is held to the same rule here.
            status, code, detail = head_refusal(line, head, self.head_limit)
            response = JSONResponse(error_body(code, detail), status_code=status)
            await self.answer(scope, receive, send, response)
            return
        headers = Headers(scope=scope)
        if not has_body(headers):
            await self.app(scope, receive, send)
            return
        if is_protected(scope):
            try:
                scope[PRINCIPAL_SCOPE_KEY] = await authenticate(Request(scope))
            except SessionkeeperError as exc:
                await self.answer(scope, receive, send, error_response(exc))
                return
        size = content_length(headers)
        if size is not None and size > self.limit:
            await self.answer(scope, receive, send, error_response(too_large(self.limit, size)))
            return
        started = False

        async def noting_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, _CountedReceive(receive, self.limit), noting_send)
        except BodyTooLarge as exc:  # read where no handler answers it
            if started:
                raise
            await error_response(exc.error)(scope, receive, send)

    @staticmethod
    async def answer(scope: Scope, receive: Receive, send: Send, response: JSONResponse) -> None:
        """Answer before routing (a JSON response reads nothing of the request)."""
        await response(scope, receive, send)


def install_limits(app: FastAPI, limit: int) -> None:
    """The request limits (``limit``: the body's, in bytes) and the 413 of a counted body."""
    app.add_exception_handler(BodyTooLarge, _body_too_large)
    app.add_middleware(RequestLimits, limit=limit)
