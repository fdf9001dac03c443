"""The LangGraph savers driving real graphs, on every database.

A ``StateGraph`` with a fake chat model (no network) runs turns on a thread, is interrupted
for approval and resumed; the thread is then an ordinary session (listed, searched,
windowed) whose checkpoints go with it. Storage is checked under the Store: a message is
stored once per thread however many checkpoints hold it.
"""

from __future__ import annotations

import operator
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, RemoveMessage
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.types import Command, interrupt

import rawdb
from sessionkeeper import NotFound, Store, open_store
from sessionkeeper.bridge import run_blocking
from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory
from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver, SessionkeeperSaver

REPLIES = [
    "Hello! How can I help you today?",
    "Paris is the capital of France.",
    "I can book that: please confirm the trip to Paris.",
]
TURNS = ["Hi there", "What is the capital of France?", "Book me a trip to Paris"]


def build(checkpointer: Any, replies: list[str] | None = None) -> Any:
    """chatbot -> approval: the approval node interrupts when the model asks to confirm."""
    model = FakeListChatModel(responses=replies or REPLIES)

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


def config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}}


async def lg_rows(store: Store, table: str, thread_id: str) -> int:
    stmt = f"SELECT count(*) FROM {table} WHERE session_id = ?"
    found = await rawdb.fetch(store, stmt, thread_id)
    return int(found[0][0])


async def check_session(store: Store, thread_id: str, values: list[BaseMessage]) -> None:
    """The session holds exactly the thread's messages, in order, counters exact."""
    session = await store.get_session(thread_id)
    stored = await store.get_messages(thread_id, limit=500)
    assert [m.content for m in stored] == [str(m.content) for m in values]
    assert session.message_count == len(stored)
    assert session.token_count == sum(m.token_count for m in stored)
    assert [m.seq for m in stored] == list(range(1, len(stored) + 1))


# ── the scenario of the issue ───────────────────────────────────────────────


async def test_two_turns_interrupt_resume_then_a_session(sk_store: Store) -> None:
    saver = AsyncSessionkeeperSaver(sk_store, agent_id="travel")
    graph = build(saver)
    thread = config("trip-1")
    for text in TURNS[:2]:
        await graph.ainvoke({"messages": [HumanMessage(content=text)]}, thread)
    state = await graph.aget_state(thread)
    assert [m.content for m in state.values["messages"]] == [
        TURNS[0],
        REPLIES[0],
        TURNS[1],
        REPLIES[1],
    ]

    # Third turn: the approval node interrupts; the interrupt is a pending write.
    out = await graph.ainvoke({"messages": [HumanMessage(content=TURNS[2])]}, thread)
    assert out["__interrupt__"][0].value == {"question": "Book it?", "draft": REPLIES[2]}
    state = await graph.aget_state(thread)
    assert state.next == ("approval",)
    latest = await saver.aget_tuple(thread)
    assert latest is not None and any(w[1] == "__interrupt__" for w in latest.pending_writes or [])

    # Resumed, possibly by another saver on the same store.
    resumed = build(AsyncSessionkeeperSaver(sk_store, agent_id="travel"))
    out = await resumed.ainvoke(Command(resume="yes"), thread)
    assert out["messages"][-1].content == "Booked: yes"
    state = await resumed.aget_state(thread)
    assert state.next == ()
    messages = state.values["messages"]
    assert len(messages) == 7

    # The thread is an ordinary session: listed, searched, windowed, titled by the user.
    await check_session(sk_store, "trip-1", messages)
    session = await sk_store.get_session("trip-1")
    assert (session.session_type, session.agent_id, session.title) == (
        "langgraph",
        "travel",
        "Hi there",
    )
    listed = await sk_store.list_sessions(session_type="langgraph")
    assert [s.session_id for s in listed.items] == ["trip-1"]
    hits = await sk_store.search_messages("capital France")
    assert {h.session_id for h in hits} == {"trip-1"}
    window = await sk_store.context_window("trip-1", max_tokens=60)
    assert window.messages[-1].content == "Booked: yes" and window.dropped_messages > 0
    # Mirrored messages are the LangChain integration's: its history reads them back.
    history = SessionkeeperChatMessageHistory("trip-1", store=sk_store)
    assert await history.aget_messages() == messages

    # delete_thread removes that thread only: its session, messages and checkpoints.
    await build(saver).ainvoke({"messages": [HumanMessage(content="Other")]}, config("other"))
    await saver.adelete_thread("trip-1")
    assert await saver.aget_tuple(thread) is None
    assert [t async for t in saver.alist(thread)] == []
    with pytest.raises(NotFound):
        await sk_store.get_session("trip-1")
    for table in ("lg_checkpoints", "lg_channel_values", "lg_channel_items", "lg_writes"):
        assert await lg_rows(sk_store, table, "trip-1") == 0
    other = await saver.aget_tuple(config("other"))
    assert other is not None and len(other.checkpoint["channel_values"]["messages"]) == 2
    assert (await sk_store.get_session("other")).message_count == 2


def test_blocking_saver_runs_invoke(db_url: str) -> None:
    with SessionkeeperSaver.from_url(db_url) as saver:
        graph = build(saver)
        thread = config("sync-1")
        for text in TURNS:
            graph.invoke({"messages": [HumanMessage(content=text)]}, thread)
        assert graph.get_state(thread).next == ("approval",)
        graph.invoke(Command(resume="sure"), thread)
        messages = graph.get_state(thread).values["messages"]
        assert messages[-1].content == "Booked: sure"
        assert len(list(saver.list(thread))) == len(list(graph.get_state_history(thread)))
        run_blocking(check_session(saver.store, "sync-1", messages))
        hits = run_blocking(saver.store.search_messages("capital"))
        assert {h.session_id for h in hits} == {"sync-1"}
        saver.delete_thread("sync-1")
        assert saver.get_tuple(thread) is None


# ── what is stored ──────────────────────────────────────────────────────────


async def test_each_message_is_stored_once(sk_store: Store) -> None:
    saver = AsyncSessionkeeperSaver(sk_store)
    replies = [f"reply number {i} " + "word " * 50 for i in range(30)]
    graph = build(saver, replies)
    thread = config("long")
    for i in range(30):
        await graph.ainvoke({"messages": [HumanMessage(content=f"question {i}")]}, thread)
    checkpoints = [t async for t in saver.alist(thread)]
    assert len(checkpoints) == 30 * 4  # input, chatbot, approval; and the first input
    # Every checkpoint reads back its own history, from one row per message.
    for t in checkpoints:
        step_messages = t.checkpoint["channel_values"].get("messages", [])
        assert [type(m) for m in step_messages] == [HumanMessage, AIMessage] * (
            len(step_messages) // 2
        ) + ([HumanMessage] if len(step_messages) % 2 else [])
    assert await lg_rows(sk_store, "lg_channel_items", "long") == 60
    values = await rawdb.fetch(
        sk_store,
        "SELECT items FROM lg_channel_values WHERE session_id = ? AND channel = 'messages' "
        "AND items IS NOT NULL",
        "long",
    )
    assert len(values) == 59  # one per version of two messages or more, each a few ranges
    await check_session(sk_store, "long", checkpoints[0].checkpoint["channel_values"]["messages"])


async def test_lists_of_any_shape_round_trip(sk_store: Store) -> None:
    """Repeats, reorders, shrinking and non-message lists come back exactly at every version."""
    saver = AsyncSessionkeeperSaver(sk_store)
    shapes: list[list[Any]] = [
        [1, 2],
        [1, 2, 3],
        [3, 1, 2, 3, 3],  # reordered, repeated
        [{"a": 1}, None, b"raw", "text", 1.5, [1, 2]],
        [2, 1],  # shrunk, reversed
        [HumanMessage(content="x", id="m1"), HumanMessage(content="x", id="m1")],
        list(range(40)) + list(range(40)),
    ]
    parent: dict[str, Any] = {"configurable": {"thread_id": "shapes", "checkpoint_ns": ""}}
    stored = []
    version: str | None = None
    for i, value in enumerate(shapes):
        version = saver.get_next_version(version, None)
        checkpoint = {
            "v": 1,
            "id": f"00{i}",
            "ts": "2025-01-01T00:00:00+00:00",
            "channel_values": {"things": value},
            "channel_versions": {"things": version},
            "versions_seen": {},
            "updated_channels": None,
        }
        parent = await saver.aput(parent, checkpoint, {"step": i}, {"things": version})  # type: ignore[arg-type]
        stored.append(parent)
    for config_, value in zip(stored, shapes, strict=True):
        got = await saver.aget_tuple(config_)
        assert got is not None and got.checkpoint["channel_values"]["things"] == value


async def test_messages_are_appended_as_they_appear_not_rewritten(sk_store: Store) -> None:
    """A message edited or removed in the graph stays in the session as first seen."""
    saver = AsyncSessionkeeperSaver(sk_store)
    graph = build(saver)
    thread = config("edits")
    await graph.ainvoke({"messages": [HumanMessage(content="Hi there", id="h1")]}, thread)
    state = await graph.aget_state(thread)
    reply = state.values["messages"][1]
    edited = AIMessage(content="Hello (edited)", id=reply.id)
    await graph.aupdate_state(thread, {"messages": [edited, RemoveMessage(id="h1")]})
    await graph.aupdate_state(thread, {"messages": [HumanMessage(content="Again", id="h2")]})
    values = (await graph.aget_state(thread)).values["messages"]
    assert [m.content for m in values] == ["Hello (edited)", "Again"]
    stored = await sk_store.get_messages("edits")
    assert [m.content for m in stored] == ["Hi there", REPLIES[0], "Again"]
    assert (await sk_store.get_session("edits")).message_count == 3


async def test_subgraph_namespaces_are_isolated_and_not_mirrored(sk_store: Store) -> None:
    model = FakeListChatModel(responses=["inner answer"])

    def inner(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    sub = StateGraph(MessagesState)
    sub.add_node("inner", inner)
    sub.add_edge(START, "inner")
    sub.add_edge("inner", END)
    outer = StateGraph(MessagesState)
    outer.add_node("sub", sub.compile(checkpointer=True))
    outer.add_edge(START, "sub")
    outer.add_edge("sub", END)
    saver = AsyncSessionkeeperSaver(sk_store)
    graph = outer.compile(checkpointer=saver)
    await graph.ainvoke({"messages": [HumanMessage(content="outer question")]}, config("nest"))
    namespaces = {t.config["configurable"]["checkpoint_ns"] async for t in saver.alist(None)}
    assert "" in namespaces and len(namespaces) == 2
    child = next(ns for ns in namespaces if ns)
    root_only = [
        t async for t in saver.alist({"configurable": {"thread_id": "nest", "checkpoint_ns": ""}})
    ]
    assert all(t.config["configurable"]["checkpoint_ns"] == "" for t in root_only)
    inner_latest = await saver.aget_tuple(
        {"configurable": {"thread_id": "nest", "checkpoint_ns": child}}
    )
    assert inner_latest is not None
    # The session shows the root graph's messages once each.
    assert [m.content for m in await sk_store.get_messages("nest")] == [
        "outer question",
        "inner answer",
    ]


async def test_metadata_run_id_and_custom_keys_are_filterable(sk_store: Store) -> None:
    saver = AsyncSessionkeeperSaver(sk_store)
    graph = build(saver)
    for run_id, text in (("run-1", TURNS[0]), ("run-2", TURNS[1])):
        run = {
            "configurable": {"thread_id": "meta"},
            "metadata": {"run_id": run_id, "user": "ada", "tier": 2},
        }
        await graph.ainvoke({"messages": [HumanMessage(content=text)]}, run)
    tuples = [t async for t in saver.alist(config("meta"))]
    assert {t.metadata["run_id"] for t in tuples} == {"run-1", "run-2"}
    assert all(t.metadata["user"] == "ada" and t.metadata["tier"] == 2 for t in tuples)
    picked = [t async for t in saver.alist(None, filter={"run_id": "run-2", "source": "loop"})]
    assert len(picked) == 3 and all(t.metadata["step"] > 0 for t in picked)
    assert [t async for t in saver.alist(None, filter={"tier": "2"})] == []
    newest = [t async for t in saver.alist(config("meta"), filter={"user": "ada"}, limit=1)]
    assert newest[0].checkpoint["id"] == tuples[0].checkpoint["id"]
    await saver.adelete_for_runs(["run-2"])
    left = [t async for t in saver.alist(config("meta"))]
    assert {t.metadata["run_id"] for t in left} == {"run-1"}
    latest = await saver.aget_tuple(config("meta"))
    assert latest is not None
    assert [m.content for m in latest.checkpoint["channel_values"]["messages"]] == [
        TURNS[0],
        REPLIES[0],
    ]
    assert await lg_rows(sk_store, "lg_channel_items", "meta") == 2
    assert (await sk_store.get_session("meta")).message_count == 4  # the session stays


# ── the thread as a session ────────────────────────────────────────────────


async def test_deleting_or_pruning_the_session_deletes_its_checkpoints(sk_store: Store) -> None:
    saver = AsyncSessionkeeperSaver(sk_store)
    graph = build(saver)
    for thread_id in ("gone", "idle", "busy"):
        await graph.ainvoke({"messages": [HumanMessage(content="Hi there")]}, config(thread_id))
    await sk_store.delete_session("gone")
    assert await saver.aget_tuple(config("gone")) is None
    old = rawdb.when(sk_store, datetime.now(UTC) - timedelta(days=40))
    await rawdb.execute(
        sk_store, "UPDATE sessions SET updated_at = ? WHERE session_id = ?", old, "idle"
    )
    pruned = await sk_store.prune_old_sessions(days=30)
    assert pruned.session_ids == ["idle"]
    for thread_id in ("gone", "idle"):
        for table in ("lg_checkpoints", "lg_channel_values", "lg_channel_items", "lg_writes"):
            assert await lg_rows(sk_store, table, thread_id) == 0
    assert await saver.aget_tuple(config("busy")) is not None
    # A checkpoint keeps the session active: an old session written to is not idle.
    await rawdb.execute(
        sk_store, "UPDATE sessions SET updated_at = ? WHERE session_id = ?", old, "busy"
    )
    await graph.aupdate_state(config("busy"), {"messages": [HumanMessage(content="still here")]})
    assert (await sk_store.prune_old_sessions(days=30)).session_ids == []


async def _counter_thread(store: Store, thread_id: str) -> Any:
    """A graph without messages: its thread is a session with no messages."""

    class Counter(TypedDict):
        total: Annotated[int, operator.add]

    graph = StateGraph(Counter)
    graph.add_node("inc", lambda state: {"total": 1})
    graph.add_edge(START, "inc")
    graph.add_edge("inc", END)
    app = graph.compile(checkpointer=AsyncSessionkeeperSaver(store))
    await app.ainvoke({"total": 1}, config(thread_id))
    old = rawdb.when(store, datetime.now(UTC) - timedelta(hours=1))
    await rawdb.execute(store, "UPDATE sessions SET created_at = ?", old)
    return app


async def test_the_ghost_purge_leaves_no_checkpoint_rows_behind(sk_store: Store) -> None:
    await _counter_thread(sk_store, "counter")
    await sk_store.delete_ghost_sessions(older_than_minutes=15)
    orphans = await rawdb.fetch(
        sk_store,
        "SELECT count(*) FROM lg_checkpoints c "
        "WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = c.session_id)",
    )
    assert orphans[0][0] == 0


async def test_a_thread_without_messages_is_not_a_ghost(sk_store: Store) -> None:
    app = await _counter_thread(sk_store, "counter")
    await sk_store.delete_ghost_sessions(older_than_minutes=15)
    assert (await sk_store.get_session("counter")).session_type == "langgraph"
    assert (await app.aget_state(config("counter"))).values == {"total": 2}


async def test_copy_thread_forks_the_conversation(sk_store: Store) -> None:
    saver = AsyncSessionkeeperSaver(sk_store)
    graph = build(saver, REPLIES[:2] + ["Rome is the capital of Italy."])
    for text in TURNS[:2]:
        await graph.ainvoke({"messages": [HumanMessage(content=text)]}, config("src"))
    await saver.acopy_thread("src", "fork")
    fork = await sk_store.get_session("fork")
    assert (fork.title, fork.message_count) == ("Hi there", 4)
    await graph.ainvoke({"messages": [HumanMessage(content="And Italy?")]}, config("fork"))
    assert [m.content for m in await sk_store.get_messages("fork")][-2:] == [
        "And Italy?",
        "Rome is the capital of Italy.",
    ]
    assert (await sk_store.get_session("src")).message_count == 4
    assert await lg_rows(sk_store, "lg_channel_items", "fork") == 6


async def test_prune_keep_latest_keeps_what_the_latest_needs(sk_store: Store) -> None:
    saver = AsyncSessionkeeperSaver(sk_store)
    graph = build(saver)
    for text in TURNS[:2]:
        await graph.ainvoke({"messages": [HumanMessage(content=text)]}, config("trim"))
    before = (await graph.aget_state(config("trim"))).values
    await saver.aprune(["trim"])
    assert len([t async for t in saver.alist(config("trim"))]) == 1
    assert (await graph.aget_state(config("trim"))).values == before
    assert await lg_rows(sk_store, "lg_channel_items", "trim") == 4
    await graph.ainvoke({"messages": [HumanMessage(content="more")]}, config("trim"))
    assert len((await graph.aget_state(config("trim"))).values["messages"]) == 6
    await saver.aprune(["trim"], strategy="delete")
    assert await saver.aget_tuple(config("trim")) is None
    assert (await sk_store.get_session("trim")).message_count == 6
    with pytest.raises(ValueError, match="strategy"):
        await saver.aprune(["trim"], strategy="oldest")
    with pytest.raises(TypeError):
        await saver.aprune("trim")


async def test_forked_branches_keep_their_own_values(sk_store: Store) -> None:
    """Time travel: two branches from one checkpoint write the same channel version number
    with different values; each reads back its own."""
    saver = AsyncSessionkeeperSaver(sk_store)
    graph = build(saver, ["first answer", "second answer", "third answer"])
    await graph.ainvoke({"messages": [HumanMessage(content="Hi there")]}, config("tt"))
    history = [s async for s in graph.aget_state_history(config("tt"))]
    start = next(s for s in history if s.next == ("chatbot",))
    await graph.ainvoke(None, start.config)
    branches = [s async for s in graph.aget_state_history(config("tt")) if s.next == ()]
    answers = sorted(s.values["messages"][-1].content for s in branches)
    assert answers == ["first answer", "second answer"]


async def test_thread_ids_are_session_ids(sk_store: Store) -> None:
    from sessionkeeper import InvalidInput

    saver = AsyncSessionkeeperSaver(sk_store)
    with pytest.raises(InvalidInput, match="session id"):
        await build(saver).ainvoke({"messages": [HumanMessage(content="x")]}, config("a b"))
    await build(saver).ainvoke({"messages": [HumanMessage(content="x")]}, config(42))  # type: ignore[arg-type]
    assert (await sk_store.get_session("42")).message_count == 2


# ── across stores and processes ────────────────────────────────────────────


@pytest.fixture
async def two_stores(file_db_url: str) -> AsyncIterator[tuple[Store, Store]]:
    first, second = await open_store(file_db_url), await open_store(file_db_url)
    try:
        yield first, second
    finally:
        await first.close()
        await second.close()


async def test_another_store_continues_a_thread_without_repeats(
    two_stores: tuple[Store, Store],
) -> None:
    first, second = two_stores
    await build(AsyncSessionkeeperSaver(first)).ainvoke(
        {"messages": [HumanMessage(content="Hi there")]}, config("shared")
    )
    graph = build(AsyncSessionkeeperSaver(second), REPLIES[1:])
    await graph.ainvoke({"messages": [HumanMessage(content=TURNS[1])]}, config("shared"))
    values = (await graph.aget_state(config("shared"))).values["messages"]
    await check_session(second, "shared", values)
    assert await lg_rows(second, "lg_channel_items", "shared") == 4
    # Back on the first store, whose item log is now stale: numbering collides, is redone.
    graph = build(AsyncSessionkeeperSaver(first), REPLIES[2:])
    await graph.ainvoke({"messages": [HumanMessage(content="Book me a trip")]}, config("shared"))
    values = (await graph.aget_state(config("shared"))).values["messages"]
    assert [m.content for m in values][-2:] == ["Book me a trip", REPLIES[2]]
    await check_session(first, "shared", values)


def test_missing_framework_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['langgraph'] = None\n"
        "try:\n"
        "    import sessionkeeper.integrations.langgraph\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert "pip install 'sessionkeeper[langgraph]'" in out.stdout
