"""SessionkeeperChatMessageHistory against LangChain's chat-history contract, on every database.

The contract is langchain-core's: ``BaseChatMessageHistory`` (sync and async methods, bulk
``add_messages``), the serialisation round trip its own tests check for message histories
(libs/core/tests/unit_tests/test_chat_history.py upstream) and the way
``RunnableWithMessageHistory`` drives a history (libs/core/.../runnables/test_history.py).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import Any

import pytest
from langchain_core.chat_history import BaseChatMessageHistory
from langchain_core.language_models import FakeListChatModel
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    ChatMessage,
    FunctionMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
)
from langchain_core.messages.tool import invalid_tool_call, tool_call
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.history import RunnableWithMessageHistory

from sessionkeeper import InvalidInput, NotFound, Store
from sessionkeeper.integrations._common import auto_title
from sessionkeeper.integrations.langchain import SessionkeeperChatMessageHistory
from sessionkeeper.models import MAX_MESSAGE_LENGTH

EVERY_KIND: list[BaseMessage] = [
    SystemMessage(content="You are a helpful assistant.", id="sys-1"),
    HumanMessage(
        content="What's the weather in NYC?",
        id="h-1",
        name="ada",
        additional_kwargs={"lang": "en", "tags": ["a", "b"], "n": 1.5},
    ),
    AIMessage(
        content="",
        id="ai-1",
        tool_calls=[
            tool_call(name="get_weather", args={"city": "NYC", "days": 3}, id="call_1"),
            tool_call(name="search", args={"query": "umbrella"}, id="call_2"),
        ],
        invalid_tool_calls=[
            invalid_tool_call(name="bad", args="not json", id="call_3", error="parse error")
        ],
        usage_metadata={"input_tokens": 10, "output_tokens": 5, "total_tokens": 15},
        response_metadata={"model_name": "fake-1", "finish_reason": "tool_calls"},
    ),
    ToolMessage(content="72F, sunny", tool_call_id="call_1", name="get_weather", id="t-1"),
    ToolMessage(
        content=[{"type": "text", "text": "found 3 umbrellas"}],
        tool_call_id="call_2",
        artifact={"raw": [1, 2, 3]},
        status="success",
    ),
    AIMessage(
        content=[
            {"type": "text", "text": "Sunny, 72F."},
            {"type": "text", "text": "No umbrella needed."},
        ],
        response_metadata={"stop": None},
    ),
    HumanMessage(
        content=[
            {"type": "text", "text": "And this picture?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]
    ),
    AIMessageChunk(content="streamed reply", id="chunk-1"),
    ChatMessage(role="critic", content="could be shorter"),
    FunctionMessage(name="legacy_fn", content="legacy result"),
    HumanMessage(content="unicode: こんにちは 😊 \\ \" ' ; DROP TABLE messages;--"),
]


def dicts(messages: list[BaseMessage]) -> list[dict[str, Any]]:
    return [message_to_dict(m) for m in messages]


@pytest.fixture
def history(sk_store: Store) -> SessionkeeperChatMessageHistory:
    return SessionkeeperChatMessageHistory("lc1", store=sk_store, agent_id="helper")


# ── the interface ───────────────────────────────────────────────────────────


async def test_is_a_history_and_starts_empty(history: SessionkeeperChatMessageHistory) -> None:
    assert isinstance(history, BaseChatMessageHistory)
    assert await history.aget_messages() == []
    assert history.messages == []
    await history.aclear()
    history.clear()


async def test_every_message_kind_round_trips_exactly(
    history: SessionkeeperChatMessageHistory,
) -> None:
    await history.aadd_messages(EVERY_KIND)
    back = await history.aget_messages()
    assert dicts(back) == dicts(EVERY_KIND)
    assert back == EVERY_KIND
    assert [type(m) for m in back] == [type(m) for m in EVERY_KIND]
    assert history.messages == back  # the blocking read agrees


async def test_numbers_jsonb_would_rewrite_come_back_exactly(
    history: SessionkeeperChatMessageHistory,
) -> None:
    message = AIMessage(content="x", response_metadata={"logprob": -0.0, "big": 1e16})
    await history.aadd_messages([message])
    (back,) = await history.aget_messages()
    assert json.dumps(message_to_dict(back)) == json.dumps(message_to_dict(message))


async def test_sync_and_async_methods_agree(sk_store: Store) -> None:
    sync = SessionkeeperChatMessageHistory("sync", store=sk_store)
    sync.add_messages([HumanMessage(content="hi"), AIMessage(content="hello")])
    sync.add_message(HumanMessage(content="bye"))
    sync.add_user_message("one more")
    sync.add_ai_message("ok")
    other = SessionkeeperChatMessageHistory("async", store=sk_store)
    await other.aadd_messages([HumanMessage(content="hi"), AIMessage(content="hello")])
    await other.aadd_messages([HumanMessage(content="bye")])
    await other.aadd_messages([HumanMessage(content="one more"), AIMessage(content="ok")])
    assert sync.messages == await other.aget_messages() == await sync.aget_messages()
    assert str(sync) == "Human: hi\nAI: hello\nHuman: bye\nHuman: one more\nAI: ok"
    sync.clear()
    assert sync.messages == []


def test_blocking_methods_without_any_event_loop(db_url: str) -> None:
    history = SessionkeeperChatMessageHistory.from_url("plain", db_url)
    history.add_messages([HumanMessage(content="hi"), AIMessage(content="hello")])
    assert [m.content for m in history.messages] == ["hi", "hello"]
    history.clear()
    assert history.messages == []
    history.close()


async def test_add_messages_is_one_transaction(history: SessionkeeperChatMessageHistory) -> None:
    await history.aadd_messages([HumanMessage(content="kept")])
    bad = [
        HumanMessage(content="fine"),
        AIMessage(content="not storable", additional_kwargs={"handle": object()}),
    ]
    with pytest.raises(InvalidInput):
        await history.aadd_messages(bad)
    with pytest.raises(InvalidInput):
        history.add_messages(bad)
    assert [m.content for m in await history.aget_messages()] == ["kept"]


async def test_clear_keeps_the_session(
    history: SessionkeeperChatMessageHistory, sk_store: Store
) -> None:
    await history.aadd_messages([HumanMessage(content="a"), AIMessage(content="b")])
    await history.aclear()
    assert await history.aget_messages() == []
    assert (await sk_store.get_session("lc1")).message_count == 0
    await history.aadd_messages([HumanMessage(content="c")])
    assert [m.content for m in await history.aget_messages()] == ["c"]


async def test_histories_are_isolated(sk_store: Store) -> None:
    one = SessionkeeperChatMessageHistory("one", store=sk_store)
    two = SessionkeeperChatMessageHistory("two", store=sk_store)
    await one.aadd_messages([HumanMessage(content="1")])
    await two.aadd_messages([HumanMessage(content="2")])
    await one.aclear()
    assert [m.content for m in await two.aget_messages()] == ["2"]


async def test_no_deprecation_warning_for_this_class(sk_store: Store) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        SessionkeeperChatMessageHistory("w", store=sk_store)


async def test_bad_arguments_are_refused_up_front(sk_store: Store) -> None:
    with pytest.raises(InvalidInput):
        SessionkeeperChatMessageHistory("a/b", store=sk_store)
    with pytest.raises(ValueError):
        SessionkeeperChatMessageHistory("ok", store=sk_store, limit=0)
    with pytest.raises(ValueError):
        SessionkeeperChatMessageHistory("ok", store=sk_store, max_tokens=-1)


# ── an ordinary store session ───────────────────────────────────────────────


async def test_stored_as_an_ordinary_session(
    history: SessionkeeperChatMessageHistory, sk_store: Store
) -> None:
    await history.aadd_messages(EVERY_KIND[:5])
    stored = await sk_store.get_session("lc1")
    assert (stored.session_type, stored.agent_id) == ("langchain", "helper")
    assert stored.title == auto_title("What's the weather in NYC?") == "What's the weather in NYC?"
    messages = await sk_store.get_messages("lc1")
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert messages[2].content == (
        'get_weather({"city": "NYC", "days": 3})\nsearch({"query": "umbrella"})'
    )
    assert [c["id"] for c in messages[2].metadata["tool_calls"]] == ["call_1", "call_2"]
    assert messages[3].metadata["tool_call_id"] == "call_1"
    assert messages[4].content == "found 3 umbrellas"
    count = sk_store.tokenizer.count
    assert [m.token_count for m in messages] == [count(m.content) for m in messages]
    hits = await sk_store.search_messages("found umbrellas", session_id="lc1")
    assert [h.seq for h in hits] == [5]
    page = await sk_store.list_sessions(session_type="langchain")
    assert [s.session_id for s in page.items] == ["lc1"]


async def test_title_options(sk_store: Store) -> None:
    titled = SessionkeeperChatMessageHistory("t1", store=sk_store, title="Fixed")
    await titled.aadd_messages([HumanMessage(content="hello")])
    assert (await sk_store.get_session("t1")).title == "Fixed"
    late = SessionkeeperChatMessageHistory("t2", store=sk_store)
    await late.aadd_messages([SystemMessage(content="be nice")])
    await late.aadd_messages([HumanMessage(content="x" * 100)])
    assert (await sk_store.get_session("t2")).title == "x" * 77 + "..."


async def test_messages_written_by_other_faces_read_as_plain_messages(
    history: SessionkeeperChatMessageHistory, sk_store: Store
) -> None:
    await history.aadd_messages([HumanMessage(content="from LangChain")])
    await sk_store.add_messages(
        "lc1",
        [
            {"role": "assistant", "content": "from the CLI"},
            {"role": "tool", "content": "42", "metadata": {"tool_call_id": "c9"}},
            {"role": "system", "content": "note"},
        ],
    )
    assert await history.aget_messages() == [
        HumanMessage(content="from LangChain"),
        AIMessage(content="from the CLI"),
        ToolMessage(content="42", tool_call_id="c9"),
        SystemMessage(content="note"),
    ]


async def test_long_content_is_kept_whole(
    history: SessionkeeperChatMessageHistory, sk_store: Store
) -> None:
    long_text = "word " * (MAX_MESSAGE_LENGTH // 5 + 10)
    await history.aadd_messages([AIMessage(content=long_text)])
    assert [m.content for m in await history.aget_messages()] == [long_text]
    (stored,) = await sk_store.get_messages("lc1")
    assert len(stored.content) == MAX_MESSAGE_LENGTH and stored.metadata["excerpt"] is True


async def test_deleted_elsewhere_reads_empty_and_comes_back(
    history: SessionkeeperChatMessageHistory, sk_store: Store
) -> None:
    await history.aadd_messages([HumanMessage(content="first")])
    await sk_store.delete_session("lc1")
    assert await history.aget_messages() == []
    await history.aadd_messages([HumanMessage(content="second")])
    assert [m.content for m in await history.aget_messages()] == ["second"]
    with pytest.raises(NotFound):
        await sk_store.get_session("never")


# ── bounded reads ───────────────────────────────────────────────────────────


async def test_limit_reads_the_newest_messages(sk_store: Store) -> None:
    writer = SessionkeeperChatMessageHistory("long", store=sk_store)
    everything = [HumanMessage(content=f"m{i}") for i in range(620)]
    await writer.aadd_messages(everything[:310])
    await writer.aadd_messages(everything[310:])
    assert await writer.aget_messages() == everything
    recent = SessionkeeperChatMessageHistory("long", store=sk_store, limit=50)
    assert await recent.aget_messages() == everything[-50:]
    many = SessionkeeperChatMessageHistory("long", store=sk_store, limit=600)
    assert await many.aget_messages() == everything[-600:]


async def test_max_tokens_window_pins_system_and_keeps_tool_units(sk_store: Store) -> None:
    writer = SessionkeeperChatMessageHistory("win", store=sk_store)
    await writer.aadd_messages(EVERY_KIND[:5] + [AIMessage(content="done")])
    costs = [m.token_count + 3 for m in await sk_store.get_messages("win")]
    # system prompt + "done" + the AI tool call with its two results; not the human question
    budget = costs[0] + costs[5] + sum(costs[2:5])
    window = SessionkeeperChatMessageHistory("win", store=sk_store, max_tokens=budget)
    assert await window.aget_messages() == [EVERY_KIND[0], *EVERY_KIND[2:5], AIMessage("done")]
    smaller = SessionkeeperChatMessageHistory("win", store=sk_store, max_tokens=budget - 1)
    assert await smaller.aget_messages() == [EVERY_KIND[0], AIMessage(content="done")]


# ── RunnableWithMessageHistory ──────────────────────────────────────────────


def _chain(sk_store: Store, seen: list[list[BaseMessage]]) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{question}")]
    )

    def record(value: Any) -> Any:
        seen.append(value.to_messages())
        return value

    model = FakeListChatModel(responses=["Paris.", "About two million."])
    return RunnableWithMessageHistory(
        prompt | RunnableLambda(record) | model,
        lambda session_id: SessionkeeperChatMessageHistory(session_id, store=sk_store),
        input_messages_key="question",
        history_messages_key="history",
    )


def _expected_second_input() -> list[BaseMessage]:
    return [
        SystemMessage(content="You are terse."),
        HumanMessage(content="Capital of France?"),
        AIMessage(content="Paris."),
        HumanMessage(content="How many people live there?"),
    ]


def _plain(messages: list[BaseMessage]) -> list[tuple[str, Any]]:
    return [(m.type, m.content) for m in messages]


# langchain-core 1.x deprecates RunnableWithMessageHistory (for LangGraph persistence) but ships
# it; it is still how LangChain programs use a BaseChatMessageHistory.
rwmh_deprecated = pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")


@rwmh_deprecated
@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
async def test_runnable_with_message_history(mode: str, sk_store: Store) -> None:
    seen: list[list[BaseMessage]] = []
    chain = _chain(sk_store, seen)
    config: Any = {"configurable": {"session_id": "rwmh"}}
    questions = ["Capital of France?", "How many people live there?"]
    if mode == "invoke":
        replies = [
            await asyncio.to_thread(chain.invoke, {"question": q}, config) for q in questions
        ]
    else:
        replies = [await chain.ainvoke({"question": q}, config) for q in questions]
    assert [r.content for r in replies] == ["Paris.", "About two million."]
    assert _plain(seen[1]) == _plain(_expected_second_input())
    stored = await SessionkeeperChatMessageHistory("rwmh", store=sk_store).aget_messages()
    assert stored == [seen[1][1], replies[0], seen[1][3], replies[1]]
    assert (await sk_store.get_session("rwmh")).title == "Capital of France?"


@rwmh_deprecated
def test_runnable_with_message_history_invoke_without_a_loop(db_url: str) -> None:
    seen: list[list[BaseMessage]] = []
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{question}")]
    )

    def record(value: Any) -> Any:
        seen.append(value.to_messages())
        return value

    # one store for every session id (so also one in-memory database), opened on first use
    get_history = SessionkeeperChatMessageHistory.factory(db_url, agent_id="plain-bot")
    chain = RunnableWithMessageHistory(
        prompt | RunnableLambda(record) | FakeListChatModel(responses=["Paris.", "2M."]),
        get_history,
        input_messages_key="question",
        history_messages_key="history",
    )
    config: Any = {"configurable": {"session_id": "plain"}}
    chain.invoke({"question": "Capital of France?"}, config)
    chain.invoke({"question": "How many people live there?"}, config)
    assert _plain(seen[1]) == _plain(_expected_second_input())
    assert _plain(get_history("plain").messages)[-1] == ("ai", "2M.")
    assert get_history("plain").agent_id == "plain-bot"
    get_history.close()


async def test_factory_shares_one_store(sk_store: Store) -> None:
    factory = SessionkeeperChatMessageHistory.factory(store=sk_store, limit=1)
    one, two = factory("f1"), factory("f2")
    assert await one.get_store() is await two.get_store() is sk_store
    await one.aadd_messages([HumanMessage(content="a"), AIMessage(content="b")])
    assert await factory("f1").aget_messages() == [AIMessage(content="b")]
    with pytest.raises(ValueError):
        SessionkeeperChatMessageHistory.factory(store=sk_store, limit=0)
    with pytest.raises(TypeError):
        SessionkeeperChatMessageHistory.factory()
    await factory.aclose()  # a given store stays open
    assert await one.aget_messages() == [AIMessage(content="b")]


# ── many writers ────────────────────────────────────────────────────────────


async def test_threads_adding_at_once(history: SessionkeeperChatMessageHistory) -> None:
    def add(writer: int) -> None:
        for i in range(10):
            history.add_messages([HumanMessage(content=f"w{writer} #{i}")])

    threads = [threading.Thread(target=add, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = [str(m.content) for m in await history.aget_messages()]
    assert len(got) == 40
    for writer in range(4):
        assert [c for c in got if c.startswith(f"w{writer} ")] == [
            f"w{writer} #{i}" for i in range(10)
        ]


def test_processes_adding_at_once(file_db_url: str) -> None:
    from workers import append_messages

    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=append_messages, args=(file_db_url, "procs", w, 25)) for w in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
        assert proc.exitcode == 0
    history = SessionkeeperChatMessageHistory.from_url("procs", file_db_url)
    got = [str(m.content) for m in history.messages]
    history.close()
    assert len(got) == 100
    for writer in range(4):
        assert [c for c in got if c.startswith(f"w{writer} ")] == [
            f"w{writer} #{i}" for i in range(25)
        ]


# ── packaging ───────────────────────────────────────────────────────────────


def test_missing_framework_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['langchain_core'] = None\n"
        "try:\n"
        "    import sessionkeeper.integrations.langchain\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert "pip install 'sessionkeeper[langchain]'" in out.stdout
