"""The integrations' writes are keyed by the ids their frameworks give (issue 18 item 1):
a framework retrying a write of the same objects stores them once; objects without ids are
written as before (nothing tells a retry from a new write). On every database."""

from __future__ import annotations

from typing import Any

import pytest
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.genai import types
from langchain_core.messages import AIMessage, HumanMessage

from sessionkeeper import Store
from sessionkeeper.errors import IdempotencyKeyReused
from sessionkeeper.integrations.adk import SessionkeeperSessionService
from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory
from sessionkeeper.integrations.openai_agents import SessionkeeperSession


async def test_adk_event_appended_twice_is_stored_once(sk_store: Store) -> None:
    service = SessionkeeperSessionService(sk_store)
    session = await service.create_session(app_name="app", user_id="u")
    stale = await service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert stale is not None
    event = Event(
        invocation_id="inv",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text="once")]),
        actions=EventActions(state_delta={"count": 1, "app:seen": True}),
    )
    await service.append_event(session, event)
    await service.append_event(stale, event)  # the retry, on a session object of its own
    got = await service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert got is not None
    assert [e.id for e in got.events] == [event.id]
    assert got.state["count"] == 1
    other = event.model_copy(update={"content": types.Content(role="user", parts=[
        types.Part(text="another text, the same id")])})  # fmt: skip
    with pytest.raises(IdempotencyKeyReused):
        await service.append_event(session, other)
    got = await service.get_session(app_name="app", user_id="u", session_id=session.id)
    assert got is not None and len(got.events) == 1


async def test_langchain_messages_with_ids_added_twice_are_stored_once(sk_store: Store) -> None:
    history = SessionkeeperChatMessageHistory("lc-idem", store=sk_store)
    turn = [HumanMessage("hi", id="h-1"), AIMessage("hello", id="a-1")]
    await history.aadd_messages(turn)
    await history.aadd_messages(turn)  # a retry of the same turn
    assert await history.aget_messages() == turn
    # Without ids, each call is a new write.
    await history.aadd_messages([HumanMessage("again")])
    await history.aadd_messages([HumanMessage("again")])
    assert [m.content for m in await history.aget_messages()] == ["hi", "hello", "again", "again"]
    # Cleared, the same messages are a new write (a key lives as long as its messages).
    await history.aclear()
    await history.aadd_messages(turn)
    assert await history.aget_messages() == turn


async def test_agents_sdk_items_added_twice_are_stored_twice(sk_store: Store) -> None:
    """The Agents SDK stores an item added again as a new item (its compaction session
    replays the same compaction item, id and all, on every run): not keyed by item ids."""
    session = SessionkeeperSession("oa-idem", store=sk_store)
    compaction: list[Any] = [
        {"id": "cmp_1", "type": "compaction", "encrypted_content": "synthetic"},
    ]
    await session.add_items(compaction)
    await session.add_items(compaction)
    assert await session.get_items() == compaction * 2


async def test_ids_reused_with_other_content_are_a_new_write(sk_store: Store) -> None:
    """Framework ids make retries safe, but a framework does not promise them unique: items
    or messages that reuse an id with other content are stored, as the framework's own
    stores store them (the SDK's own session tests reuse ids like "1")."""
    session = SessionkeeperSession("oa-reuse", store=sk_store)
    first: list[Any] = [{"id": "1", "role": "user", "content": "first"}]
    other: list[Any] = [{"id": "1", "role": "user", "content": "second"}]
    await session.add_items(first)
    await session.add_items(other)
    assert await session.get_items() == first + other
    history = SessionkeeperChatMessageHistory("lc-reuse", store=sk_store)
    await history.aadd_messages([HumanMessage("one", id="x")])
    await history.aadd_messages([HumanMessage("two", id="x")])
    assert [m.content for m in await history.aget_messages()] == ["one", "two"]


async def test_langgraph_checkpoint_put_repeated_mirrors_no_message_twice(sk_store: Store) -> None:
    """A put retried after it landed (its reply lost), by a saver that has never seen the
    thread: the checkpoint is stored by its id, its list items are found numbered already,
    and no message is mirrored twice. No key needed."""
    from langchain_core.language_models import FakeListChatModel
    from langgraph.graph import START, MessagesState, StateGraph

    from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver

    model = FakeListChatModel(responses=["hello back"])
    graph = StateGraph(MessagesState)
    graph.add_node("chatbot", lambda state: {"messages": [model.invoke(state["messages"])]})
    graph.add_edge(START, "chatbot")
    saver = AsyncSessionkeeperSaver(sk_store)
    thread = {"configurable": {"thread_id": "lg-idem"}}
    await graph.compile(checkpointer=saver).ainvoke({"messages": [HumanMessage("hi")]}, thread)
    before = await sk_store.get_messages("lg-idem", limit=500)
    assert [m.content for m in before] == ["hi", "hello back"]
    latest = await saver.aget_tuple(thread)
    assert latest is not None and latest.parent_config is not None
    fresh = AsyncSessionkeeperSaver(sk_store)
    versions = latest.checkpoint["channel_versions"]
    await fresh.aput(latest.parent_config, latest.checkpoint, latest.metadata, versions)
    assert await sk_store.get_messages("lg-idem", limit=500) == before
    again = await fresh.aget_tuple(thread)
    assert again is not None and again.checkpoint == latest.checkpoint
