"""The chat endpoint over real SQLite and PostgreSQL, with a real local model server.

The model is ``tests/fakellm.py``: an OpenAI-compatible streaming server on 127.0.0.1 that
records what it was sent, so the tests assert the exact messages the model received.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

import rawdb
from fakellm import FakeLLM, run_fake_llm
from sessionkeeper.api import create_app
from sessionkeeper.api.deps import get_principal
from sessionkeeper.api.principal import Principal
from sessionkeeper.chat.llm import OpenAIChatClient
from sessionkeeper.chat.turn import (
    DISCONNECTED,
    ECHO_LABEL,
    ChatRequest,
    auto_title,
    prepare_turn,
    reply_reserve,
    to_openai,
)
from sessionkeeper.config import Settings
from sessionkeeper.errors import Conflict, InvalidInput, TooLarge
from sessionkeeper.store.core import Store

STREAM = "/api/engine/chat/stream"


def parse_sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    events = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append((fields["event"], json.loads(fields["data"])))
    return events


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake_llm() as server:
        yield server


def make_app(db_url: str, store: Store, fake: FakeLLM | None) -> Any:
    settings = Settings(
        database_url=db_url,
        maintenance=False,
        llm_base_url=fake.base_url if fake else None,
        llm_model="fake-model" if fake else None,
    )
    return create_app(settings, store=store)


@pytest.fixture
async def client(db_url: str, store: Store, fake: FakeLLM) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(db_url, store, fake)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c
    await app.state.llm.aclose()


async def chat(client: httpx.AsyncClient, **body: Any) -> list[tuple[str, dict[str, Any]]]:
    r = await client.post(STREAM, json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return parse_sse(r.text)


async def test_session_created_by_first_message_and_its_id_comes_first(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    assert (await store.list_sessions()).total == 0
    events = await chat(client, content="Hello there")
    name, first = events[0]
    assert name == "session" and first["created"] is True and first["title"] == "Hello there"
    sid = first["session_id"]
    assert [n for n, _ in events[1:-1]] == ["delta"] * (len(events) - 2)
    deltas = "".join(d["text"] for n, d in events if n == "delta")
    assert deltas == "Reply to: Hello there"
    name, done = events[-1]
    assert name == "done" and done["session_id"] == sid
    assert done["message"]["role"] == "assistant" and done["message"]["content"] == deltas
    assert done["message"]["model"] == "fake-model" and done["echo"] is False

    page = await store.list_sessions()
    assert page.total == 1 and page.items[0].session_id == sid
    stored = await store.get_messages(sid)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "Hello there"),
        ("assistant", "Reply to: Hello there"),
    ]
    assert stored[1].metadata == {} and stored[1].model == "fake-model"
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "Hello there"}]

    # Continuing the session: same id, created false, nothing new created.
    events = await chat(client, session_id=sid, content="And again")
    assert events[0][0] == "session" and events[0][1]["created"] is False
    assert (await store.list_sessions()).total == 1
    assert (await store.get_session(sid)).message_count == 4


async def test_user_message_is_stored_before_the_model_is_called(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    seen: list[list[tuple[str, str]]] = []

    async def stored() -> list[tuple[str, str]]:
        page = await store.list_sessions()
        return [
            (m.role, m.content) for s in page.items for m in await store.get_messages(s.session_id)
        ]

    def reply(sent: list[dict[str, Any]]) -> str:
        # Runs inside the model server (its own thread and event loop), while the chat
        # request waits for it. It reads the app's own store from one more thread and loop:
        # on a SQLite file through a reader connection, on PostgreSQL through another pool,
        # so only committed rows are seen (in-memory SQLite is the one connection's database).
        with concurrent.futures.ThreadPoolExecutor(1) as reader:
            seen.append(reader.submit(asyncio.run, stored()).result(timeout=10))
        return "ok"

    fake.options.reply = reply
    events = await chat(client, content="store me first")
    assert seen == [[("user", "store me first")]]
    assert events[-1][0] == "done"


async def test_model_receives_only_the_token_budgeted_window(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    s = await store.create_session(title="long")
    await store.add_message(s.session_id, "system", "You are terse.")
    for i in range(30):
        await store.add_message(s.session_id, "user", f"old question number {i} " * 3)
        await store.add_message(s.session_id, "assistant", f"old answer number {i} " * 3)
    call = [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]
    await store.add_message(s.session_id, "assistant", "", metadata={"tool_calls": call})
    await store.add_message(s.session_id, "tool", "42", metadata={"tool_call_id": "c1"})

    events = await chat(
        client, session_id=s.session_id, content="newest prompt", max_context_tokens=240
    )
    done = events[-1][1]
    window = done["window"]
    assert window["max_tokens"] == 240 and window["reserve"] == reply_reserve(240) == 60
    assert window["dropped_messages"] > 40 and window["total_tokens"] <= 180

    sent = fake.requests[-1]["messages"]
    assert sent[0] == {"role": "system", "content": "You are terse."}  # pinned
    assert sent[-1] == {"role": "user", "content": "newest prompt"}
    assert {"role": "assistant", "content": "", "tool_calls": call} in sent
    assert {"role": "tool", "content": "42", "tool_call_id": "c1"} in sent
    assert not any("number 0 " in m["content"] for m in sent)
    assert len(sent) == window["messages"] < 30

    # Exactly the Store's window for the session as it was when the model was called.
    await store.delete_message(s.session_id, done["message"]["seq"])
    expected = await store.context_window(s.session_id, 240, reserve=60)
    assert sent == [to_openai(m) for m in expected.messages]


async def test_model_failure_mid_stream_keeps_the_partial_reply(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    fake.options.reply = "one two three four five six seven eight"
    fake.options.abort_after = 2
    events = await chat(client, content="tell me")
    names = [n for n, _ in events]
    assert names == ["session", "delta", "delta", "error"]
    seen = "".join(d["text"] for n, d in events if n == "delta")
    assert seen == "one two three four "
    error = events[-1][1]
    assert "model server" in error["detail"]
    sid = events[0][1]["session_id"]
    stored = await store.get_messages(sid)
    assert [m.role for m in stored] == ["user", "assistant"]
    assert stored[1].content == seen
    assert stored[1].metadata["partial"] is True and stored[1].metadata["error"] == error["detail"]
    assert error["message"]["seq"] == stored[1].seq


async def test_model_failing_at_once_stores_no_reply(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    fake.options.fail_status = 503
    events = await chat(client, content="anyone?")
    assert [n for n, _ in events] == ["session", "error"]
    assert "HTTP 503" in events[-1][1]["detail"] and events[-1][1]["message"] is None
    stored = await store.get_messages(events[0][1]["session_id"])
    assert [(m.role, m.content) for m in stored] == [("user", "anyone?")]


@pytest.mark.parametrize("while_", ["waiting for the model", "blocked sending to the client"])
async def test_client_disconnect_stores_the_partial_reply_marked(
    db_url: str, store: Store, fake: FakeLLM, while_: str
) -> None:
    """Drive the ASGI app by hand: the client goes away after the first delta, while the
    server waits for the model, or while it is stuck writing the next event to a slow client
    (the stream generator is then parked at a ``yield`` and must be closed explicitly)."""
    blocked = while_ == "blocked sending to the client"
    fake.options.reply = "alpha beta gamma delta epsilon zeta eta theta"
    fake.options.chunks = 8
    fake.options.delay = 0.01 if blocked else 0.15
    app = make_app(db_url, store, fake)
    body = json.dumps({"content": "stream slowly"}).encode()
    first_delta = asyncio.Event()
    received: list[bytes] = []
    status: list[int] = []
    requested = False

    async def receive() -> dict[str, Any]:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": body, "more_body": False}
        await first_delta.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])
        elif message.get("body"):
            if blocked and first_delta.is_set():
                await asyncio.Event().wait()  # a client that stopped reading
            received.append(message["body"])
            if b"event: delta" in message["body"]:
                first_delta.set()

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "POST",
        "path": STREAM,
        "raw_path": STREAM.encode(),
        "query_string": b"",
        "root_path": "",
        "scheme": "http",
        "headers": [(b"content-type", b"application/json"), (b"host", b"test")],
        "client": ("127.0.0.1", 1),
        "server": ("test", 80),
    }
    await asyncio.wait_for(app(scope, receive, send), 10)
    await app.state.llm.aclose()
    assert status == [200]
    events = parse_sse(b"".join(received).decode())
    assert "done" not in [n for n, _ in events]
    seen = "".join(d["text"] for n, d in events if n == "delta")
    assert seen and len(fake.requests) == 1
    sid = events[0][1]["session_id"]
    stored = await store.get_messages(sid)
    assert [m.role for m in stored] == ["user", "assistant"]
    reply = stored[1]
    assert reply.content.startswith(seen) and reply.content != fake.options.reply
    assert reply.metadata == {"partial": True, "error": DISCONNECTED}


async def test_same_content_resent_within_5_seconds_is_409(
    client: httpx.AsyncClient, store: Store
) -> None:
    events = await chat(client, content="Did it send?")
    sid = events[0][1]["session_id"]
    r = await client.post(STREAM, json={"session_id": sid, "content": "Did it send?"})
    assert r.status_code == 409, r.text
    assert r.json()["error"] == "conflict" and "not sent again" in r.json()["detail"]
    assert (await store.get_session(sid)).message_count == 2  # nothing stored

    # Different content is fine at once; the same content is fine once 5 s have passed.
    await chat(client, session_id=sid, content="Something else")
    six_seconds_ago = rawdb.when(store, datetime.now(UTC) - timedelta(seconds=6))
    await rawdb.execute(
        store, "UPDATE messages SET created_at = ? WHERE session_id = ?", six_seconds_ago, sid
    )
    await chat(client, session_id=sid, content="Something else")
    assert (await store.get_session(sid)).message_count == 6


async def test_retry_answers_the_failed_turn_without_storing_it_twice(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    fake.options.fail_status = 503
    events = await chat(client, content="are you there?")
    assert [n for n, _ in events] == ["session", "error"]
    sid = events[0][1]["session_id"]
    user_seq = events[0][1]["user_message"]["seq"]

    fake.options.fail_status = None
    events = await chat(client, session_id=sid, content="are you there?", retry=True)
    assert [n for n, _ in events][0] == "session" and events[-1][0] == "done"
    assert events[0][1]["created"] is False
    assert events[0][1]["user_message"]["seq"] == user_seq
    stored = await store.get_messages(sid)
    assert [(m.role, m.content) for m in stored] == [
        ("user", "are you there?"),
        ("assistant", "Reply to: are you there?"),
    ]
    # The model saw the turn once, as its last message.
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "are you there?"}]

    # Answered now: nothing to retry (409), and nothing changes.
    r = await client.post(
        STREAM, json={"session_id": sid, "content": "are you there?", "retry": True}
    )
    assert r.status_code == 409 and "nothing to retry" in r.json()["detail"], r.text
    assert (await store.get_session(sid)).message_count == 2


async def test_retry_replaces_a_partial_reply_once_the_new_one_is_stored(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    fake.options.reply = "one two three four five six seven eight"
    fake.options.abort_after = 2
    events = await chat(client, content="count")
    sid = events[0][1]["session_id"]
    partial = events[-1][1]["message"]
    assert partial["metadata"]["partial"] is True

    # A retry that brings nothing keeps the old partial text.
    fake.options.fail_status = 502
    events = await chat(client, session_id=sid, content="count", retry=True)
    assert [n for n, _ in events] == ["session", "error"]
    assert [m.seq for m in await store.get_messages(sid)] == [1, partial["seq"]]

    # A retry that answers replaces it; the model was not sent the partial reply.
    fake.options.fail_status = None
    fake.options.abort_after = None
    events = await chat(client, session_id=sid, content="count", retry=True)
    assert events[-1][0] == "done"
    assert fake.requests[-1]["messages"] == [{"role": "user", "content": "count"}]
    stored = await store.get_messages(sid)
    assert [(m.role, m.content, m.metadata) for m in stored] == [
        ("user", "count", {}),
        ("assistant", "one two three four five six seven eight", {}),
    ]
    session = await store.get_session(sid)
    assert session.message_count == 2
    assert session.token_count == sum(m.token_count for m in stored)


async def test_retry_refusals_change_nothing(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    fake.options.fail_status = 500
    events = await chat(client, content="first try")
    sid = events[0][1]["session_id"]
    fake.options.fail_status = None
    r = await client.post(STREAM, json={"content": "first try", "retry": True})
    assert r.status_code == 422 and r.json()["field"] == "session_id", r.text
    r = await client.post(STREAM, json={"session_id": sid, "content": "other", "retry": True})
    assert r.status_code == 409 and "is not this one" in r.json()["detail"], r.text
    r = await client.post(STREAM, json={"session_id": "nope", "content": "x", "retry": True})
    assert r.status_code == 404, r.text
    empty = await store.create_session()
    r = await client.post(
        STREAM, json={"session_id": empty.session_id, "content": "x", "retry": True}
    )
    assert r.status_code == 409, r.text
    await store.end_session(sid)
    r = await client.post(STREAM, json={"session_id": sid, "content": "first try", "retry": True})
    assert r.status_code == 409 and "ended" in r.json()["detail"], r.text
    assert [(m.role, m.content) for m in await store.get_messages(sid)] == [("user", "first try")]
    assert len(fake.requests) == 1  # only the first, failed, call reached the model


# ── the turn options the CLI uses (ask, chat): system prompt, repeats, take-back ──────


async def run_turn(
    store: Store, llm: OpenAIChatClient, request: ChatRequest, **options: Any
) -> Any:
    turn = await prepare_turn(store, llm, request, default_max_tokens=2000, **options)
    names = [event.name async for event in turn.events()]
    return turn, names


async def test_a_failed_call_can_take_its_messages_back(store: Store, fake: FakeLLM) -> None:
    """``withdraw_unanswered``: a model failure before any text removes the turn's messages,
    only while they are the newest (a message appended meanwhile is never removed)."""
    fake.options.fail_status = 503
    async with OpenAIChatClient(fake.base_url, "fake-model") as llm:
        # A session the turn created goes with them.
        turn, names = await run_turn(
            store, llm, ChatRequest("lost", system="Be terse."), withdraw_unanswered=True
        )
        assert names == ["session", "error"] and turn.withdrawn
        assert not await store.session_exists(turn.session.session_id)
        # An existing session keeps what it had.
        sid = (await store.create_session()).session_id
        await store.add_message(sid, "user", "earlier")
        turn, _ = await run_turn(
            store, llm, ChatRequest("lost", session_id=sid), withdraw_unanswered=True
        )
        assert turn.withdrawn
        assert [m.content for m in await store.get_messages(sid)] == ["earlier"]
        # Someone appended after the turn's message: it stays, and so does theirs.
        turn = await prepare_turn(
            store,
            llm,
            ChatRequest("mine", session_id=sid),
            default_max_tokens=2000,
            withdraw_unanswered=True,
        )
        await store.add_message(sid, "assistant", "someone else's")
        assert [e.name async for e in turn.events()] == ["session", "error"]
        assert not turn.withdrawn
        contents = [m.content for m in await store.get_messages(sid)]
        assert contents == ["earlier", "mine", "someone else's"]
        # A reply cut off midway is kept (the user saw it), so nothing is taken back.
        fake.options.fail_status, fake.options.abort_after = None, 1
        turn, names = await run_turn(
            store, llm, ChatRequest("cut", session_id=sid), withdraw_unanswered=True
        )
        assert names[-1] == "error" and not turn.withdrawn
        assert turn.reply is not None and turn.reply.metadata["partial"] is True
    assert (await store.get_session(sid)).message_count == len(await store.get_messages(sid)) == 5


async def test_system_prompt_is_stored_before_the_message_once(store: Store, fake: FakeLLM) -> None:
    terse = {"role": "system", "content": "Be terse."}
    async with OpenAIChatClient(fake.base_url, "fake-model") as llm:
        first, _ = await run_turn(store, llm, ChatRequest("hi", system="Be terse."))
        sid = first.session.session_id
        assert first.system_message is not None and first.system_message.seq == 1
        assert fake.requests[-1]["messages"] == [terse, {"role": "user", "content": "hi"}]
        # The model already sees it: not stored again.
        again, _ = await run_turn(
            store, llm, ChatRequest("more", session_id=sid, system="Be terse.")
        )
        assert again.system_message is None
        # Another one is stored where it was given, as llm sends a changed system prompt.
        other, _ = await run_turn(
            store, llm, ChatRequest("kind now", session_id=sid, system="Be kind.")
        )
        assert other.system_message is not None
        roles = [(m.role, m.content) for m in await store.get_messages(sid)]
        expected = ["system", "user", "assistant", "user", "assistant", "system", "user"]
        assert [r for r, _ in roles] == [*expected, "assistant"]
        assert roles[5] == ("system", "Be kind.")
        # A bad system prompt is refused, naming it, and nothing is stored.
        for bad, error in [("  ", InvalidInput), ("x" * 100_001, TooLarge)]:
            with pytest.raises(error, match="system prompt") as caught:
                await prepare_turn(
                    store,
                    llm,
                    ChatRequest("hi", session_id=sid, system=bad),
                    default_max_tokens=2000,
                )
            assert caught.value.details["field"] == "system"
        assert (await store.get_session(sid)).message_count == 8
        # System prompt and message that do not fit the budget together: refused whole.
        with pytest.raises(InvalidInput, match="system prompt need"):
            await prepare_turn(
                store,
                llm,
                ChatRequest("hi", session_id=sid, system="word " * 200),
                default_max_tokens=200,
            )
        assert (await store.get_session(sid)).message_count == 8


async def test_repeats_are_sent_when_the_guard_is_off(store: Store, fake: FakeLLM) -> None:
    """The page's double-click guard is a choice of the caller: the CLI sends "yes" twice."""
    async with OpenAIChatClient(fake.base_url, "fake-model") as llm:
        first, _ = await run_turn(store, llm, ChatRequest("yes"))
        sid = first.session.session_id
        with pytest.raises(Conflict, match="not sent again"):
            await prepare_turn(
                store, llm, ChatRequest("yes", session_id=sid), default_max_tokens=2000
            )
        await run_turn(store, llm, ChatRequest("yes", session_id=sid), refuse_duplicates=False)
    stored = await store.get_messages(sid)
    assert [m.content for m in stored if m.role == "user"] == ["yes", "yes"]


def test_auto_title_rule() -> None:
    assert auto_title("  Hello\n\n  world\t ") == "Hello world"
    assert auto_title(" \n ") is None
    exactly_80 = "x" * 80
    assert auto_title(exactly_80) == exactly_80
    long = "word " * 40
    title = auto_title(long)
    assert title == ("word " * 40)[:77] + "..." and title is not None and len(title) == 80


async def test_auto_title_on_sessions(client: httpx.AsyncClient, store: Store) -> None:
    long = "Please   summarise\nthis very long request " + "about many things " * 10
    events = await chat(client, content=long)
    expected = " ".join(long.split())[:77] + "..."
    assert events[0][1]["title"] == expected
    assert (await store.get_session(events[0][1]["session_id"])).title == expected

    # An untitled session made elsewhere gets its title from its first user message.
    untitled = await store.create_session()
    await store.add_message(untitled.session_id, "user", "first   words")
    await chat(client, session_id=untitled.session_id, content="second words")
    assert (await store.get_session(untitled.session_id)).title == "first words"

    titled = await store.create_session(title="Keep me")
    events = await chat(client, session_id=titled.session_id, content="hi")
    assert events[0][1]["title"] == "Keep me"
    assert (await store.get_session(titled.session_id)).title == "Keep me"


async def test_echo_model_is_labelled(db_url: str, store: Store) -> None:
    app = make_app(db_url, store, None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        r = await c.get("/api/engine/chat/model")
        assert r.json() == {"model": "echo", "echo": True, "label": ECHO_LABEL}
        events = await chat(c, content="ping")
    assert events[0][1]["echo"] is True and events[0][1]["label"] == ECHO_LABEL
    done = events[-1][1]
    assert done["echo"] is True and done["label"] == "offline echo model — no LLM configured"
    assert done["message"]["model"] == "echo" and done["message"]["metadata"] == {"echo": True}
    assert done["message"]["content"].startswith("[echo model — no LLM configured] You said: ping")


async def test_model_endpoint_names_the_configured_model(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/engine/chat/model")
    assert r.json() == {"model": "fake-model", "echo": False, "label": "fake-model"}


async def test_refused_requests_change_nothing(
    client: httpx.AsyncClient, store: Store, fake: FakeLLM
) -> None:
    r = await client.post(STREAM, json={"session_id": "nope", "content": "hi"})
    assert r.status_code == 404, r.text
    r = await client.post(STREAM, json={"content": "   "})
    assert r.status_code == 422, r.text
    r = await client.post(STREAM, json={"content": "x" * 100_001})
    assert r.status_code == 413 and r.json()["error"] == "too_large"
    r = await client.post(STREAM, json={"content": "word " * 300, "max_context_tokens": 100})
    assert r.status_code == 422 and "context budget" in r.json()["detail"]
    r = await client.post(STREAM, json={"content": "hi", "agent_id": "bad agent!"})
    assert r.status_code == 422, r.text
    assert (await store.list_sessions()).total == 0 and fake.requests == []

    ended = await store.create_session()
    await store.end_session(ended.session_id)
    r = await client.post(STREAM, json={"session_id": ended.session_id, "content": "hi"})
    assert r.status_code == 409 and "ended" in r.json()["detail"]
    assert (await store.get_session(ended.session_id)).message_count == 0


async def test_scoped_key_chats_only_in_its_agents_sessions(
    client: httpx.AsyncClient, store: Store
) -> None:
    other = await store.create_session(agent_id="main")
    mine = await store.create_session(agent_id="alpha")
    app = client.app  # type: ignore[attr-defined]

    async def scoped() -> Principal:
        return Principal(name="alpha-key", agent_ids=frozenset({"alpha"}))

    app.dependency_overrides[get_principal] = scoped
    r = await client.post(STREAM, json={"session_id": other.session_id, "content": "hi"})
    assert r.status_code == 404, r.text
    r = await client.post(STREAM, json={"content": "hi", "agent_id": "main"})
    assert r.status_code == 403, r.text
    # Left out, agent_id is the key's one agent (test_auth.py has the whole rule).
    events = await chat(client, content="mine by default")
    assert events[0][1]["agent_id"] == "alpha" and events[-1][0] == "done"
    events = await chat(client, session_id=mine.session_id, content="hi")
    assert events[-1][0] == "done"
    events = await chat(client, agent_id="alpha", content="new one")
    assert events[0][1]["agent_id"] == "alpha" and events[0][1]["created"] is True
    assert (await store.get_session(other.session_id)).message_count == 0
