"""SessionkeeperMemoryService: ADK's memory-service contract, on every database.

The contract follows ADK's own InMemoryMemoryService and its tests (add a session again
without duplicates, events as a delta, rewound events leave memory, a deleted memory is not
brought back); ADK's ``load_memory`` and ``preload_memory`` tools recall through it in a
Runner with a scripted model; and what this service adds: memory scoped to an app and a user
by the store's search, memory as ordinary sessions (listed, forgotten with the user).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest
from google.adk.agents.llm_agent import LlmAgent
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.memory.memory_entry import MemoryEntry
from google.adk.runners import Runner
from google.adk.tools.load_memory_tool import load_memory_tool
from google.adk.tools.preload_memory_tool import preload_memory_tool
from google.genai import types

from sessionkeeper import Store
from sessionkeeper.errors import InvalidInput
from sessionkeeper.integrations.adk import (
    MEMORY_TYPE,
    SessionkeeperMemoryService,
    SessionkeeperSessionService,
)

APP = "my_app"
FACT = "My favourite colour is teal, and my cat is called Miso."


@pytest.fixture
def memory(sk_store: Store) -> SessionkeeperMemoryService:
    return SessionkeeperMemoryService(sk_store)


def event(text: str, author: str = "user", **kwargs: object) -> Event:
    role = "user" if author == "user" else "model"
    return Event(
        invocation_id=str(kwargs.pop("invocation_id", "inv")),
        author=author,
        content=types.Content(role=role, parts=[types.Part(text=text)]),
        **kwargs,  # type: ignore[arg-type]
    )


def texts(response: object) -> list[str]:
    return [
        "".join(p.text or "" for p in m.content.parts or [])
        for m in response.memories  # type: ignore[attr-defined]
    ]


async def session_with(
    sessions: SessionkeeperSessionService, user: str, sid: str, *said: str
) -> object:
    session = await sessions.create_session(app_name=APP, user_id=user, session_id=sid)
    for i, text in enumerate(said):
        await sessions.append_event(
            session, event(text, "user" if i % 2 == 0 else "assistant", invocation_id=f"i{i}")
        )
    return await sessions.get_session(app_name=APP, user_id=user, session_id=sid)


# ── in a Runner, with ADK's memory tools ────────────────────────────────────


async def run_turn(runner: Runner, user: str, session_id: str, text: str) -> list[Event]:
    message = types.Content(role="user", parts=[types.Part(text=text)])
    return [
        e async for e in runner.run_async(user_id=user, session_id=session_id, new_message=message)
    ]


def request_text(request: object) -> str:
    return json.dumps(request.model_dump(mode="json", exclude_none=True))  # type: ignore[attr-defined]


async def test_preload_memory_recalls_a_fact_from_an_earlier_session(sk_store: Store) -> None:
    from adk_scripted import ScriptedLlm

    sessions = SessionkeeperSessionService(sk_store)
    memory = SessionkeeperMemoryService(sk_store)
    model = ScriptedLlm(replies=["Noted!", "Your favourite colour is teal."])
    agent = LlmAgent(name="assistant", model=model, tools=[preload_memory_tool])
    runner = Runner(agent=agent, app_name=APP, session_service=sessions, memory_service=memory)

    await sessions.create_session(app_name=APP, user_id="ada", session_id="s1")
    await run_turn(runner, "ada", "s1", FACT)
    first = await sessions.get_session(app_name=APP, user_id="ada", session_id="s1")
    await memory.add_session_to_memory(first)  # type: ignore[arg-type]
    assert "PAST_CONVERSATIONS" not in request_text(model.requests[0])  # memory was empty

    await sessions.create_session(app_name=APP, user_id="ada", session_id="s2")
    await run_turn(runner, "ada", "s2", "What is my favourite colour?")
    second = request_text(model.requests[1])
    assert "PAST_CONVERSATIONS" in second
    assert "teal" in second and "Miso" in second


async def test_load_memory_tool_finds_the_fact_in_a_new_session(sk_store: Store) -> None:
    from adk_scripted import ScriptedLlm

    sessions = SessionkeeperSessionService(sk_store)
    memory = SessionkeeperMemoryService(sk_store)
    call = types.Part(
        function_call=types.FunctionCall(name="load_memory", args={"query": "cat name"})
    )
    model = ScriptedLlm(replies=["Noted!", call, "Your cat is Miso."])
    agent = LlmAgent(name="assistant", model=model, tools=[load_memory_tool])
    runner = Runner(agent=agent, app_name=APP, session_service=sessions, memory_service=memory)

    await sessions.create_session(app_name=APP, user_id="ada", session_id="s1")
    await run_turn(runner, "ada", "s1", FACT)
    first = await sessions.get_session(app_name=APP, user_id="ada", session_id="s1")
    await memory.add_session_to_memory(first)  # type: ignore[arg-type]

    await sessions.create_session(app_name=APP, user_id="ada", session_id="s2")
    events = await run_turn(runner, "ada", "s2", "What is my cat called?")
    responses = [
        p.function_response
        for e in events
        for p in (e.content.parts if e.content else [])
        if p.function_response
    ]
    assert len(responses) == 1
    found = responses[0].response["result"].memories  # type: ignore[index]
    assert [m.author for m in found] == ["user"]
    assert found[0].content.parts[0].text == FACT
    assert "Miso" in request_text(model.requests[2])  # the model saw it
    assert events[-1].content.parts[0].text == "Your cat is Miso."  # type: ignore[union-attr,index]


# ── search: scoped to the app and the user ──────────────────────────────────


async def test_search_finds_the_planted_fact_and_nothing_of_another_user(
    sk_store: Store, memory: SessionkeeperMemoryService
) -> None:
    sessions = SessionkeeperSessionService(sk_store)
    ada = await session_with(sessions, "ada", "a1", FACT, "Noted.")
    bob = await session_with(sessions, "bob", "b1", "My favourite colour is orange.", "Ok.")
    await memory.add_session_to_memory(ada)  # type: ignore[arg-type]
    await memory.add_session_to_memory(bob)  # type: ignore[arg-type]
    # the same user in another app
    await memory.add_events_to_memory(
        app_name="other_app", user_id="ada", events=[event("My favourite colour is red.")]
    )

    found = await memory.search_memory(app_name=APP, user_id="ada", query="favourite colour")
    assert texts(found) == [FACT]
    entry = found.memories[0]
    assert entry.author == "user"
    assert entry.timestamp is not None and entry.timestamp.endswith("+00:00")
    assert entry.custom_metadata["session_id"] == "a1"
    assert entry.custom_metadata["event_id"] == ada.events[0].id  # type: ignore[attr-defined]

    assert texts(
        await memory.search_memory(app_name=APP, user_id="bob", query="favourite colour")
    ) == ["My favourite colour is orange."]
    assert texts(
        await memory.search_memory(app_name="other_app", user_id="ada", query="colour")
    ) == ["My favourite colour is red."]
    for query in ["orange", "red"]:
        assert (await memory.search_memory(app_name=APP, user_id="ada", query=query)).memories == []
    assert (
        await memory.search_memory(app_name=APP, user_id="carol", query="colour")
    ).memories == []


async def test_a_sentence_finds_the_memory_matching_most_words(
    memory: SessionkeeperMemoryService,
) -> None:
    said = [
        "The weather is nice today.",
        FACT,
        "What is the time?",
        "We had pasta for dinner.",
    ]
    await memory.add_events_to_memory(
        app_name=APP, user_id="ada", session_id="s", events=[event(t) for t in said]
    )
    # preload_memory passes the user's whole message: every word need not appear.
    found = await memory.search_memory(
        app_name=APP, user_id="ada", query="Remind me: what is my favourite colour again?"
    )
    assert texts(found)[0] == FACT
    assert "We had pasta for dinner." not in texts(found)
    # a query longer than the store's search allows, and one with no words
    long_query = "colour " + "x" * 2000 + " " + "word " * 300
    assert texts(await memory.search_memory(app_name=APP, user_id="ada", query=long_query)) == [
        FACT
    ]
    assert (await memory.search_memory(app_name=APP, user_id="ada", query="?! ...")).memories == []


async def test_max_results_bounds_a_search(sk_store: Store) -> None:
    memory = SessionkeeperMemoryService(sk_store, max_results=3)
    await memory.add_events_to_memory(
        app_name=APP, user_id="ada", events=[event(f"note {i} about apples") for i in range(8)]
    )
    assert (
        len((await memory.search_memory(app_name=APP, user_id="ada", query="apples")).memories) == 3
    )
    with pytest.raises(InvalidInput):
        SessionkeeperMemoryService(sk_store, max_results=0)


# ── adding: idempotent, deltas, rewinds, explicit memories ──────────────────


async def test_adding_a_session_again_stores_nothing_twice(
    sk_store: Store, memory: SessionkeeperMemoryService
) -> None:
    sessions = SessionkeeperSessionService(sk_store)
    session = await session_with(sessions, "ada", "s1", FACT, "Noted.")
    await memory.add_session_to_memory(session)  # type: ignore[arg-type]
    await memory.add_session_to_memory(session)  # type: ignore[arg-type]
    await sessions.append_event(session, event("Also, I live in Lisbon.", invocation_id="i9"))  # type: ignore[arg-type]
    await memory.add_session_to_memory(session)  # type: ignore[arg-type]
    stored = await sk_store.list_sessions(session_type=MEMORY_TYPE, user_id="ada")
    assert len(stored.items) == 1
    messages = await sk_store.get_messages(stored.items[0].session_id)
    assert [m.content for m in messages] == [FACT, "Noted.", "Also, I live in Lisbon."]
    assert [m.role for m in messages] == ["user", "assistant", "user"]
    info = stored.items[0]
    assert (info.agent_id, info.user_id, info.metadata["adk_memory_app"]) == (APP, "ada", APP)


async def test_events_without_text_are_not_memories(memory: SessionkeeperMemoryService) -> None:
    call = Event(
        invocation_id="i",
        author="assistant",
        content=types.Content(
            role="model",
            parts=[types.Part(function_call=types.FunctionCall(name="f", args={"x": 1}))],
        ),
    )
    thought = Event(
        invocation_id="i",
        author="assistant",
        content=types.Content(role="model", parts=[types.Part(text="secret plan", thought=True)]),
    )
    state = Event(invocation_id="i", author="user", actions=EventActions(state_delta={"a": 1}))
    await memory.add_events_to_memory(app_name=APP, user_id="ada", events=[call, thought, state])
    assert (await memory.store.list_sessions(session_type=MEMORY_TYPE)).items == []
    assert (await memory.search_memory(app_name=APP, user_id="ada", query="secret")).memories == []


async def test_rewound_events_leave_memory(memory: SessionkeeperMemoryService) -> None:
    from google.adk.sessions.session import Session

    kept = event("I like tea.", invocation_id="i1")
    taken_back = event("I like coffee.", invocation_id="i2")
    session = Session(id="s1", app_name=APP, user_id="ada", events=[kept, taken_back])
    await memory.add_session_to_memory(session)
    found = await memory.search_memory(app_name=APP, user_id="ada", query="like")
    assert sorted(texts(found)) == ["I like coffee.", "I like tea."]
    rewind = Event(
        invocation_id="i3", author="user", actions=EventActions(rewind_before_invocation_id="i2")
    )
    session.events.append(rewind)
    await memory.add_session_to_memory(session)
    assert texts(await memory.search_memory(app_name=APP, user_id="ada", query="like")) == [
        "I like tea."
    ]


async def test_add_memory_stores_explicit_entries(memory: SessionkeeperMemoryService) -> None:
    entry = MemoryEntry(
        id="pref-1",
        content=types.Content(role="user", parts=[types.Part(text="Prefers window seats.")]),
        author="user",
        timestamp="2026-01-02T03:04:05+00:00",
        custom_metadata={"source": "profile"},
    )
    await memory.add_memory(app_name=APP, user_id="ada", memories=[entry])
    await memory.add_memory(app_name=APP, user_id="ada", memories=[entry])  # same id: skipped
    found = await memory.search_memory(app_name=APP, user_id="ada", query="window seats")
    assert len(found.memories) == 1
    got = found.memories[0]
    assert got.content == entry.content and got.author == "user"
    assert got.timestamp == entry.timestamp and got.custom_metadata == {"source": "profile"}

    # an entry without text is refused, with the valid one beside it: nothing stored
    empty = MemoryEntry(content=types.Content(role="user", parts=[]))
    other = MemoryEntry(content=types.Content(role="user", parts=[types.Part(text="Vegan.")]))
    with pytest.raises(InvalidInput, match="needs text"):
        await memory.add_memory(app_name=APP, user_id="ada", memories=[other, empty])
    assert (await memory.search_memory(app_name=APP, user_id="ada", query="vegan")).memories == []


async def test_a_deleted_memory_is_not_brought_back(memory: SessionkeeperMemoryService) -> None:
    from google.adk.sessions.session import Session

    session = Session(
        id="s1", app_name=APP, user_id="ada", events=[event("My PIN is 4321."), event("Hi.")]
    )
    await memory.add_session_to_memory(session)
    found = await memory.search_memory(app_name=APP, user_id="ada", query="PIN")
    memory_id = found.memories[0].id
    assert memory_id
    # another user's delete of that id does nothing
    await memory.delete_memory(app_name=APP, user_id="bob", memory_id=memory_id)
    assert len((await memory.search_memory(app_name=APP, user_id="ada", query="PIN")).memories) == 1
    await memory.delete_memory(app_name=APP, user_id="ada", memory_id=memory_id)
    assert (await memory.search_memory(app_name=APP, user_id="ada", query="PIN")).memories == []
    await memory.add_session_to_memory(session)
    assert (await memory.search_memory(app_name=APP, user_id="ada", query="PIN")).memories == []
    assert texts(await memory.search_memory(app_name=APP, user_id="ada", query="hi")) == ["Hi."]
    with pytest.raises(InvalidInput):
        await memory.delete_memory(app_name=APP, user_id="ada", memory_id="not-a-memory")


# ── bad input, and memory as ordinary sessions ──────────────────────────────


async def test_bad_input_is_refused_and_stores_nothing(
    memory: SessionkeeperMemoryService,
) -> None:
    for app, user in [("", "ada"), (APP, "two words"), (APP, "x" * 65), (APP, "")]:
        with pytest.raises(InvalidInput):
            await memory.add_events_to_memory(app_name=app, user_id=user, events=[event("hi")])
        with pytest.raises(InvalidInput):
            await memory.search_memory(app_name=app, user_id=user, query="hi")
    with pytest.raises(InvalidInput):
        await memory.search_memory(app_name=APP, user_id="ada", query="nul \x00 here")
    assert (await memory.store.list_sessions(session_type=MEMORY_TYPE)).items == []


async def test_forgetting_the_user_forgets_their_memory(
    memory: SessionkeeperMemoryService,
) -> None:
    await memory.add_events_to_memory(app_name=APP, user_id="ada", events=[event(FACT)])
    await memory.add_events_to_memory(app_name=APP, user_id="bob", events=[event(FACT)])
    await memory.store.forget_user("ada")
    assert (await memory.search_memory(app_name=APP, user_id="ada", query="teal")).memories == []
    assert (
        len((await memory.search_memory(app_name=APP, user_id="bob", query="teal")).memories) == 1
    )


async def test_from_url_opens_and_closes_its_store(file_db_url: str) -> None:
    async with SessionkeeperMemoryService.from_url(file_db_url, max_results=5) as memory:
        await memory.add_events_to_memory(app_name=APP, user_id="ada", events=[event(FACT)])
    async with SessionkeeperMemoryService.from_url(file_db_url) as memory:
        assert texts(await memory.search_memory(app_name=APP, user_id="ada", query="Miso")) == [
            FACT
        ]


def test_readme_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split("### Google ADK memory", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    (tmp_path / "example.py").write_text(code)
    for _ in range(2):  # a second run starts the demo afresh
        out = subprocess.run(
            [sys.executable, "example.py"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=True,
        )
        lines = out.stdout.splitlines()
        assert lines == [
            "monday assistant > Nothing recalled.",
            "friday assistant > I recall: user: My cat is called Miso.",
            "['assistant: I recall: user: My cat is called Miso.', 'user: My cat is called Miso.']",
            "0 memories of another user",
        ]


async def test_an_event_added_by_writers_at_once_is_stored_once(
    memory: SessionkeeperMemoryService,
) -> None:
    fact = event(FACT)

    async def add() -> None:
        await memory.add_events_to_memory(
            app_name=APP, user_id="ada", session_id="s1", events=[fact]
        )

    await asyncio.gather(add(), add(), add())
    found = await memory.search_memory(app_name=APP, user_id="ada", query="teal")
    assert texts(found) == [FACT]
    # each writer saw the others' copies and deleted all but the first
    stored = await memory.store.list_sessions(session_type=MEMORY_TYPE)
    assert [s.message_count for s in stored.items] == [1]
