"""``sessionkeeper mcp``: the MCP server on stdio (``sessionkeeper/mcp/``), for an agent's
client to start (Claude Desktop/Code ``mcpServers``, the OpenAI Agents SDK's
``MCPServerStdio``…). The ``mcp`` SDK is imported only when this command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from sessionkeeper.cli import common

app = typer.Typer()


@app.command("mcp")
def mcp_command(
    allow_writes: Annotated[
        bool,
        typer.Option(
            "--allow-writes",
            help="Also serve the writing tool: remember (a note appended to a per-user "
            "memory session). Without it every tool only reads.",
        ),
    ] = False,
) -> None:
    """Serve the MCP tools on stdin/stdout: search_sessions, list_sessions, read_session,
    recall (and remember with --allow-writes), over every session of the database.

    An MCP client starts this command; it answers until the client closes stdin. For a
    scoped server (a key that sees some agents' sessions only) use `serve` and its /mcp.
    """
    import asyncio

    from sessionkeeper.mcp.stdio import serve_stdio

    url = common.check_database(create=allow_writes)
    asyncio.run(serve_stdio(url, encoding=common.encoding(), allow_writes=allow_writes))
