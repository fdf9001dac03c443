"""SessionkeeperSession against the OpenAI Agents SDK's Session contract, on every database.

The contract is the SDK's: the ``Session`` protocol's docstrings and the behaviour its own
session tests check (tests/memory/test_session.py, test_session_limit.py and
tests/extensions/memory/test_sqlalchemy_session.py upstream), written here again for this
class, plus what sessionkeeper adds (ordinary sessions, token windows, many processes).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, cast

import pytest
from agents import (
    Agent,
    RunConfig,
    Runner,
    Session,
    SessionSettings,
    TResponseInputItem,
    function_tool,
)
from scripted import ScriptedModel, function_call, text_message

from sessionkeeper import InvalidInput, NotFound, Store, TooLarge
from sessionkeeper.integrations._common import auto_title, finish
from sessionkeeper.integrations.openai_agents import SessionkeeperSession, item_text
from sessionkeeper.models import MAX_MESSAGE_LENGTH

Items = list[TResponseInputItem]


def items_of(*pairs: tuple[str, str]) -> Items:
    return [cast(TResponseInputItem, {"role": role, "content": text}) for role, text in pairs]


def contents(items: Items) -> list[Any]:
    return [cast(dict[str, Any], item).get("content") for item in items]


# Every kind of input item the Responses API defines that a session may hold, with the
# optional fields filled in, so that a field dropped or retyped on the way shows.
ALL_ITEM_KINDS: list[dict[str, Any]] = [
    {"role": "user", "content": "plain text"},
    {"role": "developer", "content": "be brief"},
    {"role": "system", "content": "you are a test"},
    {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "what is in this image?"},
            {
                "type": "input_image",
                "image_url": "data:image/png;base64,iVBORw0KGgo=",
                "detail": "low",
            },
            {"type": "input_file", "file_id": "file-1", "filename": "notes.pdf"},
        ],
    },
    {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [
            {
                "type": "output_text",
                "text": "a cat",
                "annotations": [
                    {
                        "type": "url_citation",
                        "url": "https://e.x",
                        "title": "t",
                        "start_index": 0,
                        "end_index": 5,
                    }
                ],
                "logprobs": [{"token": "a", "logprob": -0.25, "bytes": [97], "top_logprobs": []}],
            },
            {"type": "refusal", "refusal": "no more"},
        ],
    },
    {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": "thinking about cats"}],
        "encrypted_content": "gAAAAB...",
    },
    {
        "id": "fc_1",
        "type": "function_call",
        "call_id": "call_1",
        "name": "get_weather",
        "arguments": '{"city": "Zürich", "units": null, "days": 3, "exact": true}',
        "status": "completed",
    },
    {"type": "function_call_output", "call_id": "call_1", "output": "sunny, 21.5°C"},
    {
        "type": "function_call_output",
        "call_id": "call_2",
        "output": [
            {"type": "input_text", "text": "a chart"},
            {"type": "input_image", "image_url": "https://e.x/chart.png"},
        ],
    },
    {
        "id": "fs_1",
        "type": "file_search_call",
        "queries": ["cat facts"],
        "status": "completed",
        "results": [{"file_id": "f", "filename": "cats.txt", "score": 0.5, "text": "cats purr"}],
    },
    {
        "id": "ws_1",
        "type": "web_search_call",
        "status": "completed",
        "action": {"type": "search", "query": "cats"},
    },
    {
        "id": "cu_1",
        "type": "computer_call",
        "call_id": "call_c",
        "action": {"type": "click", "button": "left", "x": 10, "y": 20},
        "pending_safety_checks": [],
        "status": "completed",
    },
    {
        "type": "computer_call_output",
        "call_id": "call_c",
        "output": {"type": "computer_screenshot", "image_url": "data:image/png;base64,AAAA"},
    },
    {
        "id": "ig_1",
        "type": "image_generation_call",
        "status": "completed",
        "result": "iVBORw0KGgo=",
    },
    {
        "id": "ci_1",
        "type": "code_interpreter_call",
        "code": "print(6 * 7)",
        "container_id": "cntr_1",
        "outputs": [{"type": "logs", "logs": "42"}],
        "status": "completed",
    },
    {
        "id": "ls_1",
        "type": "local_shell_call",
        "call_id": "call_ls",
        "action": {"type": "exec", "command": ["ls", "-l"], "env": {"A": "1"}},
        "status": "completed",
    },
    {"id": "ls_1", "type": "local_shell_call_output", "output": "total 0"},
    {
        "id": "ml_1",
        "type": "mcp_list_tools",
        "server_label": "srv",
        "tools": [{"name": "t", "input_schema": {}}],
    },
    {
        "id": "mr_1",
        "type": "mcp_approval_request",
        "server_label": "srv",
        "name": "t",
        "arguments": "{}",
    },
    {"type": "mcp_approval_response", "approval_request_id": "mr_1", "approve": True},
    {
        "id": "mc_1",
        "type": "mcp_call",
        "server_label": "srv",
        "name": "t",
        "arguments": "{}",
        "output": "ok",
    },
    {
        "id": "ct_1",
        "type": "custom_tool_call",
        "call_id": "call_ct",
        "name": "grammar",
        "input": "x = 1",
    },
    {"type": "custom_tool_call_output", "call_id": "call_ct", "output": "parsed"},
    {"type": "item_reference", "id": "msg_0"},
    {"role": "user", "content": "unicode: こんにちは 😊 Привет \\ \" ' ; DROP TABLE messages;--"},
]


@pytest.fixture
def session(sk_store: Store) -> SessionkeeperSession:
    return SessionkeeperSession("s1", store=sk_store, agent_id="support")


# ── the protocol ────────────────────────────────────────────────────────────


async def test_is_a_session_and_starts_empty(session: SessionkeeperSession) -> None:
    assert isinstance(session, Session)
    assert session.session_id == "s1"
    assert await session.get_items() == []
    assert await session.get_items(limit=3) == []
    assert await session.pop_item() is None
    await session.clear_session()  # nothing to clear: fine


async def test_add_get_pop_clear(session: SessionkeeperSession) -> None:
    await session.add_items(items_of(("user", "Hello"), ("assistant", "Hi there!")))
    await session.add_items(items_of(("user", "How are you?")))
    assert contents(await session.get_items()) == ["Hello", "Hi there!", "How are you?"]

    assert await session.pop_item() == {"role": "user", "content": "How are you?"}
    assert await session.pop_item() == {"role": "assistant", "content": "Hi there!"}
    assert contents(await session.get_items()) == ["Hello"]
    assert await session.pop_item() == {"role": "user", "content": "Hello"}
    assert await session.pop_item() is None

    await session.add_items(items_of(("user", "again")))
    await session.clear_session()
    assert await session.get_items() == []
    await session.add_items(items_of(("user", "after clear")))  # still usable
    assert contents(await session.get_items()) == ["after clear"]


async def test_get_items_limit_is_newest_n_oldest_first(session: SessionkeeperSession) -> None:
    await session.add_items(items_of(*[(("user", "assistant")[i % 2], f"m{i}") for i in range(6)]))
    assert contents(await session.get_items()) == [f"m{i}" for i in range(6)]
    assert contents(await session.get_items(limit=2)) == ["m4", "m5"]
    assert contents(await session.get_items(limit=4)) == ["m2", "m3", "m4", "m5"]
    assert contents(await session.get_items(limit=10)) == [f"m{i}" for i in range(6)]
    assert await session.get_items(limit=0) == []


async def test_reads_past_one_store_page(session: SessionkeeperSession) -> None:
    every = items_of(*[("user", f"m{i}") for i in range(620)])
    await session.add_items(every[:300])
    await session.add_items(every[300:])
    assert await session.get_items() == every
    assert await session.get_items(limit=550) == every[-550:]
    assert await session.get_items(limit=500) == every[-500:]


async def test_add_empty_list_does_nothing(session: SessionkeeperSession, sk_store: Store) -> None:
    await session.add_items([])
    with pytest.raises(NotFound):  # not even an empty session: no ghost
        await sk_store.get_session("s1")


async def test_sessions_are_isolated(sk_store: Store) -> None:
    one = SessionkeeperSession("one", store=sk_store)
    two = SessionkeeperSession("two", store=sk_store)
    await one.add_items(items_of(("user", "Session 1 message")))
    await two.add_items(items_of(("user", "Session 2 message 1"), ("user", "Session 2 message 2")))
    assert (await two.pop_item() or {}).get("content") == "Session 2 message 2"
    assert contents(await one.get_items()) == ["Session 1 message"]
    assert contents(await two.get_items()) == ["Session 2 message 1"]
    await one.clear_session()
    assert contents(await two.get_items()) == ["Session 2 message 1"]


async def test_every_item_kind_round_trips_exactly(session: SessionkeeperSession) -> None:
    items = cast(Items, json.loads(json.dumps(ALL_ITEM_KINDS)))
    await session.add_items(items)
    back = await session.get_items()
    assert back == ALL_ITEM_KINDS
    # the SDK fingerprints items as sorted JSON when it rewinds a retried turn
    dump = [json.dumps(i, sort_keys=True) for i in back]
    assert dump == [json.dumps(i, sort_keys=True) for i in ALL_ITEM_KINDS]
    assert await session.get_items(limit=3) == ALL_ITEM_KINDS[-3:]
    for expected in reversed(ALL_ITEM_KINDS):
        assert await session.pop_item() == expected
    assert await session.get_items() == []


async def test_numbers_jsonb_would_rewrite_come_back_exactly(
    session: SessionkeeperSession, sk_store: Store
) -> None:
    tricky = cast(
        Items,
        [
            {"role": "user", "content": "scores", "x": 1e16, "y": -0.0, "z": 2.5e-08, "n": 10**20},
            {"role": "user", "content": "a plain one", "score": 0.25},
        ],
    )
    await session.add_items(tricky)
    back = await session.get_items()
    # numbers exact, hence the SDK's fingerprints (sorted JSON); key order only on SQLite
    assert [json.dumps(i, sort_keys=True) for i in back] == [
        json.dumps(i, sort_keys=True) for i in tricky
    ]
    plain, exact = (await sk_store.get_messages("s1"))[::-1]
    assert "item_json" in exact.metadata and "item" in plain.metadata
    assert await session.get_items_within(10_000) == back
    assert await session.pop_item() == tricky[1] and await session.pop_item() == tricky[0]


async def test_add_items_is_one_transaction(session: SessionkeeperSession) -> None:
    await session.add_items(items_of(("user", "kept")))
    bad = items_of(("user", "fine"), ("assistant", "also fine"))
    bad.append(cast(TResponseInputItem, {"role": "user", "content": "x", "extra": object()}))
    with pytest.raises((InvalidInput, TypeError)):
        await session.add_items(bad)
    assert contents(await session.get_items()) == ["kept"]


async def test_concurrent_pops_get_different_items(sk_store: Store) -> None:
    writer = SessionkeeperSession("pops", store=sk_store)
    other = SessionkeeperSession("pops", store=sk_store)
    await writer.add_items(items_of(*[("user", f"m{i}") for i in range(10)]))
    popped = await asyncio.wait_for(
        asyncio.gather(*(s.pop_item() for s in (writer, other) for _ in range(6))), timeout=30
    )
    got = [cast(dict[str, Any], p)["content"] for p in popped if p is not None]
    assert sorted(got) == sorted(f"m{i}" for i in range(10))
    assert popped.count(None) == 2
    assert await writer.get_items() == []


async def test_threads_with_their_own_loops(session: SessionkeeperSession) -> None:
    def add(i: int) -> None:
        asyncio.run(session.add_items(items_of(("user", f"Message {i}"))))

    threads = [threading.Thread(target=add, args=(i,)) for i in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    got = contents(await session.get_items())
    assert sorted(got) == sorted(f"Message {i}" for i in range(10))


# ── session settings ────────────────────────────────────────────────────────


async def test_session_settings(sk_store: Store) -> None:
    plain = SessionkeeperSession("a", store=sk_store)
    assert isinstance(plain.session_settings, SessionSettings)
    assert plain.session_settings.limit is None

    assert SessionkeeperSession(
        "b", store=sk_store, session_settings=SessionSettings(limit=5)
    ).session_settings == SessionSettings(limit=5)
    from_dict = SessionkeeperSession("c", store=sk_store, session_settings={"limit": 0})
    assert isinstance(from_dict.session_settings, SessionSettings)
    assert from_dict.session_settings.limit == 0
    assert from_dict.session_settings.resolve({"limit": 4}).limit == 4
    with pytest.raises(TypeError, match="Unknown session settings: limitt"):
        SessionkeeperSession("d", store=sk_store, session_settings={"limitt": 1})


async def test_settings_limit_is_the_default_and_explicit_limit_wins(sk_store: Store) -> None:
    session = SessionkeeperSession("lim", store=sk_store, session_settings=SessionSettings(limit=3))
    await session.add_items(items_of(*[("user", f"Message {i}") for i in range(10)]))
    assert contents(await session.get_items()) == ["Message 7", "Message 8", "Message 9"]
    assert contents(await session.get_items(limit=2)) == ["Message 8", "Message 9"]


async def test_from_url_takes_settings(file_db_url: str) -> None:
    async with SessionkeeperSession.from_url(
        "u", file_db_url, session_settings={"limit": 2}, agent_id="bot", title="T"
    ) as session:
        assert session.session_settings == SessionSettings(limit=2)
        await session.add_items(items_of(("user", "1"), ("user", "2"), ("user", "3")))
        assert contents(await session.get_items()) == ["2", "3"]
        store = await session.get_store()
        stored = await store.get_session("u")
        assert (stored.agent_id, stored.title, stored.session_type) == ("bot", "T", "openai-agents")


async def test_bad_session_id_is_refused_up_front(sk_store: Store) -> None:
    with pytest.raises(InvalidInput):
        SessionkeeperSession("has space", store=sk_store)
    with pytest.raises(InvalidInput):
        SessionkeeperSession("ok", store=sk_store, agent_id="bad agent")
    with pytest.raises(TypeError):
        SessionkeeperSession("ok", store=None)  # type: ignore[arg-type]


# ── an ordinary store session ───────────────────────────────────────────────


async def test_stored_as_an_ordinary_session(
    session: SessionkeeperSession, sk_store: Store
) -> None:
    first = "  What   city is the\nGolden Gate Bridge in? " + "and more " * 20
    await session.add_items(
        cast(
            Items,
            [
                {"role": "developer", "content": "be brief"},
                {"role": "user", "content": first},
                {"type": "function_call", "call_id": "c1", "name": "lookup", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "San Francisco"},
                {"role": "assistant", "content": "San Francisco"},
            ],
        )
    )
    stored = await sk_store.get_session("s1")
    assert stored.session_type == "openai-agents"
    assert stored.agent_id == "support"
    assert stored.title == auto_title(first)
    assert stored.title is not None and len(stored.title) == 80 and stored.title.endswith("...")
    assert stored.message_count == 5

    messages = await sk_store.get_messages("s1")
    assert [m.role for m in messages] == ["system", "user", "assistant", "tool", "assistant"]
    assert [m.content for m in messages] == [
        "be brief",
        first,
        "lookup({})",
        "San Francisco",
        "San Francisco",
    ]
    assert messages[2].metadata["tool_calls"][0]["id"] == "c1"
    assert messages[3].metadata["tool_call_id"] == "c1"
    count = sk_store.tokenizer.count
    assert [m.token_count for m in messages] == [count(m.content) for m in messages]

    page = await sk_store.list_sessions(session_type="openai-agents", agent_id="support")
    assert [s.session_id for s in page.items] == ["s1"]
    hits = await sk_store.search_messages("Golden Gate", session_id="s1")
    assert hits and hits[0].seq == 2
    # the store's own window pins the developer prompt and keeps the call with its output
    window = await sk_store.context_window("s1", max_tokens=30)
    assert [m.seq for m in window.messages] == [1, 3, 4, 5]


async def test_title_defaults_to_first_user_text_even_in_a_later_batch(sk_store: Store) -> None:
    session = SessionkeeperSession("late", store=sk_store)
    await session.add_items(items_of(("assistant", "Welcome!")))
    assert (await sk_store.get_session("late")).title is None
    await session.add_items(items_of(("user", "Book a table")))
    assert (await sk_store.get_session("late")).title == "Book a table"


async def test_explicit_title_wins(sk_store: Store) -> None:
    session = SessionkeeperSession("titled", store=sk_store, title="Support #42")
    await session.add_items(items_of(("user", "hello")))
    assert (await sk_store.get_session("titled")).title == "Support #42"


async def test_clear_keeps_the_session(session: SessionkeeperSession, sk_store: Store) -> None:
    await session.add_items(items_of(("user", "a"), ("assistant", "b")))
    await session.clear_session()
    stored = await sk_store.get_session("s1")
    assert (stored.message_count, stored.token_count) == (0, 0)
    await session.add_items(items_of(("user", "c")))
    assert [m.seq for m in await sk_store.get_messages("s1")] == [3]  # seq never reused


async def test_session_deleted_elsewhere_is_recreated(
    session: SessionkeeperSession, sk_store: Store
) -> None:
    await session.add_items(items_of(("user", "first life")))
    await sk_store.delete_session("s1")
    assert await session.get_items() == []
    assert await session.pop_item() is None
    await session.add_items(items_of(("user", "second life")))
    assert contents(await session.get_items()) == ["second life"]


async def test_messages_written_by_other_faces_read_as_items(
    session: SessionkeeperSession, sk_store: Store
) -> None:
    await session.add_items(items_of(("user", "from the SDK")))
    await sk_store.add_messages(
        "s1",
        [
            {"role": "assistant", "content": "from the CLI"},
            {"role": "tool", "content": "42", "metadata": {"tool_call_id": "c9"}},
        ],
    )
    assert await session.get_items() == [
        {"role": "user", "content": "from the SDK"},
        {"role": "assistant", "content": "from the CLI"},
        {"type": "function_call_output", "call_id": "c9", "output": "42"},
    ]


async def test_text_longer_than_a_message_is_kept_whole_in_metadata(
    session: SessionkeeperSession, sk_store: Store
) -> None:
    long_text = "word " * (MAX_MESSAGE_LENGTH // 5 + 1000)
    item = cast(
        TResponseInputItem, {"type": "function_call_output", "call_id": "c", "output": long_text}
    )
    await session.add_items([item])
    assert await session.get_items() == [item]
    (message,) = await sk_store.get_messages("s1")
    assert message.content == long_text[:MAX_MESSAGE_LENGTH]
    assert message.metadata["excerpt"] is True
    assert message.token_count == sk_store.tokenizer.count(long_text)


async def test_an_item_over_the_metadata_limit_is_refused_whole(
    session: SessionkeeperSession,
) -> None:
    huge = "x" * 1_100_000
    with pytest.raises(TooLarge):
        await session.add_items(
            items_of(("user", "kept out too"))
            + [
                cast(
                    TResponseInputItem,
                    {"type": "function_call_output", "call_id": "c", "output": huge},
                )
            ]
        )
    assert await session.get_items() == []


def test_item_text() -> None:
    texts = [item_text(i) for i in ALL_ITEM_KINDS]
    assert texts[3] == "what is in this image?\n[image]\n[file notes.pdf]"
    assert texts[4] == "a cat\nno more"
    assert texts[5] == "thinking about cats"
    assert texts[8] == "a chart\n[image]"
    assert "cat facts" in texts[9] and "cats purr" in texts[9]
    assert "print(6 * 7)" in texts[14]
    assert "iVBORw0KGgo=" not in texts[13]  # binary results are not text


# ── token windows ───────────────────────────────────────────────────────────


async def test_get_items_within_keeps_calls_with_outputs(
    session: SessionkeeperSession, sk_store: Store
) -> None:
    history = cast(
        Items,
        [
            {"role": "user", "content": "weather in Paris and Rome?"},
            {
                "id": "rs_1",
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": "two calls"}],
            },
            {
                "type": "function_call",
                "call_id": "p",
                "name": "weather",
                "arguments": '{"city": "Paris"}',
            },
            {
                "type": "function_call",
                "call_id": "r",
                "name": "weather",
                "arguments": '{"city": "Rome"}',
            },
            {"type": "function_call_output", "call_id": "p", "output": "rain"},
            {"type": "function_call_output", "call_id": "r", "output": "sun"},
            {"role": "assistant", "content": "Paris: rain. Rome: sun."},
        ],
    )
    await session.add_items(history)
    costs = [m.token_count + 3 for m in await sk_store.get_messages("s1")]
    assert await session.get_items_within(costs[-1]) == history[-1:]
    # the calls, their outputs and the reasoning before them are one unit
    unit = sum(costs[1:6])
    assert await session.get_items_within(costs[-1] + unit - 1) == history[-1:]
    assert await session.get_items_within(costs[-1] + unit) == history[1:]
    assert await session.get_items_within(sum(costs)) == history
    assert await session.get_items_within(costs[-1] - 1) == []
    with pytest.raises(ValueError):
        await session.get_items_within(0)


async def test_history_tokens_bounds_every_turns_input(sk_store: Store) -> None:
    cost = sk_store.tokenizer.count("message number 8") + 3  # text + message framing
    session = SessionkeeperSession("bounded", store=sk_store, history_tokens=2 * cost)
    await session.add_items(items_of(*[("user", f"message number {i}") for i in range(10)]))
    assert contents(await session.get_items()) == ["message number 8", "message number 9"]
    assert len(await session.get_items(limit=5)) == 5  # an explicit limit is obeyed as such


# ── the Runner ──────────────────────────────────────────────────────────────


def _run_sync_in_fresh_loop(agent: Agent[Any], text: str, session: SessionkeeperSession) -> Any:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return Runner.run_sync(agent, text, session=session)
    finally:
        loop.close()
        asyncio.set_event_loop(None)


async def _run(method: str, agent: Agent[Any], text: Any, **kwargs: Any) -> Any:
    if method == "run":
        return await Runner.run(agent, text, **kwargs)
    if method == "run_sync":
        return await asyncio.to_thread(_run_sync_in_fresh_loop, agent, text, kwargs["session"])
    result = Runner.run_streamed(agent, text, **kwargs)
    async for _ in result.stream_events():
        pass
    return result


@pytest.mark.parametrize("method", ["run", "run_streamed", "run_sync"])
async def test_second_turn_starts_with_the_first_turns_items(
    method: str, session: SessionkeeperSession, sk_store: Store
) -> None:
    model = ScriptedModel([text_message("San Francisco")], [text_message("California")])
    agent = Agent(name="test", model=model)

    first = await _run(method, agent, "What city is the Golden Gate Bridge in?", session=session)
    assert first.final_output == "San Francisco"
    stored_after_first = await session.get_items()
    assert contents(stored_after_first)[0] == "What city is the Golden Gate Bridge in?"
    assert len(stored_after_first) == 2

    second = await _run(method, agent, "What state is it in?", session=session)
    assert second.final_output == "California"
    second_input = model.inputs[1]
    assert second_input[: len(stored_after_first)] == stored_after_first
    assert second_input[len(stored_after_first) :] == [
        {"role": "user", "content": "What state is it in?"}
    ]
    assert (await sk_store.get_session("s1")).message_count == 4


async def test_tool_turn_is_stored_and_replayed(session: SessionkeeperSession) -> None:
    @function_tool
    def weather(city: str) -> str:
        """Weather in a city."""
        return f"sunny in {city}"

    model = ScriptedModel(
        [function_call("weather", '{"city": "Oslo"}', "call_w")],
        [text_message("It is sunny in Oslo.")],
        [text_message("You asked about Oslo.")],
    )
    agent = Agent(name="test", model=model, tools=[weather])
    await Runner.run(agent, "Weather in Oslo?", session=session)
    stored = await session.get_items()
    kinds = [cast(dict[str, Any], i).get("type", "message") for i in stored]
    assert kinds == ["message", "function_call", "function_call_output", "message"]
    assert cast(dict[str, Any], stored[2])["output"] == "sunny in Oslo"

    await Runner.run(agent, "What did I ask?", session=session)
    assert model.inputs[2][: len(stored)] == stored


def test_run_sync_twice_in_one_process(db_url: str) -> None:
    # One session object (so one store, even in memory) across loops: run_sync's default loop,
    # asyncio.run, then a loop made and closed just for the second run.
    session = SessionkeeperSession.from_url("sync", db_url)
    model = ScriptedModel([text_message("Hello")], [text_message("I remember")])
    agent = Agent(name="test", model=model)
    assert Runner.run_sync(agent, "Hi there", session=session).final_output == "Hello"
    first_turn = asyncio.run(session.get_items())
    assert contents(first_turn)[0] == "Hi there" and len(first_turn) == 2
    assert _run_sync_in_fresh_loop(agent, "Remember me?", session).final_output == "I remember"
    assert model.inputs[1] == first_turn + items_of(("user", "Remember me?"))
    assert len(asyncio.run(session.get_items())) == 4
    asyncio.run(session.close())


@pytest.mark.parametrize("method", ["run", "run_sync"])
async def test_list_input_is_appended_after_history(
    method: str, session: SessionkeeperSession
) -> None:
    history = items_of(("user", "Earlier message"), ("assistant", "Saved reply"))
    await session.add_items(history)
    model = ScriptedModel([text_message("ok")])
    new = items_of(("user", "Test message"))
    await _run(method, Agent(name="t", model=model), new, session=session)
    assert model.inputs[-1] == history + new


async def test_session_input_callback(session: SessionkeeperSession) -> None:
    history = items_of(("user", "Hello there."), ("assistant", "Hi, I'm here to assist you."))
    await session.add_items(history)
    model = ScriptedModel([text_message("I'm a test")])

    def only_user(old: Items, new: Items) -> Items:
        return [i for i in old if cast(dict[str, Any], i)["role"] == "user"] + new

    new = items_of(("user", "What's your name?"))
    await Runner.run(
        Agent(name="t", model=model),
        new,
        session=session,
        run_config=RunConfig(session_input_callback=only_user),
    )
    assert model.inputs[-1] == [history[0], new[0]]


async def test_run_config_session_settings_override(sk_store: Store) -> None:
    session = SessionkeeperSession("o", store=sk_store, session_settings=SessionSettings(limit=100))
    await session.add_items(items_of(*[("user", f"Turn {i}") for i in range(10)]))
    model = ScriptedModel([text_message("Got it")])
    await Runner.run(
        Agent(name="t", model=model),
        "New question",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )
    assert contents(model.inputs[-1]) == ["Turn 8", "Turn 9", "New question"]


@pytest.mark.parametrize("method", ["run", "run_streamed"])
async def test_a_limit_cutting_a_call_from_its_output_still_runs(
    method: str, session: SessionkeeperSession
) -> None:
    history = cast(
        Items,
        [
            {"role": "user", "content": "What is the weather?"},
            {"type": "function_call", "call_id": "w", "name": "weather", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "w", "output": "sunny"},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "It is sunny.", "annotations": []}],
            },
        ],
    )
    await session.add_items(history)
    assert await session.get_items(limit=2) == history[-2:]
    model = ScriptedModel([text_message("Sunny tomorrow too.")])
    await _run(
        method,
        Agent(name="t", model=model),
        "And tomorrow?",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=2)),
    )
    # the SDK drops the output whose call the limit left out
    assert model.inputs[-1] == [history[-1], {"role": "user", "content": "And tomorrow?"}]


async def test_limit_zero_sends_no_history(session: SessionkeeperSession) -> None:
    await session.add_items(items_of(("user", "old"), ("assistant", "older reply")))
    model = ScriptedModel([text_message("fresh")])
    await Runner.run(
        Agent(name="t", model=model),
        "new",
        session=session,
        run_config=RunConfig(session_settings=SessionSettings(limit=0)),
    )
    assert model.inputs[-1] == [{"role": "user", "content": "new"}]
    assert len(await session.get_items()) == 4


# ── cancellation and many writers ───────────────────────────────────────────


async def test_a_cancelled_write_still_finishes_and_then_reports_the_cancel() -> None:
    started, release, done = asyncio.Event(), asyncio.Event(), []

    async def write() -> None:
        started.set()
        await release.wait()
        done.append(True)

    task = asyncio.ensure_future(finish(write()))
    await started.wait()
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert done == [True]


async def test_a_failed_write_after_a_cancel_reports_only_the_cancel() -> None:
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    started, release = asyncio.Event(), asyncio.Event()

    async def write() -> None:
        started.set()
        await release.wait()
        raise RuntimeError("write failed")

    try:
        task = asyncio.ensure_future(finish(write()))
        await started.wait()
        task.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0)
        assert errors == []
    finally:
        loop.set_exception_handler(previous)


async def test_cancelled_add_items_is_all_or_nothing(session: SessionkeeperSession) -> None:
    items = items_of(*[("user", f"m{i}") for i in range(50)])
    for delay in (0, 0.001, 0.005):
        task = asyncio.ensure_future(session.add_items(items))
        await asyncio.sleep(delay)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):  # or it finished first
            await task
        stored = await session.get_items()
        assert len(stored) % 50 == 0 and stored == (items * 3)[: len(stored)]


def test_four_processes_append_to_one_session(file_db_url: str) -> None:
    from workers import append_items

    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=append_items, args=(file_db_url, "shared", w, 100)) for w in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=300)
        assert proc.exitcode == 0

    async def read() -> Items:
        async with SessionkeeperSession.from_url("shared", file_db_url) as session:
            return await session.get_items()

    items = asyncio.run(read())
    assert len(items) == 400
    for writer in range(4):
        mine = [c for c in contents(items) if c.startswith(f"w{writer} ")]
        assert mine == [f"w{writer} #{i}" for i in range(100)]


# ── packaging ───────────────────────────────────────────────────────────────


def test_missing_framework_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['agents'] = None\n"
        "import sessionkeeper.integrations\n"  # the package itself needs no framework
        "try:\n"
        "    import sessionkeeper.integrations.openai_agents\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert "pip install 'sessionkeeper[openai-agents]'" in out.stdout
