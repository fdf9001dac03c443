"""The MCP server through the official ``mcp`` SDK's own clients: ``sessionkeeper mcp`` on
stdio (a subprocess), and ``/mcp`` on a real ``serve`` (tests/serving.py) with scoped keys.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from serving import served
from sessionkeeper.models import NewMessage
from sessionkeeper.store.core import Store

MARKER_A = "The saffron kiwi protocol starts at dawn."
MARKER_B = "Agent B keeps the saffron kiwi ledger hidden."
READ_TOOLS = ["search_sessions", "list_sessions", "read_session", "recall"]


async def _plant(url: str) -> tuple[str, str]:
    store = await Store.open(url)
    try:
        ids = []
        for agent, marker in (("A", MARKER_A), ("B", MARKER_B)):
            s = await store.create_session(agent_id=agent, title=f"{agent}'s plans")
            await store.add_messages(
                s.session_id,
                [
                    NewMessage("user", "What is the plan?"),
                    NewMessage("assistant", marker),
                    NewMessage("user", "Good."),
                ],
            )
            ids.append(s.session_id)
        return ids[0], ids[1]
    finally:
        await store.close()


async def _call(session: ClientSession, tool: str, args: dict[str, Any]) -> Any:
    result = await session.call_tool(tool, args)
    assert not result.is_error, result.content
    return result.structured_content


async def test_stdio_client_finds_the_marker(file_db_url: str) -> None:
    a, b = await _plant(file_db_url)
    env = {k: v for k, v in os.environ.items() if k != "SESSIONKEEPER_DATABASE_URL"}
    env["PYTHONPATH"] = str(Path(__file__).parents[1] / "src")
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "sessionkeeper", "--db", file_db_url, "mcp"],
        env=env,
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = await session.list_tools()
        assert [t.name for t in listed.tools] == READ_TOOLS  # no remember without the flag
        described = {t.name: t for t in listed.tools}
        assert described["recall"].input_schema["required"] == ["query"]
        assert described["recall"].description and "max_tokens" in described["recall"].description

        found = await _call(session, "search_sessions", {"query": "saffron kiwi protocol"})
        assert [(h["session_id"], h["seq"]) for h in found["hits"]] == [(a, 2)]
        recalled = await _call(session, "recall", {"query": "saffron kiwi", "context": 1})
        by_session = {p["session_id"]: p for p in recalled["passages"]}
        assert set(by_session) == {a, b}  # stdio is the local user: every agent
        texts = [m["content"] for m in by_session[a]["messages"]]
        assert texts == ["What is the plan?", MARKER_A, "Good."]

        # A bad argument is a tool error in the REST API's words, and the server goes on.
        bad = await session.call_tool("search_sessions", {"query": "kiwi", "limit": 1000})
        assert bad.is_error
        assert bad.content[0].text == (  # type: ignore[union-attr]
            "argument 'limit': Input should be less than or equal to 100"
        )
        missing = await session.call_tool("read_session", {"session_id": "no-such"})
        assert missing.is_error and missing.structured_content == {
            "error": "not_found",
            "detail": "session 'no-such' not found",
        }
        empty = await session.call_tool("recall", {"query": "?!"})
        assert empty.is_error
        assert empty.content[0].text == "search query '?!' has no words to search for"  # type: ignore[union-attr]
        again = await _call(session, "read_session", {"session_id": a, "last": 1})
        assert [m["content"] for m in again["messages"]] == ["Good."]


@asynccontextmanager
async def _http_session(base: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{base}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


async def test_http_key_scoped_to_agent_a_never_sees_b(file_db_url: str, tmp_path: Path) -> None:
    a, b = await _plant(file_db_url)
    store = await Store.open(file_db_url)
    try:
        _, key_a = await store.keys.create(agent_ids=["A"], name="bot-a")
        _, admin = await store.keys.create(admin=True, name="ops")
    finally:
        await store.close()
    with served(file_db_url, tmp_path, env={"SESSIONKEEPER_MCP_WRITES": "true"}) as server:
        # Without a key: the REST API's 401, before any MCP.
        async with httpx.AsyncClient(trust_env=False) as http:
            refused = await http.post(
                f"{server.base}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                headers={"Accept": "application/json, text/event-stream"},
            )
        assert refused.status_code == 401
        assert refused.json()["error"] == "unauthorized"

        async with _http_session(server.base, key_a) as session:
            tools = [t.name for t in (await session.list_tools()).tools]
            assert tools == [*READ_TOOLS, "remember"]  # the server runs with writes
            found = await _call(session, "search_sessions", {"query": "saffron kiwi"})
            assert [h["session_id"] for h in found["hits"]] == [a]
            recalled = await _call(session, "recall", {"query": "saffron kiwi ledger"})
            assert recalled["passages"] == []
            recalled = await _call(session, "recall", {"query": "saffron kiwi"})
            assert [p["session_id"] for p in recalled["passages"]] == [a]
            assert MARKER_B not in str(recalled)
            listed = await _call(session, "list_sessions", {})
            assert [s["session_id"] for s in listed["sessions"]] == [a]
            hidden = await session.call_tool("read_session", {"session_id": b})
            assert hidden.is_error
            assert hidden.content[0].text == f"session '{b}' not found"  # type: ignore[union-attr]
            asked = await _call(session, "search_sessions", {"query": "ledger", "agent_id": "B"})
            assert asked["hits"] == []
            wrong = await session.call_tool("remember", {"note": "x", "agent_id": "B"})
            assert wrong.is_error
            assert wrong.content[0].text == "this key may not act for agent 'B'"  # type: ignore[union-attr]
            noted = await _call(session, "remember", {"note": "The kiwi vault code is 4417."})
            assert noted["agent_id"] == "A"
            # Still answering after the errors, and the note is found like any message.
            found = await _call(session, "search_sessions", {"query": "vault code"})
            assert [h["session_id"] for h in found["hits"]] == [noted["session_id"]]

        async with _http_session(server.base, admin) as session:
            found = await _call(session, "search_sessions", {"query": "saffron kiwi"})
            assert {h["session_id"] for h in found["hits"]} == {a, b}
        assert server.unhandled() == 0, server.diagnosis()


async def test_http_without_writes_has_no_remember(file_db_url: str, tmp_path: Path) -> None:
    store = await Store.open(file_db_url)
    try:
        _, admin = await store.keys.create(admin=True)
    finally:
        await store.close()
    with served(file_db_url, tmp_path) as server:
        async with _http_session(server.base, admin) as session:
            assert [t.name for t in (await session.list_tools()).tools] == READ_TOOLS
            result = await session.call_tool("remember", {"note": "x"})
            assert result.is_error
            assert result.content[0].text == "Unknown tool: remember"  # type: ignore[union-attr]


def test_readme_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## MCP server\n", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(code)
    env = {k: v for k, v in os.environ.items() if k != "SESSIONKEEPER_DATABASE_URL"}
    env["PYTHONPATH"] = str(Path(__file__).parents[1] / "src")
    for _ in range(2):  # the second run plants the note again: recall still gives it once
        out = subprocess.run(
            [sys.executable, "example.py"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        assert out.stdout.splitlines() == [
            f"assistant {READ_TOOLS}",
            "Kyoto trip | My passport number ends in 4417.",
        ], out.stderr
