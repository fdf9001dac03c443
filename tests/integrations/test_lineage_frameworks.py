"""Forks and rewinds of framework sessions, on SQLite file, SQLite memory and PostgreSQL: a
LangGraph thread forks with its checkpoints (as ``copy_thread``), the fork runs on by itself;
a Google ADK session is refused (nothing written) until its state can be recomputed."""

from __future__ import annotations

import time

import pytest
from langchain_core.messages import HumanMessage
from test_langgraph import REPLIES, TURNS, build, config, lg_rows

from sessionkeeper import InvalidInput, Store
from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver
from sessionkeeper.store.adk import AdkKey, Scopes


async def test_a_langgraph_thread_forks_with_its_checkpoints(sk_store: Store) -> None:
    saver = AsyncSessionkeeperSaver(sk_store)
    graph = build(saver, REPLIES[:2] + ["Rome is the capital of Italy."])
    for text in TURNS[:2]:
        await graph.ainvoke({"messages": [HumanMessage(content=text)]}, config("src"))
    before = (await graph.aget_state(config("src"))).values
    fork = await sk_store.fork_session("src", new_session_id="fork")
    assert (fork.parent_session_id, fork.message_count) == ("src", 4)
    # The fork is a thread of its own: the same state, then its own path.
    assert (await graph.aget_state(config("fork"))).values == before
    for table in ("lg_checkpoints", "lg_channel_items", "lg_channel_values"):
        assert await lg_rows(sk_store, table, "fork") == await lg_rows(sk_store, table, "src")
    await graph.ainvoke({"messages": [HumanMessage(content="And Italy?")]}, config("fork"))
    assert [m.content for m in await sk_store.get_messages("fork")][-2:] == [
        "And Italy?",
        "Rome is the capital of Italy.",
    ]
    assert (await graph.aget_state(config("src"))).values == before
    assert (await sk_store.get_session("src")).message_count == 4
    # A rewind's branch keeps the thread's checkpoints too.
    done = await sk_store.rewind_session("src", 2)
    assert done.branch is not None
    branch = done.branch.session_id
    assert (await graph.aget_state(config(branch))).values == before
    # Deleting the source leaves the fork's checkpoints.
    await sk_store.delete_session("src")
    assert await lg_rows(sk_store, "lg_checkpoints", "fork") > 0
    await sk_store.delete_ghost_sessions(older_than_minutes=0)
    assert await sk_store.session_exists("fork")


async def test_a_plain_fork_holds_no_framework_state(sk_store: Store) -> None:
    s = await sk_store.create_session(session_id="plain")
    await sk_store.add_message("plain", "user", "hi")
    fork = await sk_store.fork_session("plain", at_seq=0)
    assert await lg_rows(sk_store, "lg_checkpoints", fork.session_id) == 0
    # An empty fork with no state is a ghost like any empty session.
    assert await sk_store.delete_ghost_sessions(older_than_minutes=0) == 1
    assert await sk_store.session_exists(s.session_id)


async def test_adk_sessions_are_refused_and_nothing_is_written(sk_store: Store) -> None:
    view = await sk_store.adk.create(
        AdkKey("app", "user", "adk-1"), Scopes({"k": 1}, {}, {}), update_time=time.time()
    )
    assert view is not None
    sid = view.session_id
    await sk_store.add_message(sid, "user", "hello")
    for call in (
        lambda: sk_store.fork_session(sid),
        lambda: sk_store.rewind_session(sid, 0),
    ):
        with pytest.raises(InvalidInput, match="Google ADK session") as err:
            await call()
        assert err.value.details["field"] == "session_id"
    assert await sk_store.list_branches(sid) == []
    assert (await sk_store.list_sessions()).total == 1
    assert (await sk_store.get_session(sid)).message_count == 1
