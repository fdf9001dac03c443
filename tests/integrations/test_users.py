"""The integrations that create sessions give them a user (``user_id=``): OpenAI Agents,
LangChain (and its history factory), LangGraph (the saver's, or the run's
``configurable.user_id``), on every database. ADK sessions carry their ADK user (its own
tests)."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.graph import START, MessagesState, StateGraph

from sessionkeeper import Store
from sessionkeeper.errors import InvalidInput
from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory
from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver
from sessionkeeper.integrations.openai_agents import SessionkeeperSession


async def _user(store: Store, session_id: str) -> str | None:
    return (await store.get_session(session_id)).user_id


async def test_openai_agents_session_is_created_for_its_user(sk_store: Store) -> None:
    session = SessionkeeperSession("oa-1", store=sk_store, user_id="ada")
    assert session.user_id == "ada"
    await session.add_items([{"role": "user", "content": "hello"}])
    assert await _user(sk_store, "oa-1") == "ada"
    plain = SessionkeeperSession("oa-2", store=sk_store)
    await plain.add_items([{"role": "user", "content": "hello"}])
    assert await _user(sk_store, "oa-2") is None
    with pytest.raises(InvalidInput, match="user_id"):
        SessionkeeperSession("oa-3", store=sk_store, user_id="a b")
    listed = await sk_store.list_sessions(user_id="ada")
    assert [s.session_id for s in listed.items] == ["oa-1"]


async def test_langchain_history_and_factory_create_for_their_user(sk_store: Store) -> None:
    history = SessionkeeperChatMessageHistory("lc-1", store=sk_store, user_id="bob")
    await history.aadd_messages([HumanMessage("hi")])
    assert await _user(sk_store, "lc-1") == "bob"

    histories = SessionkeeperChatMessageHistory.factory(store=sk_store, user_id="carol")
    await histories("lc-2").aadd_messages([HumanMessage("hi")])
    # RunnableWithMessageHistory passes a history_factory_config field by name.
    await histories(session_id="lc-3", user_id="dave").aadd_messages([HumanMessage("hi")])
    assert (await _user(sk_store, "lc-2"), await _user(sk_store, "lc-3")) == ("carol", "dave")
    with pytest.raises(InvalidInput, match="user_id"):
        SessionkeeperChatMessageHistory.factory(store=sk_store, user_id="a b")


def _graph(saver: AsyncSessionkeeperSaver) -> Any:
    model = FakeListChatModel(responses=["hello back"] * 4)

    def chatbot(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("chatbot", chatbot)
    graph.add_edge(START, "chatbot")
    return graph.compile(checkpointer=saver)


async def test_langgraph_threads_are_created_for_the_runs_or_the_savers_user(
    sk_store: Store,
) -> None:
    graph = _graph(AsyncSessionkeeperSaver(sk_store, user_id="erin"))
    hello = {"messages": [HumanMessage("hi")]}
    await graph.ainvoke(hello, {"configurable": {"thread_id": "lg-1"}})
    await graph.ainvoke(hello, {"configurable": {"thread_id": "lg-2", "user_id": "frank"}})
    await graph.ainvoke(hello, {"configurable": {"thread_id": "lg-3", "user_id": 42}})
    assert [await _user(sk_store, t) for t in ("lg-1", "lg-2", "lg-3")] == ["erin", "frank", "42"]
    # A thread keeps the user it was created for.
    out = await graph.ainvoke(hello, {"configurable": {"thread_id": "lg-2", "user_id": "x"}})
    assert isinstance(out["messages"][-1], AIMessage)
    assert await _user(sk_store, "lg-2") == "frank"
    with pytest.raises(InvalidInput, match="user_id"):
        await graph.ainvoke(hello, {"configurable": {"thread_id": "lg-4", "user_id": "a b"}})
    assert not await sk_store.session_exists("lg-4")
    plain = _graph(AsyncSessionkeeperSaver(sk_store))
    await plain.ainvoke(hello, {"configurable": {"thread_id": "lg-5"}})
    assert await _user(sk_store, "lg-5") is None
