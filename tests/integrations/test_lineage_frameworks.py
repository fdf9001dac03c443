"""Forks and rewinds of framework sessions, on SQLite file, SQLite memory and PostgreSQL: a
LangGraph thread forks with its checkpoints (as ``copy_thread``), the fork runs on by itself;
a Google ADK session forks and rewinds with the state its kept events give (ADK's rewind
rule), read back by SessionkeeperSessionService, and ADK's Runner continues on the fork."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.adk.agents.llm_agent import LlmAgent
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.runners import Runner
from google.adk.sessions import _rewind_utils
from google.adk.sessions.session import Session as AdkSession
from google.genai import types
from langchain_core.messages import HumanMessage
from test_langgraph import REPLIES, TURNS, build, config, lg_rows

from sessionkeeper import Conflict, Store
from sessionkeeper.integrations.adk import SessionkeeperSessionService
from sessionkeeper.integrations.langgraph import AsyncSessionkeeperSaver


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


# ── Google ADK ──────────────────────────────────────────────────────────────

APP = "lineage_app"
# Each event's state delta: session keys, app: and user: keys (shared), temp: (never stored).
DELTAS: list[dict[str, Any]] = [
    {"a": 1, "app:theme": "dark", "user:lang": "fr"},
    {"b": 2, "temp:scratch": 1},
    # 1e-07: jsonb would rewrite it, so this event is kept as JSON text (adk_event_json).
    {"a": 3, "c": 4, "tiny": 1e-07, "user:lang": "de"},
    {"b": None, "d": [1, {"x": 2.5}]},
]
SHARED = {"app:theme": "dark", "user:lang": "de"}


def replay(deltas: list[dict[str, Any]]) -> dict[str, Any]:
    """A session's state from empty, as ADK's services apply each event's delta."""
    state: dict[str, Any] = {}
    for delta in deltas:
        state.update(
            {k: v for k, v in delta.items() if not k.startswith(("app:", "user:", "temp:"))}
        )
    return state


async def adk_session(
    service: SessionkeeperSessionService, sid: str, state: dict[str, Any] | None = None
) -> AdkSession:
    session = await service.create_session(app_name=APP, user_id="ada", session_id=sid, state=state)
    for n, delta in enumerate(DELTAS):
        author = "user" if n % 2 == 0 else "assistant"
        role = "user" if author == "user" else "model"
        event = Event(
            invocation_id=f"inv{n // 2}",
            author=author,
            content=types.Content(role=role, parts=[types.Part(text=f"turn {n + 1}")]),
            actions=EventActions(state_delta=dict(delta)),
        )
        await service.append_event(session, event)
    return session


async def read(service: SessionkeeperSessionService, sid: str) -> AdkSession:
    got = await service.get_session(app_name=APP, user_id="ada", session_id=sid)
    assert got is not None
    return got


def texts(session: AdkSession) -> list[str]:
    return [e.content.parts[0].text or "" for e in session.events if e.content and e.content.parts]


@pytest.mark.parametrize("at", [0, 1, 2, 3, 4])
async def test_an_adk_session_forks_with_the_state_its_kept_events_give(
    sk_store: Store, at: int
) -> None:
    service = SessionkeeperSessionService(sk_store)
    await adk_session(service, "src")
    before = await read(service, "src")
    fork = await sk_store.fork_session("src", at_seq=at, new_session_id=f"fork{at}")
    assert (fork.parent_session_id, fork.fork_seq, fork.session_type) == ("src", at, "adk")
    assert fork.metadata["adk"] == {"app_name": APP, "user_id": "ada", "id": f"fork{at}"}
    # Read back by ADK's service: the kept events, and the state they give (shared state
    # as the app and user have it now; temp: never stored).
    got = await read(service, f"fork{at}")
    assert texts(got) == [f"turn {n + 1}" for n in range(at)]
    assert got.events == before.events[:at]
    assert got.state == {**replay(DELTAS[:at]), **SHARED}
    listed = await service.list_sessions(app_name=APP, user_id="ada")
    assert sorted(s.id for s in listed.sessions) == sorted(["src", f"fork{at}"])
    # The source is unchanged.
    assert await read(service, "src") == before


async def test_an_adk_fork_keeps_create_state_as_adk_rewind_does(sk_store: Store) -> None:
    service = SessionkeeperSessionService(sk_store)
    # "init" no event touches: kept; "c" an undone event overwrote: its first value is in
    # no event, so it is removed (ADK's rewind sets it to None).
    await adk_session(service, "src", state={"init": 0, "c": -1})
    whole = await read(service, "src")
    for at in range(len(DELTAS) + 1):
        fork = await sk_store.fork_session("src", at_seq=at)
        got = await read(service, fork.session_id)
        # ADK's own computation of the same rewind, applied to the source's state.
        delta = await _rewind_utils.compute_state_delta_for_rewind(whole, at)
        expected = {**whole.state, **delta}
        expected = {k: v for k, v in expected.items() if k not in delta or delta[k] is not None}
        assert got.state == expected, at
    # A fork of nothing but create-time state holds state: it is no ghost.
    empty = await sk_store.fork_session("src", at_seq=0, new_session_id="empty")
    assert empty.message_count == 0
    await sk_store.delete_ghost_sessions(older_than_minutes=0)
    assert (await read(service, "empty")).state == {"init": 0, **SHARED}


async def test_an_adk_session_rewinds_with_recomputed_state_and_an_adk_branch(
    sk_store: Store,
) -> None:
    service = SessionkeeperSessionService(sk_store)
    await adk_session(service, "src")
    before = await read(service, "src")
    done = await sk_store.rewind_session("src", 2)
    assert done.branch is not None and done.dropped_messages == 2
    got = await read(service, "src")
    assert got.events == before.events[:2]
    assert got.state == {**replay(DELTAS[:2]), **SHARED}
    # The branch is an ADK session holding the whole conversation and its state as it was.
    branch = await read(service, done.branch.session_id)
    assert branch.events == before.events
    assert branch.state == before.state
    listed = await service.list_sessions(app_name=APP, user_id="ada")
    assert sorted(s.id for s in listed.sessions) == sorted(["src", done.branch.session_id])
    # The session goes on from the rewind: a new event, a new delta on the recomputed state.
    session = await read(service, "src")
    event = Event(invocation_id="inv9", author="user", actions=EventActions(state_delta={"e": 5}))
    await service.append_event(session, event)
    assert (await read(service, "src")).state == {**replay([*DELTAS[:2], {"e": 5}]), **SHARED}
    assert (await sk_store.get_session("src")).message_count == 3
    # Rewound to nothing, with no state left, the session is a ghost like any unused one;
    # its branch (events and state) stays.
    emptied = await sk_store.rewind_session(done.branch.session_id, 0)
    assert emptied.branch is not None
    assert (await read(service, done.branch.session_id)).state == SHARED
    assert await sk_store.delete_ghost_sessions(older_than_minutes=0) == 1
    assert (
        await service.get_session(app_name=APP, user_id="ada", session_id=done.branch.session_id)
        is None
    )
    assert (await read(service, emptied.branch.session_id)).state == before.state
    # A rewind to the last event changes nothing and makes no branch.
    again = await sk_store.rewind_session("src", 3)
    assert again.branch is None
    assert (await read(service, "src")).state["e"] == 5


async def test_an_adk_fork_onto_a_taken_id_writes_nothing(sk_store: Store) -> None:
    service = SessionkeeperSessionService(sk_store)
    await adk_session(service, "src")
    await service.create_session(app_name=APP, user_id="ada", session_id="taken")
    with pytest.raises(Conflict, match="taken"):
        await sk_store.fork_session("src", new_session_id="taken")
    assert (await sk_store.list_sessions()).total == 2
    assert (await read(service, "taken")).events == []


async def test_adk_forks_taken_during_appends_hold_the_state_of_their_own_events(
    sk_store: Store,
) -> None:
    service = SessionkeeperSessionService(sk_store)
    session = await service.create_session(app_name=APP, user_id="ada", session_id="busy")

    async def append() -> None:
        for i in range(40):
            delta = {"n": i, f"k{i % 7}": i, "user:seen": i}
            event = Event(
                invocation_id=f"i{i}", author="user", actions=EventActions(state_delta=delta)
            )
            await service.append_event(session, event)

    async def fork() -> list[str]:
        ids = []
        for _ in range(8):
            ids.append((await sk_store.fork_session("busy")).session_id)
            await asyncio.sleep(0)
        return ids

    _, ids = await asyncio.gather(append(), fork())
    counts = []
    for sid in ids:
        got = await read(service, sid)
        counts.append(len(got.events))
        deltas = [e.actions.state_delta for e in got.events]
        assert {k: v for k, v in got.state.items() if k != "user:seen"} == replay(deltas)
    assert len(set(counts)) > 1, counts  # the forks did interleave with the appends
    assert (await read(service, "busy")).state["n"] == 39


def turn_message(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


async def run_turn(runner: Runner, sid: str, text: str) -> None:
    async for _ in runner.run_async(user_id="ada", session_id=sid, new_message=turn_message(text)):
        pass


async def test_adk_runner_continues_on_a_fork_and_after_a_rewind(sk_store: Store) -> None:
    from adk_scripted import ScriptedLlm

    service = SessionkeeperSessionService(sk_store)
    model = ScriptedLlm(replies=["Hello Ada!", "Goodbye.", "Italy is lovely.", "Hi again."])
    # output_key: each reply is also written to state["last"] (an event's state delta).
    agent = LlmAgent(name="assistant", model=model, output_key="last")
    runner = Runner(agent=agent, app_name=APP, session_service=service)
    await service.create_session(app_name=APP, user_id="ada", session_id="chat")
    await run_turn(runner, "chat", "I am Ada")
    await run_turn(runner, "chat", "Bye")
    assert (await read(service, "chat")).state == {"last": "Goodbye."}

    fork = await sk_store.fork_session("chat", at_seq=2, new_session_id="trip")
    assert (await read(service, "trip")).state == {"last": "Hello Ada!"}
    await run_turn(runner, "trip", "Tell me about Italy")
    # The model saw the kept history, not the source's later turn.
    assert [(c.role, c.parts[0].text) for c in model.requests[2].contents] == [
        ("user", "I am Ada"),
        ("model", "Hello Ada!"),
        ("user", "Tell me about Italy"),
    ]
    trip = await read(service, fork.session_id)
    assert texts(trip) == ["I am Ada", "Hello Ada!", "Tell me about Italy", "Italy is lovely."]
    assert trip.state == {"last": "Italy is lovely."}
    assert (await read(service, "chat")).state == {"last": "Goodbye."}

    # Rewound to the first turn, the session's state is that turn's, and the Runner goes on.
    done = await sk_store.rewind_session("chat", 2)
    assert done.branch is not None
    assert (await read(service, "chat")).state == {"last": "Hello Ada!"}
    await run_turn(runner, "chat", "Hello again")
    assert [(c.role, c.parts[0].text) for c in model.requests[3].contents] == [
        ("user", "I am Ada"),
        ("model", "Hello Ada!"),
        ("user", "Hello again"),
    ]
    chat = await read(service, "chat")
    assert texts(chat) == ["I am Ada", "Hello Ada!", "Hello again", "Hi again."]
    assert chat.state == {"last": "Hi again."}
    assert texts(await read(service, done.branch.session_id))[-1] == "Goodbye."


def test_the_readme_adk_lineage_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n### Forks and rewinds of Google ADK sessions\n", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    root = str(Path(__file__).resolve().parents[2] / "src")  # this checkout's code
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = [c.strip() for c in re.findall(r"print\(.*# (.*)$", code, re.M)]
    assert done.stdout.splitlines() == expected
