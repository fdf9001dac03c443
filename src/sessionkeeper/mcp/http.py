"""``/mcp`` on ``serve``: the MCP server over streamable HTTP, scoped by the REST API's keys.

The API key comes in ``Authorization: Bearer`` and is checked by the REST API's code
(``api/auth.py``): for a request with a body, by ``api/limits.py`` before a byte of it is read
(``/mcp`` is one of its protected paths); for one without, here. A refused key is the REST
API's 401, in its body. The caller's ``Principal`` travels in the ASGI scope to the tools,
which scope every read with it exactly as the REST routes do (``tools.py``).

The transport is stateless (each POST carries its own JSON-RPC exchange and is answered with
JSON): any replica can answer any request, as for the REST API. ``remember`` is served only
when the server was started with writes allowed (``serve --mcp-writes`` or
``SESSIONKEEPER_MCP_WRITES=true``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.mcpserver import Context
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from sessionkeeper.api.deps import PRINCIPAL_SCOPE_KEY, authenticate, get_store
from sessionkeeper.api.errors import error_response
from sessionkeeper.api.principal import Principal
from sessionkeeper.errors import SessionkeeperError, Unauthorized
from sessionkeeper.mcp.server import build_server
from sessionkeeper.mcp.tools import Caller

MCP_PATH = "/mcp"
CALLER_SCOPE_KEY = "sessionkeeper.mcp.caller"


async def _resolve(ctx: Context) -> Caller:
    request = ctx.request_context.request
    caller = None if request is None else getattr(request, "scope", {}).get(CALLER_SCOPE_KEY)
    if not isinstance(caller, Caller):  # never: every request passes McpEndpoint first
        raise Unauthorized("this server needs an API key: send 'Authorization: Bearer <key>'")
    return caller


class McpEndpoint:
    """The ASGI endpoint of ``/mcp``: authenticate, then hand over to the SDK's transport."""

    def __init__(self, *, host: str, allow_writes: bool) -> None:
        self.server = build_server(_resolve, allow_writes=allow_writes)
        self.host = host

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """For the app's lifespan: the SDK's session manager and its task group. A new one
        each time (a manager runs once), so an app's lifespan may run again. The manager's
        task group lives in a task of its own: a lifespan may be entered and left in
        different tasks (pytest fixtures do), which an anyio task group refuses."""
        # The Starlette app this returns is not used (the route is ours): it builds the
        # session manager. On a loopback host the SDK also refuses other Host headers (DNS
        # rebinding protection).
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host=self.host
        )
        manager = self.server.session_manager
        started, stop = asyncio.Event(), asyncio.Event()

        async def run() -> None:
            async with manager.run():
                started.set()
                await stop.wait()

        task = asyncio.create_task(run(), name="sessionkeeper-mcp")
        waiting = asyncio.create_task(started.wait())
        await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            await task  # it failed to start: its exception
        try:
            yield
        finally:
            stop.set()
            await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            principal = scope.get(PRINCIPAL_SCOPE_KEY)
            if not isinstance(principal, Principal):
                principal = await authenticate(request)
            scope[CALLER_SCOPE_KEY] = Caller(get_store(request), principal)
        except SessionkeeperError as exc:
            await error_response(exc)(scope, receive, send)
            return
        await self.server.session_manager.handle_request(scope, receive, send)


def install_mcp(app: Any, *, host: str, allow_writes: bool) -> McpEndpoint:
    """Route ``/mcp`` (GET, POST, DELETE) of ``app`` to a new MCP endpoint; the caller runs
    ``endpoint.running()`` in the app's lifespan."""
    endpoint = McpEndpoint(host=host, allow_writes=allow_writes)
    app.router.add_route(MCP_PATH, endpoint, methods=["GET", "POST", "DELETE"])
    return endpoint
