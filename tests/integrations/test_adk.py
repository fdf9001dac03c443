"""SessionkeeperSessionService: ADK's session-service contract, on every database.

The contract tests follow ADK's documented behaviour and its public session-service tests
(tests/unittests/sessions/test_session_service.py in google/adk-python), written here
against this service; the rest checks what this service adds: ordinary store sessions,
appends that never go stale, bad input refused whole.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.adk.agents.llm_agent import LlmAgent
from google.adk.errors.already_exists_error import AlreadyExistsError
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.events.event_actions import EventActions
from google.adk.runners import Runner
from google.adk.sessions.base_session_service import GetSessionConfig
from google.genai import types

from sessionkeeper import Store, open_store
from sessionkeeper.errors import InvalidInput
from sessionkeeper.integrations.adk import SessionkeeperSessionService

APP = "my_app"


@pytest.fixture
def service(sk_store: Store) -> SessionkeeperSessionService:
    return SessionkeeperSessionService(sk_store)


def text_event(text: str, author: str = "user", **kwargs: object) -> Event:
    role = "user" if author == "user" else "model"
    return Event(
        invocation_id="inv",
        author=author,
        content=types.Content(role=role, parts=[types.Part(text=text)]),
        **kwargs,  # type: ignore[arg-type]
    )


def delta_event(delta: dict[str, object], **kwargs: object) -> Event:
    return Event(
        invocation_id="inv1",
        author="user",
        actions=EventActions(state_delta=delta),
        **kwargs,  # type: ignore[arg-type]
    )


# ── ADK's contract ──────────────────────────────────────────────────────────


async def test_get_missing_session_is_none(service: SessionkeeperSessionService) -> None:
    assert await service.get_session(app_name=APP, user_id="u", session_id="123") is None


async def test_create_get_delete(service: SessionkeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u", state={"key": "value"})
    assert session.app_name == APP and session.user_id == "u" and session.id
    assert session.state == {"key": "value"}
    assert session.last_update_time <= datetime.now(UTC).timestamp()
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got == session
    await service.delete_session(app_name=APP, user_id="u", session_id=session.id)
    assert await service.get_session(app_name=APP, user_id="u", session_id=session.id) is None


async def test_create_and_list(service: SessionkeeperSessionService) -> None:
    ids = [f"session{i}" for i in range(5)]
    for sid in ids:
        await service.create_session(
            app_name=APP, user_id="u", session_id=sid, state={"key": "value" + sid}
        )
    sessions = (await service.list_sessions(app_name=APP, user_id="u")).sessions
    assert {s.id for s in sessions} == set(ids)
    for s in sessions:
        assert s.state == {"key": "value" + s.id} and s.events == []


async def test_list_all_users(service: SessionkeeperSessionService) -> None:
    for user, sid in (("user1", "s1a"), ("user1", "s1b"), ("user2", "s2a")):
        await service.create_session(
            app_name=APP, user_id=user, session_id=sid, state={"key": sid, "user:who": user}
        )
    one = (await service.list_sessions(app_name=APP, user_id="user1")).sessions
    assert {s.id for s in one} == {"s1a", "s1b"}
    every = {s.id: s for s in (await service.list_sessions(app_name=APP)).sessions}
    assert set(every) == {"s1a", "s1b", "s2a"}
    assert every["s2a"].state == {"key": "s2a", "user:who": "user2"}
    assert every["s1a"].user_id == "user1"
    assert (await service.list_sessions(app_name="other")).sessions == []


async def test_list_is_oldest_update_first(service: SessionkeeperSessionService) -> None:
    a = await service.create_session(app_name=APP, user_id="u", session_id="a")
    await service.create_session(app_name=APP, user_id="u", session_id="b")
    await service.append_event(a, text_event("later", timestamp=time.time() + 5))
    listed = (await service.list_sessions(app_name=APP, user_id="u")).sessions
    assert [s.id for s in listed] == ["b", "a"]


async def test_list_pages_past_one_store_page(service: SessionkeeperSessionService) -> None:
    from sessionkeeper.store.backends.frameworks.adk_base import LIST_PAGE

    n = LIST_PAGE + 3
    for i in range(n):
        await service.create_session(app_name=APP, user_id=f"u{i % 7}", session_id=f"s{i}")
    listed = (await service.list_sessions(app_name=APP)).sessions
    assert len(listed) == n and len({(s.user_id, s.id) for s in listed}) == n
    times = [s.last_update_time for s in listed]
    assert times == sorted(times)


async def test_app_state_is_shared_by_all_users(service: SessionkeeperSessionService) -> None:
    s1 = await service.create_session(
        app_name=APP, user_id="u1", session_id="s1", state={"app:k1": "v1"}
    )
    await service.append_event(s1, delta_event({"app:k2": "v2"}))
    s2 = await service.create_session(app_name=APP, user_id="u2", session_id="s2")
    assert s2.state == {"app:k1": "v1", "app:k2": "v2"}
    got = await service.get_session(app_name=APP, user_id="u1", session_id="s1")
    assert got is not None and got.state == {"app:k1": "v1", "app:k2": "v2"}


async def test_user_state_is_shared_by_the_users_sessions_only(
    service: SessionkeeperSessionService,
) -> None:
    s1 = await service.create_session(
        app_name=APP, user_id="u1", session_id="s1", state={"user:k1": "v1"}
    )
    await service.append_event(s1, delta_event({"user:k2": "v2"}))
    s1b = await service.create_session(app_name=APP, user_id="u1", session_id="s1b")
    assert s1b.state == {"user:k1": "v1", "user:k2": "v2"}
    s2 = await service.create_session(app_name=APP, user_id="u2", session_id="s2")
    assert s2.state == {}


async def test_session_state_is_not_shared(service: SessionkeeperSessionService) -> None:
    s1 = await service.create_session(
        app_name=APP, user_id="u1", session_id="s1", state={"sk1": "v1"}
    )
    await service.append_event(s1, delta_event({"sk2": "v2"}))
    got = await service.get_session(app_name=APP, user_id="u1", session_id="s1")
    assert got is not None and got.state == {"sk1": "v1", "sk2": "v2"}
    other = await service.create_session(app_name=APP, user_id="u1", session_id="s1b")
    assert other.state == {}


async def test_temp_state_is_for_the_invocation_only(
    service: SessionkeeperSessionService,
) -> None:
    session = await service.create_session(
        app_name=APP, user_id="u1", session_id="s1", state={"temp:at_create": 1}
    )
    assert "temp:at_create" not in session.state
    event = delta_event({"temp:k1": "v1", "sk": "v2"})
    await service.append_event(session, event)
    assert session.state.get("temp:k1") == "v1" and session.state.get("sk") == "v2"
    assert event.actions.state_delta == {"sk": "v2"}
    got = await service.get_session(app_name=APP, user_id="u1", session_id="s1")
    assert got is not None and got.state == {"sk": "v2"}
    assert got.events[0].actions.state_delta == {"sk": "v2"}


async def test_same_session_id_for_two_users(service: SessionkeeperSessionService) -> None:
    s1 = await service.create_session(app_name=APP, user_id="u1", session_id="s1")
    await service.append_event(s1, text_event("hi"))
    await service.create_session(app_name=APP, user_id="u2", session_id="s1")
    got = await service.get_session(app_name=APP, user_id="u2", session_id="s1")
    assert got is not None and got.user_id == "u2" and got.events == []
    mine = await service.get_session(app_name=APP, user_id="u1", session_id="s1")
    assert mine is not None and len(mine.events) == 1
    await service.delete_session(app_name=APP, user_id="u2", session_id="s1")
    assert await service.get_session(app_name=APP, user_id="u1", session_id="s1") is not None


async def test_duplicate_id_raises(service: SessionkeeperSessionService) -> None:
    await service.create_session(app_name=APP, user_id="u", session_id="existing")
    with pytest.raises(AlreadyExistsError):
        await service.create_session(app_name=APP, user_id="u", session_id="existing")


async def test_bytes_round_trip(service: SessionkeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    content = types.Content(
        role="user", parts=[types.Part.from_bytes(data=b"\x00\xffimage", mime_type="image/png")]
    )
    grounding = types.GroundingMetadata(
        search_entry_point=types.SearchEntryPoint(sdk_blob=b"test_sdk_blob")
    )
    event = Event(invocation_id="inv", author="user", content=content, grounding_metadata=grounding)
    await service.append_event(session, event)
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got is not None and got.events == [event]
    assert got.events[0].content == content


async def test_complete_event_round_trips(service: SessionkeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    event = Event(
        invocation_id="invocation",
        author="user",
        content=types.Content(role="user", parts=[types.Part(text="test_text")]),
        turn_complete=True,
        partial=False,
        actions=EventActions(artifact_delta={"file": 0}, transfer_to_agent="agent", escalate=True),
        long_running_tool_ids={"tool1"},
        error_code="error_code",
        error_message="error_message",
        interrupted=True,
        grounding_metadata=types.GroundingMetadata(web_search_queries=["query1"]),
        usage_metadata=types.GenerateContentResponseUsageMetadata(
            prompt_token_count=1, candidates_token_count=1, total_token_count=2
        ),
        citation_metadata=types.CitationMetadata(),
        custom_metadata={"custom_key": "custom_value", "big": 1e16, "neg": -0.0},
        timestamp=1700000000.123,
        input_transcription=types.Transcription(text="input transcription", finished=True),
        output_transcription=types.Transcription(text="output transcription", finished=True),
    )
    await service.append_event(session, event)
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got == session
    assert got is not None and got.events[0].model_dump_json() == event.model_dump_json()


async def test_function_call_and_response_round_trip(
    service: SessionkeeperSessionService, sk_store: Store
) -> None:
    session = await service.create_session(app_name=APP, user_id="u", session_id="tools")
    call = Event(
        invocation_id="i",
        author="helper",
        content=types.Content(
            role="model",
            parts=[types.Part.from_function_call(name="weather", args={"city": "Oslo"})],
        ),
    )
    answer = Event(
        invocation_id="i",
        author="helper",
        content=types.Content(
            role="user",
            parts=[types.Part.from_function_response(name="weather", response={"t": -3.5})],
        ),
    )
    for event in (call, answer):
        await service.append_event(session, event)
    got = await service.get_session(app_name=APP, user_id="u", session_id="tools")
    assert got is not None and got.events == [call, answer]
    messages = await sk_store.get_messages("tools")
    assert [m.role for m in messages] == ["assistant", "tool"]
    assert messages[0].content == 'weather({"city": "Oslo"})'
    assert messages[0].agent_id == "helper"


async def test_last_update_time_follows_events(service: SessionkeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    created = session.last_update_time
    event = Event(invocation_id="i", author="user", timestamp=created + 10)
    await service.append_event(session, event)
    assert session.last_update_time == pytest.approx(created + 10, abs=1e-6)
    got = await service.get_session(app_name=APP, user_id="u", session_id=session.id)
    assert got is not None and got.last_update_time == pytest.approx(created + 10, abs=1e-6)


async def test_get_session_config(service: SessionkeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u")
    for i in range(1, 6):
        await service.append_event(session, Event(author="user", timestamp=i))

    async def events(**config: object) -> list[float]:
        got = await service.get_session(
            app_name=APP,
            user_id="u",
            session_id=session.id,
            config=GetSessionConfig(**config) if config else None,  # type: ignore[arg-type]
        )
        assert got is not None
        return [e.timestamp for e in got.events]

    assert await events() == [1, 2, 3, 4, 5]
    assert await events(num_recent_events=0) == []
    assert await events(num_recent_events=3) == [3, 4, 5]
    assert await events(after_timestamp=4.0) == [4, 5]
    assert await events(after_timestamp=50) == []
    assert await events(after_timestamp=4.0, num_recent_events=3) == [4, 5]
    assert await events(num_recent_events=99) == [1, 2, 3, 4, 5]


async def test_partial_events_are_not_stored(
    service: SessionkeeperSessionService, sk_store: Store
) -> None:
    session = await service.create_session(app_name=APP, user_id="u", session_id="p")
    await service.append_event(session, Event(author="user", partial=True))
    assert session.events == []
    got = await service.get_session(app_name=APP, user_id="u", session_id="p")
    assert got is not None and got.events == []
    assert (await sk_store.get_session("p")).message_count == 0


async def test_user_state(service: SessionkeeperSessionService) -> None:
    assert await service.get_user_state(app_name=APP, user_id="u1") == {}
    session = await service.create_session(app_name=APP, user_id="u1")
    await service.append_event(
        session,
        Event(
            author="system",
            actions=EventActions(
                state_delta={"user:profile": {"name": "Alice"}, "session_key": 1, "user:counter": 1}
            ),
        ),
    )
    await service.append_event(
        session, Event(author="system", actions=EventActions(state_delta={"user:counter": 2}))
    )
    assert await service.get_user_state(app_name=APP, user_id="u1") == {
        "profile": {"name": "Alice"},
        "counter": 2,
    }
    assert await service.get_user_state(app_name=APP, user_id="u2") == {}
    assert await service.get_user_state(app_name="other_app", user_id="u1") == {}


async def test_append_to_a_missing_session(service: SessionkeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u", session_id="gone")
    await service.delete_session(app_name=APP, user_id="u", session_id="gone")
    with pytest.raises(SessionNotFoundError):
        await service.append_event(session, text_event("hello?"))


# ── what this service adds ──────────────────────────────────────────────────


async def test_an_adk_session_is_an_ordinary_session(
    service: SessionkeeperSessionService, sk_store: Store
) -> None:
    session = await service.create_session(app_name=APP, user_id="alice", session_id="trip")
    await service.append_event(session, text_event("Plan a trip to Kyoto in April"))
    await service.append_event(session, text_event("Cherry blossoms peak early April", "guide"))
    stored = await sk_store.get_session("trip")
    assert stored.session_type == "adk" and stored.agent_id == APP
    assert stored.title == "Plan a trip to Kyoto in April"
    assert stored.message_count == 2
    assert stored.metadata == {"adk": {"app_name": APP, "user_id": "alice", "id": "trip"}}
    listed = await sk_store.list_sessions(session_type="adk")
    assert [s.session_id for s in listed.items] == ["trip"]
    hits = await sk_store.search_messages("blossoms")
    assert [(h.session_id, h.seq) for h in hits] == [("trip", 2)]
    window = await sk_store.context_window("trip", max_tokens=1000)
    assert [m.content for m in window.messages][-1] == "Cherry blossoms peak early April"
    # Deleting the store session deletes the ADK session and its state.
    await sk_store.delete_session("trip")
    assert await service.get_session(app_name=APP, user_id="alice", session_id="trip") is None
    assert (await service.list_sessions(app_name=APP)).sessions == []


async def test_ids_the_store_cannot_take_are_mapped(
    service: SessionkeeperSessionService, sk_store: Store
) -> None:
    odd = "my session/1 ünïcode"
    session = await service.create_session(app_name="My App!", user_id="u", session_id=odd)
    await service.append_event(session, text_event("hello"))
    got = await service.get_session(app_name="My App!", user_id="u", session_id=odd)
    assert got is not None and got.id == odd and len(got.events) == 1
    (stored,) = (await sk_store.list_sessions(session_type="adk")).items
    assert stored.session_id.startswith("adk-") and stored.agent_id == "My_App_"
    # A store session that already has the id: the ADK session gets another.
    await sk_store.create_session(session_id="taken")
    mapped = await service.create_session(app_name=APP, user_id="u", session_id="taken")
    assert mapped.id == "taken"
    assert (await sk_store.get_session("taken")).session_type != "adk"


async def test_padded_ids_are_stripped(service: SessionkeeperSessionService) -> None:
    session = await service.create_session(app_name=APP, user_id="u", session_id="  s9 ")
    assert session.id == "s9"


async def test_a_stale_session_object_still_appends(
    service: SessionkeeperSessionService,
) -> None:
    """ADK's database services refuse this (StaleSessionError) and the caller retries."""
    original = await service.create_session(app_name=APP, user_id="u", session_id="s")
    await service.append_event(original, delta_event({"sk1": "v1"}, timestamp=time.time() + 1))
    fresh = await service.get_session(app_name=APP, user_id="u", session_id="s")
    assert fresh is not None
    await service.append_event(fresh, delta_event({"sk2": "v2"}, timestamp=time.time() + 2))
    await service.append_event(original, delta_event({"sk3": "v3"}, timestamp=time.time() + 3))
    final = await service.get_session(app_name=APP, user_id="u", session_id="s")
    assert final is not None
    assert final.state == {"sk1": "v1", "sk2": "v2", "sk3": "v3"}
    assert [e.actions.state_delta for e in final.events] == [
        {"sk1": "v1"},
        {"sk2": "v2"},
        {"sk3": "v3"},
    ]


async def test_concurrent_appends_lose_nothing(service: SessionkeeperSessionService) -> None:
    base = await service.create_session(app_name=APP, user_id="u", session_id="busy")
    copies = [base.model_copy(deep=True) for _ in range(20)]
    await asyncio.gather(
        *(
            service.append_event(c, delta_event({f"k{i}": i, "app:n": i, "user:n": i}))
            for i, c in enumerate(copies)
        )
    )
    final = await service.get_session(app_name=APP, user_id="u", session_id="busy")
    assert final is not None and len(final.events) == 20
    assert all(final.state[f"k{i}"] == i for i in range(20))


async def test_ghosts_are_empty_sessions_without_state(
    service: SessionkeeperSessionService, sk_store: Store
) -> None:
    await service.create_session(app_name=APP, user_id="u", session_id="empty")
    await service.create_session(app_name=APP, user_id="u", session_id="stateful", state={"a": 1})
    await service.create_session(
        app_name=APP, user_id="u", session_id="shared-only", state={"user:a": 1}
    )
    assert await sk_store.delete_ghost_sessions(older_than_minutes=0) == 2
    left = (await service.list_sessions(app_name=APP, user_id="u")).sessions
    assert [s.id for s in left] == ["stateful"]
    assert await service.get_user_state(app_name=APP, user_id="u") == {"a": 1}


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ({"n": float("nan")}, "state"),
        ({"user:n": float("inf")}, "user state"),
        ({"text": "a\x00b"}, "state.text"),
    ],
)
async def test_bad_state_is_refused_and_nothing_stored(
    service: SessionkeeperSessionService, sk_store: Store, state: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create_session(app_name=APP, user_id="u", session_id="bad", state=state)
    assert str(caught.value.details["field"]).startswith(field)
    assert await service.get_session(app_name=APP, user_id="u", session_id="bad") is None
    assert await service.get_user_state(app_name=APP, user_id="u") == {}
    assert (await sk_store.list_sessions()).items == []


async def test_bad_event_is_refused_and_nothing_stored(
    service: SessionkeeperSessionService, sk_store: Store
) -> None:
    session = await service.create_session(app_name=APP, user_id="u", session_id="s")
    with pytest.raises(InvalidInput):
        await service.append_event(session, text_event("nul \x00 here"))
    with pytest.raises(InvalidInput):
        await service.append_event(session, delta_event({"user:x": 1, "n": float("nan")}))
    got = await service.get_session(app_name=APP, user_id="u", session_id="s")
    assert got is not None and got.events == [] and got.state == {}
    assert await service.get_user_state(app_name=APP, user_id="u") == {}
    assert (await sk_store.get_session("s")).message_count == 0


async def test_bad_names_are_refused(service: SessionkeeperSessionService) -> None:
    with pytest.raises(InvalidInput) as caught:
        await service.create_session(app_name="", user_id="u")
    assert caught.value.details["field"] == "app_name"
    with pytest.raises(InvalidInput) as caught:
        await service.get_session(app_name=APP, user_id="u\x00", session_id="s")
    assert caught.value.details["field"] == "user_id"


async def test_from_url(file_db_url: str) -> None:
    async with SessionkeeperSessionService.from_url(file_db_url) as service:
        await service.create_session(app_name=APP, user_id="u", session_id="persisted")
    async with SessionkeeperSessionService.from_url(file_db_url) as service:
        assert await service.get_session(app_name=APP, user_id="u", session_id="persisted")


# ── ADK's Runner ────────────────────────────────────────────────────────────


async def test_runner_second_turn_reads_the_first_from_the_store(file_db_url: str) -> None:
    from adk_scripted import ScriptedLlm

    model = ScriptedLlm(replies=["Hello Ada!", "You are Ada."])

    async def turn(text: str) -> list[Event]:
        # A new service (and store) per turn: the history can only come from the database.
        async with SessionkeeperSessionService.from_url(file_db_url) as service:
            if await service.get_session(app_name=APP, user_id="ada", session_id="chat") is None:
                await service.create_session(app_name=APP, user_id="ada", session_id="chat")
            agent = LlmAgent(name="assistant", model=model, instruction="Be brief.")
            runner = Runner(agent=agent, app_name=APP, session_service=service)
            message = types.Content(role="user", parts=[types.Part(text=text)])
            return [
                e
                async for e in runner.run_async(
                    user_id="ada", session_id="chat", new_message=message
                )
            ]

    await turn("I am Ada")
    await turn("Who am I?")
    second = model.requests[1].contents
    assert [(c.role, c.parts[0].text) for c in second] == [
        ("user", "I am Ada"),
        ("model", "Hello Ada!"),
        ("user", "Who am I?"),
    ]
    async with SessionkeeperSessionService.from_url(file_db_url) as service:
        got = await service.get_session(app_name=APP, user_id="ada", session_id="chat")
        assert got is not None
        assert [e.content.parts[0].text for e in got.events if e.content] == [
            "I am Ada",
            "Hello Ada!",
            "Who am I?",
            "You are Ada.",
        ]
        assert (await service.store.get_session("chat")).title == "I am Ada"


# ── processes ───────────────────────────────────────────────────────────────


def test_four_processes_append_without_retry(file_db_url: str) -> None:
    from workers import append_adk_events

    async def create() -> None:
        async with SessionkeeperSessionService.from_url(file_db_url) as service:
            await service.create_session(app_name="app", user_id="u", session_id="shared")

    asyncio.run(create())
    ctx = multiprocessing.get_context("spawn")
    procs = [
        ctx.Process(target=append_adk_events, args=(file_db_url, "shared", w, 500))
        for w in range(4)
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(timeout=600)
        assert proc.exitcode == 0

    async def read() -> tuple[list[Event], dict[str, object]]:
        async with SessionkeeperSessionService.from_url(file_db_url) as service:
            got = await service.get_session(app_name="app", user_id="u", session_id="shared")
            assert got is not None
            return got.events, got.state

    events, state = asyncio.run(read())
    assert len(events) == 2000
    for writer in range(4):
        mine = [e.content.parts[0].text for e in events if e.invocation_id == f"w{writer}"]
        assert mine == [f"w{writer} #{i}" for i in range(500)]
        assert state[f"w{writer}"] == 499


# ── packaging ───────────────────────────────────────────────────────────────


def test_missing_framework_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['google.adk'] = None\n"
        "try:\n"
        "    import sessionkeeper.integrations.adk\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path.cwd()
    )
    assert "pip install 'sessionkeeper[adk]'" in out.stdout


async def test_store_opened_elsewhere_is_not_closed(db_url: str) -> None:
    store = await open_store(db_url)
    service = SessionkeeperSessionService(store)
    await service.create_session(app_name=APP, user_id="u", session_id="x")
    assert (await store.get_session("x")).session_type == "adk"
    await store.close()


def test_readme_example_runs(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    code = readme.split("### Google ADK", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
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
        assert "echo > You said: Plan a trip to Kyoto." in out.stdout
        assert "4 events, state {'user:name': 'Ada'}" in out.stdout
        assert "adk demo 'Hello!' 4" in out.stdout
