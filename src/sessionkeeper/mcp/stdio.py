"""``sessionkeeper mcp``: the MCP server on stdin/stdout, for an agent that starts it.

Whoever can start this command can open the database itself, so the caller is an admin (every
agent's and user's sessions); to give an agent less, serve ``/mcp`` over HTTP with a scoped
API key. Nothing but MCP messages goes to stdout (logs go to stderr).
"""

from __future__ import annotations

from sessionkeeper.api.principal import Principal
from sessionkeeper.mcp.server import build_server
from sessionkeeper.mcp.tools import Caller
from sessionkeeper.store.core import Store

LOCAL = Principal(name="local (stdio)")


async def serve_stdio(url: str, *, encoding: str, allow_writes: bool) -> None:
    """Open the store, answer MCP on stdio until the client closes it, close the store."""
    store = await Store.open(url, encoding=encoding)
    try:
        caller = Caller(store, LOCAL)

        async def resolve(_ctx: object) -> Caller:
            return caller

        await build_server(resolve, allow_writes=allow_writes).run_stdio_async()
    finally:
        await store.close()
