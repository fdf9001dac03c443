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


async def test_agents_sdk_items_with_ids_added_twice_are_stored_once(sk_store: Store) -> None:
    session = SessionkeeperSession("oa-idem", store=sk_store)
    output: list[Any] = [
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": "hello", "annotations": []}],
        },
        {"id": "fc_1", "type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
    ]
    await session.add_items(output)
    await session.add_items(output)
    assert await session.get_items() == output
    user: list[Any] = [{"role": "user", "content": "no id"}]
    await session.add_items(user)
    await session.add_items(user)
    assert len(await session.get_items()) == 4
    # Popped, the item is a new write when it comes again.
    await session.pop_item()
    await session.pop_item()
    await session.pop_item()
    await session.add_items(output[1:])
    assert await session.get_items() == output
