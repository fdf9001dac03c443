"""``import --from KIND``: other stores' databases, written by their own classes, imported.

Every kind: the source database is made by the source library itself (the Agents SDK's
``SQLiteSession`` / ``AdvancedSQLiteSession`` / ``SQLAlchemySession``, langchain-postgres'
``PostgresChatMessageHistory`` …), imported into SQLite file, SQLite memory and PostgreSQL,
and read back through the matching sessionkeeper integration: what it returns must equal what
the source class returns, session by session; a second import adds nothing; a bad source is
a clear error and writes nothing.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from clitools import as_json, isolate_user, make_invoke
from pgadmin import _admin, _pg_url_for, _reset_pg
from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.store.core import Store
from sessionkeeper.transfer.foreign import open_reader
from sessionkeeper.transfer.imports import ImportSummary, run_foreign_import

LONG = "long " * 20_001  # 100,005 characters: more than a message may hold


def openai_conversations() -> dict[str, list[list[dict[str, Any]]]]:
    """Sessions → batches of input items (each batch one add_items), every item kind."""
    return {
        "conv-1": [
            [{"role": "user", "content": "Hello there, what is the weather in Zürich?"}],
            [
                {
                    "type": "reasoning",
                    "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "look it up"}],
                },
                {
                    "type": "function_call",
                    "id": "fc_1",
                    "call_id": "call_1",
                    "name": "weather",
                    "arguments": '{"city": "Zürich", "scale": 1e+16}',
                    "status": "completed",
                },
                {"type": "function_call_output", "call_id": "call_1", "output": "sunny, -0.0 °C"},
                {
                    "type": "message",
                    "id": "msg_1",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": "Sunny 🌞", "annotations": []}],
                },
            ],
        ],
        "conv two / with spaces": [[{"role": "user", "content": "an id we cannot keep"}]],
        "long": [
            [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [{"type": "input_text", "text": LONG}]},
                {"role": "assistant", "content": "ok", "extra": {"n": 1.5e-7, "big": 2**70}},
            ]
        ],
    }


async def make_sqlite_session_db(path: Path) -> dict[str, list[dict[str, Any]]]:
    """A database written by the SDK's own SQLiteSession; returns get_items() per session."""
    from agents import SQLiteSession

    seen: dict[str, list[dict[str, Any]]] = {}
    for sid, batches in openai_conversations().items():
        session = SQLiteSession(sid, str(path))
        for batch in batches:
            await session.add_items(batch)  # type: ignore[arg-type]
        seen[sid] = list(await session.get_items())  # type: ignore[arg-type]
        session.close()
    return seen


async def add_unreadable_row(path: Path, session_id: str) -> list[Any]:
    """A row the SDK skips on read (not JSON) in ``session_id``; its get_items() after."""
    from agents import SQLiteSession

    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
            (session_id, "{truncated"),
        )
    conn.close()
    session = SQLiteSession(session_id, str(path))
    items = list(await session.get_items())
    session.close()
    return items


async def make_advanced_db(path: Path) -> tuple[dict[str, list[Any]], str]:
    """A database written by AdvancedSQLiteSession, with a branch: items per (session,
    branch) and the branch's name."""
    from agents.extensions.memory import AdvancedSQLiteSession

    adv = AdvancedSQLiteSession(session_id="adv", db_path=str(path), create_tables=True)
    await adv.add_items([{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}])
    await adv.add_items([{"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}])
    branch = await adv.create_branch_from_turn(2)
    await adv.add_items([{"role": "user", "content": "q2, asked again"}])
    main = list(await adv.get_items(branch_id="main"))
    alt = list(await adv.get_items(branch_id=branch))
    adv.close()
    plain = AdvancedSQLiteSession(session_id="adv2", db_path=str(path), create_tables=True)
    await plain.add_items([{"role": "user", "content": "just one"}])
    fresh = AdvancedSQLiteSession(session_id="adv", db_path=str(path))
    main_fresh = list(await fresh.get_items())  # what a new instance reads: main
    fresh.close()
    assert main_fresh == main
    two = list(await plain.get_items())
    plain.close()
    return {"adv": main, f"adv:branch:{branch}": alt, "adv2": two}, branch


async def import_from(store: Store, kind: str, source: str, **options: Any) -> ImportSummary:
    reader = await open_reader(kind, source, **options)
    try:
        return await run_foreign_import(store, reader)
    finally:
        await reader.close()


async def openai_items(store: Store, session_id: str) -> list[Any]:
    from sessionkeeper.integrations.openai_agents import SessionkeeperSession

    return list(await SessionkeeperSession(session_id, store=store).get_items())


def stored_id(source_id: str, kind: str = "openai") -> str:
    from sessionkeeper.transfer.records import database_id

    return database_id(source_id, kind)


# ── OpenAI Agents SDK ─────────────────────────────────────────────────────────


async def test_openai_sqlite_session_imported_exactly(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "agents.db"
    expected = await make_sqlite_session_db(source)
    expected["long"] = await add_unreadable_row(source, "long")
    summary = await import_from(store, "openai-sqlite", str(source))
    assert summary.failed == []
    assert len(summary.imported) == 3
    assert summary.warnings == [
        "long: 1 row(s) that are not a JSON item (the SDK skips them) kept in metadata "
        "openai_unreadable"
    ]
    kept = (await store.get_session("long")).metadata["openai_unreadable"]
    assert [row["message_data"] for row in kept] == ["{truncated"]
    for sid, items in expected.items():
        assert await openai_items(store, stored_id(sid)) == items, sid
    # what the store made of them: ordinary sessions, searchable, with provenance
    first = await store.get_session("conv-1")
    assert first.session_type == "openai-agents"
    assert first.title == "Hello there, what is the weather in Zürich?"
    assert first.metadata["imported_from"] == {"kind": "openai-sqlite", "source_id": "conv-1"}
    hashed = await store.get_session(stored_id("conv two / with spaces"))
    assert hashed.metadata["imported_from"]["source_id"] == "conv two / with spaces"
    hits = await store.search_messages("Zürich")
    assert {h.session_id for h in hits} == {"conv-1"}
    # the long item: an excerpt as content, the whole item kept, its full token count
    long_messages = await store.get_messages(stored_id("long"))
    assert len(long_messages[1].content) == 100_000
    assert long_messages[1].token_count > 20_000
    # a second import adds nothing
    again = await import_from(store, "openai-sqlite", str(source))
    assert again.imported == [] and len(again.skipped) == 3 and again.failed == []
    stats = await store.get_stats()
    assert stats.total_messages == sum(len(v) for v in expected.values())


async def test_openai_advanced_session_branches(store: Store, tmp_path: Path) -> None:
    source = tmp_path / "advanced.db"
    expected, branch = await make_advanced_db(source)
    summary = await import_from(store, "openai-sqlite", str(source))
    assert summary.failed == [] and len(summary.imported) == 3
    for sid, items in expected.items():
        assert await openai_items(store, stored_id(sid)) == items, sid
    main = await store.get_session("adv")
    assert [u["user_turn_number"] for u in main.metadata.get("openai_turn_usage", [])] in (
        [],
        [1, 2],
    )
    alt = await store.get_session(stored_id(f"adv:branch:{branch}"))
    assert alt.metadata["openai_branch"] == {"session_id": "adv", "branch_id": branch}
    message = (await store.get_messages("adv"))[2]
    assert message.metadata["openai_structure"]["user_turn_number"] == 2
    again = await import_from(store, "openai-sqlite", str(source))
    assert again.imported == [] and len(again.skipped) == 3


@pytest.fixture(scope="session")
def source_pg_database(pg_database_url: str) -> Iterator[str]:
    """A PostgreSQL database beside the store's, for a source store's tables (created once a
    run: after ``pg_database_url``, which skips or fails loudly when PostgreSQL is absent)."""
    name = f"sk_src_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    yield _pg_url_for(name)
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def source_pg_url(source_pg_database: str) -> str:
    """The source database, emptied."""
    await _reset_pg(source_pg_database)
    return source_pg_database


async def check_openai_sqlalchemy(store: Store, url: str) -> None:
    from agents.extensions.memory import SQLAlchemySession

    expected: dict[str, list[Any]] = {}
    for sid, batches in openai_conversations().items():
        session = SQLAlchemySession.from_url(sid, url=url, create_tables=True)
        for batch in batches:
            await session.add_items(batch)  # type: ignore[arg-type]
        expected[sid] = list(await session.get_items())
        await session.engine.dispose()
    summary = await import_from(store, "openai-sqlalchemy", url)
    assert summary.failed == [] and len(summary.imported) == 3
    for sid, items in expected.items():
        assert await openai_items(store, stored_id(sid)) == items, sid
    again = await import_from(store, "openai-sqlalchemy", url)
    assert again.imported == [] and len(again.skipped) == 3


async def test_openai_sqlalchemy_session_on_sqlite(store: Store, tmp_path: Path) -> None:
    await check_openai_sqlalchemy(store, f"sqlite+aiosqlite:///{tmp_path / 'sa.db'}")


async def test_openai_sqlalchemy_session_on_postgresql(store: Store, source_pg_url: str) -> None:
    url = source_pg_url.replace("postgresql://", "postgresql+asyncpg://")
    await check_openai_sqlalchemy(store, url)


# ── bad sources ───────────────────────────────────────────────────────────────


async def test_bad_sources_are_clear_errors_and_write_nothing(store: Store, tmp_path: Path) -> None:
    missing = tmp_path / "absent.db"
    with pytest.raises(NotFound, match="no such file"):
        await open_reader("openai-sqlite", str(missing))
    assert not missing.exists()  # never created by looking
    text = tmp_path / "notes.txt"
    text.write_text("not a database at all, just some text\n" * 100)
    with pytest.raises(InvalidInput, match="not a SQLite database"):
        await open_reader("openai-sqlite", str(text))
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE agent_sessions (session_id TEXT, created_at, updated_at)")
    with pytest.raises(InvalidInput, match="no table 'agent_messages'"):
        await open_reader("openai-sqlite", str(other))
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE agent_messages (id INTEGER, session_id TEXT)")
    with pytest.raises(InvalidInput, match="has no column created_at, message_data"):
        await open_reader("openai-sqlite", str(other))
    with pytest.raises(InvalidInput, match="unknown --from kind"):
        await open_reader("openai", str(other))
    with pytest.raises(InvalidInput, match="needs --table"):
        await open_reader("langchain-postgres", "postgresql://127.0.0.1/x")
    with pytest.raises(InvalidInput, match="in-memory"):
        await open_reader("openai-sqlalchemy", "sqlite+aiosqlite:///:memory:")
    assert (await store.list_sessions()).total == 0


def test_cli_import_from(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command: --dry-run counts, the import, a re-run adding 0 (as JSON), and a bad
    source that exits with an error and does not even create the database file."""
    isolate_user(tmp_path, monkeypatch)
    source = tmp_path / "agents.db"
    expected = asyncio.run(make_sqlite_session_db(source))
    db = tmp_path / "store.db"
    invoke = make_invoke(f"sqlite:///{db}")
    args = ("import", "--from", "openai-sqlite", str(source))
    assert as_json(invoke(*args, "--dry-run", "--json")) == {
        "format": "openai-sqlite",
        "source": str(source),
        "dry_run": True,
        "sessions": 3,
        "messages": sum(len(v) for v in expected.values()),
    }
    assert not db.exists()
    first = invoke(*args)
    assert first.exit_code == 0, first.output
    assert "Imported 3 sessions" in first.stdout
    second = as_json(invoke(*args, "--json"))
    assert (second["imported_count"], second["skipped_count"]) == (0, 3)
    other = tmp_path / "fresh.db"
    bad = invoke(
        "import", "--from", "openai-sqlite", str(tmp_path / "nope.db"), db=f"sqlite:///{other}"
    )
    assert bad.exit_code != 0
    assert "no such file" in bad.stderr
    assert not other.exists()
    both = invoke(*args, "--format", "jsonl")
    assert both.exit_code != 0 and "not both" in both.stderr
    wrong = invoke("import", "--from", "openai-sqlite", str(db))  # our own store: not that kind
    assert wrong.exit_code != 0
    assert "no table 'agent_sessions'" in wrong.stderr


# ── LangChain (langchain-postgres) ───────────────────────────────────────────


def langchain_histories() -> dict[str, list[Any]]:
    from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage

    call = {"name": "weather", "args": {"city": "Zürich", "n": 1.5e-7}, "id": "call_1"}
    return {
        str(uuid.UUID(int=1)): [
            SystemMessage(content="be brief"),
            HumanMessage(content="What is the weather in Zürich?", id="h1"),
            AIMessage(
                content="",
                tool_calls=[{**call, "type": "tool_call"}],
                usage_metadata={"input_tokens": 10, "output_tokens": 3, "total_tokens": 13},
                response_metadata={"model_name": "m"},
            ),
            ToolMessage(content="sunny", tool_call_id="call_1", name="weather"),
            AIMessage(content=[{"type": "text", "text": "Sunny 🌞"}], additional_kwargs={"x": 1}),
        ],
        str(uuid.UUID(int=2)): [HumanMessage(content=LONG), AIMessage(content="ok")],
    }


async def test_langchain_postgres_history(store: Store, source_pg_url: str) -> None:
    import psycopg
    from langchain_postgres import PostgresChatMessageHistory

    from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory

    table = "chat_history"
    expected: dict[str, list[Any]] = {}
    conn = psycopg.connect(source_pg_url)
    try:
        PostgresChatMessageHistory.create_tables(conn, table)
        for sid, messages in langchain_histories().items():
            history = PostgresChatMessageHistory(table, sid, sync_connection=conn)
            history.add_messages(messages[:2])
            history.add_messages(messages[2:])
            expected[sid] = history.messages
    finally:
        conn.close()
    summary = await import_from(store, "langchain-postgres", source_pg_url, table=table)
    assert summary.failed == [] and len(summary.imported) == 2
    for sid, messages in expected.items():
        ours = SessionkeeperChatMessageHistory(sid, store=store)
        assert await ours.aget_messages() == messages, sid
    first = await store.get_session(str(uuid.UUID(int=1)))
    assert first.session_type == "langchain"
    assert first.title == "What is the weather in Zürich?"
    assert [m.role for m in await store.get_messages(first.session_id)] == [
        "system",
        "user",
        "assistant",
        "tool",
        "assistant",
    ]
    again = await import_from(store, "langchain-postgres", source_pg_url, table=table)
    assert again.imported == [] and len(again.skipped) == 2
    with pytest.raises(InvalidInput, match="no table 'nope'"):
        await open_reader("langchain-postgres", source_pg_url, table="nope")
    with pytest.raises(NotFound, match="no such database"):
        await open_reader("langchain-postgres", source_pg_url + "_absent", table=table)


# ── LangGraph checkpointers ───────────────────────────────────────────────────


def langgraph_graph(checkpointer: Any, replies: list[str]) -> Any:
    """chatbot → approval (interrupts when the reply asks to confirm: a pending write)."""
    from langchain_core.language_models import FakeListChatModel
    from langchain_core.messages import AIMessage
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.types import interrupt

    model = FakeListChatModel(responses=replies)

    def chatbot(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def approval(state: MessagesState) -> dict[str, Any]:
        last = state["messages"][-1]
        if "confirm" not in str(last.content):
            return {}
        decision = interrupt({"question": "Book it?", "draft": last.content})
        return {"messages": [AIMessage(content=f"Booked: {decision}")]}

    graph = StateGraph(MessagesState)
    graph.add_node("chatbot", chatbot)
    graph.add_node("approval", approval)
    graph.add_edge(START, "chatbot")
    graph.add_edge("chatbot", "approval")
    graph.add_edge("approval", END)
    return graph.compile(checkpointer=checkpointer)


async def run_threads(saver: Any) -> None:
    """Thread t1: two turns, the second interrupted (pending); t2: one turn with a resume."""
    from langgraph.types import Command

    g1 = langgraph_graph(saver, ["Hello, Zürich!", "I can book that: please confirm."])
    t1 = {"configurable": {"thread_id": "t1"}}
    await g1.ainvoke({"messages": [("user", "Hi there")]}, t1)
    await g1.ainvoke({"messages": [("user", "Book me a trip")]}, t1)
    g2 = langgraph_graph(saver, ["please confirm the order"])
    t2 = {"configurable": {"thread_id": "t2"}}
    await g2.ainvoke({"messages": [("user", "Order pizza")]}, t2)
    await g2.ainvoke(Command(resume="yes"), t2)


async def checkpoint_history(saver: Any, thread_id: str) -> list[tuple[Any, ...]]:
    """What a saver's ``alist`` gives for a thread, comparable across savers."""
    return [
        (t.config, t.checkpoint, t.metadata, t.parent_config, t.pending_writes)
        async for t in saver.alist({"configurable": {"thread_id": thread_id}})
    ]


async def check_langgraph(store: Store, kind: str, source: str, source_saver: Any) -> None:
    from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver

    expected = {t: await checkpoint_history(source_saver, t) for t in ("t1", "t2")}
    states = {
        t: await langgraph_graph(source_saver, []).aget_state({"configurable": {"thread_id": t}})
        for t in ("t1", "t2")
    }
    summary = await import_from(store, kind, source)
    assert summary.failed == [] and sorted(summary.imported) == ["t1", "t2"]
    ours = AsyncSessionkeeperSaver(store)
    for thread_id, history in expected.items():
        assert await checkpoint_history(ours, thread_id) == history, thread_id
        state = await langgraph_graph(ours, []).aget_state(
            {"configurable": {"thread_id": thread_id}}
        )
        assert state.values == states[thread_id].values
        assert state.next == states[thread_id].next
        assert state.config == states[thread_id].config
        assert [i.value for i in state.interrupts] == [
            i.value for i in states[thread_id].interrupts
        ]
    t1 = await store.get_session("t1")
    assert t1.session_type == "langgraph" and t1.title == "Hi there"
    assert [m.content for m in await store.get_messages("t1")] == [
        "Hi there",
        "Hello, Zürich!",
        "Book me a trip",
        "I can book that: please confirm.",
    ]
    assert t1.metadata["imported_from"] == {"kind": kind, "source_id": "t1"}
    again = await import_from(store, kind, source)
    assert again.imported == [] and len(again.skipped) == 2


async def test_langgraph_sqlite_threads(store: Store, tmp_path: Path) -> None:
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    path = tmp_path / "graph.db"
    async with AsyncSqliteSaver.from_conn_string(str(path)) as saver:
        await run_threads(saver)
        await check_langgraph(store, "langgraph-sqlite", str(path), saver)


async def test_langgraph_postgres_threads(store: Store, source_pg_url: str) -> None:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    async with AsyncPostgresSaver.from_conn_string(source_pg_url) as saver:
        await saver.setup()
        await run_threads(saver)
        await check_langgraph(store, "langgraph-postgres", source_pg_url, saver)


# ── Google ADK (DatabaseSessionService) ───────────────────────────────────────


async def fill_adk(service: Any) -> None:
    """Two users of one app and another app: state in every scope, text, a function call
    and its response with a state delta, binary data, actions."""
    from google.adk.events.event import Event
    from google.adk.events.event_actions import EventActions
    from google.genai import types

    s1 = await service.create_session(
        app_name="travel",
        user_id="ada",
        session_id="trip-1",
        state={"plan": "Oslo", "app:currency": "NOK", "user:name": "Ada"},
    )
    events = [
        Event(
            invocation_id="i1",
            author="user",
            content=types.Content(role="user", parts=[types.Part(text="Weather in Oslo?")]),
        ),
        Event(
            invocation_id="i1",
            author="planner",
            content=types.Content(
                role="model",
                parts=[types.Part.from_function_call(name="weather", args={"city": "Oslo"})],
            ),
        ),
        Event(
            invocation_id="i1",
            author="planner",
            content=types.Content(
                role="user",
                parts=[types.Part.from_function_response(name="weather", response={"t": -3.5})],
            ),
            actions=EventActions(state_delta={"last_city": "Oslo", "user:visits": 1}),
        ),
        Event(
            invocation_id="i2",
            author="user",
            content=types.Content(
                role="user",
                parts=[types.Part.from_bytes(data=b"\x00\xffimg", mime_type="image/png")],
            ),
            actions=EventActions(artifact_delta={"file": 0}, escalate=True),
        ),
    ]
    for event in events:
        await service.append_event(s1, event)
    s2 = await service.create_session(app_name="travel", user_id="bob", session_id="a b/c")
    await service.append_event(
        s2,
        Event(
            invocation_id="j",
            author="user",
            content=types.Content(role="user", parts=[types.Part(text="hello from Bob")]),
            actions=EventActions(state_delta={"app:season": "winter"}),
        ),
    )
    await service.create_session(app_name="other app", user_id="ada", session_id="empty")


ADK_KEYS = [("travel", "ada", "trip-1"), ("travel", "bob", "a b/c"), ("other app", "ada", "empty")]


async def check_adk(store: Store, url: str) -> None:
    from google.adk.sessions import DatabaseSessionService

    from sessionkeeper.integrations.adk import SessionkeeperSessionService

    source = DatabaseSessionService(db_url=url)
    await fill_adk(source)
    expected = {}
    for app, user, sid in ADK_KEYS:
        expected[(app, user, sid)] = await source.get_session(
            app_name=app, user_id=user, session_id=sid
        )
    user_states = {
        u: await source.get_user_state(app_name="travel", user_id=u) for u in ("ada", "bob")
    }
    await source.close()
    summary = await import_from(store, "adk", url)
    assert summary.failed == [] and len(summary.imported) == 3
    assert summary.messages == 5
    ours = SessionkeeperSessionService(store)
    for (app, user, sid), theirs in expected.items():
        mine = await ours.get_session(app_name=app, user_id=user, session_id=sid)
        assert mine is not None and theirs is not None
        assert mine.events == theirs.events, sid
        assert mine.state == theirs.state, sid
        assert (mine.app_name, mine.user_id, mine.id) == (app, user, sid)
    for u, state in user_states.items():
        assert await ours.get_user_state(app_name="travel", user_id=u) == state
    trip = await store.get_session("trip-1")
    assert trip.session_type == "adk" and trip.title == "Weather in Oslo?"
    assert [m.role for m in await store.get_messages("trip-1")] == [
        "user",
        "assistant",
        "tool",
        "user",
    ]
    again = await import_from(store, "adk", url)
    assert again.imported == [] and len(again.skipped) == 3


async def test_adk_database_on_sqlite(store: Store, tmp_path: Path) -> None:
    await check_adk(store, f"sqlite+aiosqlite:///{tmp_path / 'adk.db'}")


async def test_adk_database_on_postgresql(store: Store, source_pg_url: str) -> None:
    await check_adk(store, source_pg_url.replace("postgresql://", "postgresql+asyncpg://"))


def test_cli_progress_bar_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """On a terminal, an import of many sessions draws Rich's progress bar (on stderr)."""
    import sys

    import pexpect

    from clitools import subprocess_env

    env = subprocess_env(isolate_user(tmp_path, monkeypatch), TERM="xterm", COLUMNS="100")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    source = tmp_path / "many.db"
    with sqlite3.connect(source) as conn:  # the SDK's schema, filled in bulk
        conn.execute(
            "CREATE TABLE agent_sessions (session_id TEXT PRIMARY KEY, "
            "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP, "
            "updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
        )
        conn.execute(
            "CREATE TABLE agent_messages (id INTEGER PRIMARY KEY AUTOINCREMENT, session_id TEXT,"
            " message_data TEXT, created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP)"
        )
        for n in range(400):
            conn.execute("INSERT INTO agent_sessions (session_id) VALUES (?)", (f"s{n}",))
            item = json.dumps({"role": "user", "content": f"message {n}"})
            conn.executemany(
                "INSERT INTO agent_messages (session_id, message_data) VALUES (?, ?)",
                [(f"s{n}", item)] * 5,
            )
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "sessionkeeper",
            "--db",
            f"sqlite:///{tmp_path / 'store.db'}",
            "import",
            "--from",
            "openai-sqlite",
            str(source),
        ],
        env=env,
        encoding="utf-8",
        timeout=60,
    )
    child.expect(pexpect.EOF)
    child.close()
    output = child.before or ""
    assert child.exitstatus == 0, output
    assert "Importing openai-sqlite" in output
    assert "Imported 400 sessions (2000 messages)" in output


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's "Import from other stores" commands that need no server, as written."""
    import re
    import subprocess
    import sys

    from clitools import subprocess_env

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n#### Import from other stores\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block is not None
    commands = [
        line.split("#", 1)[0].split()
        for line in block.group(1).splitlines()
        if "--from openai-sqlite" in line
    ]
    assert len(commands) == 3
    expected = asyncio.run(make_sqlite_session_db(tmp_path / "agents.db"))
    env = subprocess_env(
        isolate_user(tmp_path, monkeypatch),
        SESSIONKEEPER_DATABASE_URL=f"sqlite:///{tmp_path / 'store.db'}",
        PYTHONPATH=str(Path(__file__).resolve().parents[1] / "src"),
    )
    outputs = []
    for argv in commands:
        assert argv[0] == "sessionkeeper"
        done = subprocess.run(
            [sys.executable, "-m", "sessionkeeper", *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        outputs.append(" ".join(done.stdout.split()))
    messages = sum(len(v) for v in expected.values())
    assert f"Would import 3 sessions ({messages} messages)" in outputs[0]
    assert f"Imported 3 sessions ({messages} messages)" in outputs[1]
    assert "Imported 0 sessions (0 messages)" in outputs[2] and "skipped 3" in outputs[2]


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("openai-sqlite", "no table 'agent_sessions'"),
        ("langgraph-sqlite", "no table 'checkpoints': not a LangGraph SqliteSaver database"),
        (
            "adk",
            "table 'sessions' has no column app_name, id, state, update_time: "
            "not a Google ADK DatabaseSessionService database",
        ),
        ("openai-sqlalchemy", "no table 'agent_sessions'"),
    ],
)
async def test_a_database_of_another_kind_is_refused(
    tmp_path: Path, kind: str, message: str
) -> None:
    """Each reader refuses a real database that is not its kind (here: a sessionkeeper
    store with sessions) when it is opened, before any store is written (``open_reader``
    takes none; the CLI opens the store only after it: test_cli_import_from)."""
    other = tmp_path / "sessionkeeper.db"
    mine = await Store.open(f"sqlite:///{other}")
    await mine.create_session(session_id="not-a-source")
    await mine.close()
    url_kinds = ("adk", "openai-sqlalchemy")
    source = f"sqlite:///{other}" if kind in url_kinds else str(other)
    with pytest.raises(InvalidInput, match=message):
        await open_reader(kind, source)


async def test_postgres_sources_of_another_kind_are_refused(source_pg_url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(source_pg_url)
    await conn.execute("CREATE TABLE checkpoints (thread_id text, checkpoint_ns text)")
    await conn.execute(
        "CREATE TABLE events (id text, app_name text, user_id text, session_id text, actions bytea)"
    )
    await conn.execute(
        "CREATE TABLE sessions (app_name text, user_id text, id text, state text,"
        " update_time timestamp)"
    )
    await conn.close()
    with pytest.raises(InvalidInput, match="'checkpoints' has no column checkpoint, checkpoint_id"):
        await open_reader("langgraph-postgres", source_pg_url)
    with pytest.raises(InvalidInput, match="ADK's old v0 schema"):
        await open_reader("adk", source_pg_url.replace("postgresql://", "postgresql+asyncpg://"))
    with pytest.raises(InvalidInput, match="no table 'agent_sessions'"):
        await open_reader("openai-sqlalchemy", source_pg_url)
    with pytest.raises(InvalidInput, match="no table 'history'"):
        await open_reader("langchain-postgres", source_pg_url, table="history")
