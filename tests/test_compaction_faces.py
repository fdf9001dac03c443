"""Compaction on the REST API and in the chat service (automatic, per agent), on every
database; the summary is written by the fake model server (tests/fakellm.py)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from fakellm import FakeLLM, run_fake_llm
from sessionkeeper.api import create_app
from sessionkeeper.chat.compacting import INSTRUCTIONS
from sessionkeeper.config import Settings
from sessionkeeper.models import NewMessage
from sessionkeeper.store.core import Store

SESSIONS = "/api/engine/sessions"


def summary_or_reply(messages: list[dict[str, Any]]) -> str:
    if messages[0]["content"] == INSTRUCTIONS:
        return f"SUMMARY of {messages[1]['content'].count(chr(10) * 2) + 1} messages"
    return "ok " + messages[-1]["content"]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake_llm(reply=summary_or_reply) as server:
        yield server


async def client_for(
    db_url: str, store: Store, fake: FakeLLM | None, **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(
            database_url=db_url,
            maintenance=False,
            llm_base_url=fake.base_url if fake else None,
            llm_model="fake-model" if fake else None,
            **settings,
        ),
        store=store,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as c:
        yield c
    await app.state.llm.aclose()


@pytest.fixture
async def client(db_url: str, store: Store, fake: FakeLLM) -> AsyncIterator[httpx.AsyncClient]:
    async for c in client_for(db_url, store, fake):
        yield c


def session_of(sse: str) -> str:
    found = re.search(r'"session_id":\s*"([^"]+)"', sse)
    assert found is not None, sse
    return found.group(1)


async def filled(store: Store, n: int) -> str:
    s = await store.create_session()
    await store.add_messages(
        s.session_id, [NewMessage("user" if i % 2 else "assistant", f"turn {i}") for i in range(n)]
    )
    return s.session_id


async def test_compact_over_rest(client: httpx.AsyncClient, store: Store) -> None:
    sid = await filled(store, 40)
    r = await client.post(f"{SESSIONS}/{sid}/compact", json={"keep_last_tokens": 30})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["compacted"] is True
    c = body["compaction"]
    assert c["summary"].startswith("SUMMARY of") and c["model"] == "fake-model"
    assert c["from_seq"] == 1 and c["through_seq"] < 40
    window = (await client.get(f"{SESSIONS}/{sid}/context", params={"max_tokens": 1000})).json()
    assert window["compacted_through"] == c["through_seq"]
    assert window["messages"][0]["content"] == c["summary"]
    assert window["messages"][0]["metadata"]["compaction"]["through_seq"] == c["through_seq"]
    assert window["messages"][1]["seq"] == c["through_seq"] + 1
    messages = (await client.get(f"{SESSIONS}/{sid}/messages", params={"limit": 500})).json()
    assert len(messages["messages"]) == 40  # the originals stay
    # Nothing older left to summarise: compacted false, the one in force is returned.
    again = await client.post(f"{SESSIONS}/{sid}/compact", json={"keep_last_tokens": 10**6})
    assert again.status_code == 200 and again.json() == {"compacted": False, "compaction": c}


async def test_compact_refusals_change_nothing(
    client: httpx.AsyncClient, store: Store, db_url: str
) -> None:
    sid = await filled(store, 10)
    r = await client.post(f"{SESSIONS}/nope/compact", json={})
    assert r.status_code == 404
    for bad in ({"keep_last_tokens": -1}, {"keep_last_tokens": "x"}, {"other": 1}):
        r = await client.post(f"{SESSIONS}/{sid}/compact", json=bad)
        assert r.status_code == 422, (bad, r.text)
    async for echo in client_for(db_url, store, None):
        r = await echo.post(f"{SESSIONS}/{sid}/compact", json={"keep_last_tokens": 0})
        assert r.status_code == 409 and "no model" in r.json()["detail"]
        assert (await echo.post(f"{SESSIONS}/nope/compact")).status_code == 404
    assert await store.get_compaction(sid) is None


async def test_chat_compacts_past_the_agent_threshold(
    db_url: str, store: Store, fake: FakeLLM
) -> None:
    async for c in client_for(db_url, store, fake, compact_after_tokens={"support": 40}):
        sid = None
        for i in range(12):
            body: dict[str, Any] = {"content": f"question number {i} about the weather"}
            if sid is None:
                body["agent_id"] = "support"
            else:
                body["session_id"] = sid
            r = await c.post("/api/engine/chat/stream", json=body)
            assert r.status_code == 200
            sid = sid or session_of(r.text)
        assert sid is not None
        done = await store.get_compaction(sid)
        assert done is not None and done.summary.startswith("SUMMARY")
        summaries = [q for q in fake.requests if q["messages"][0]["content"] == INSTRUCTIONS]
        assert summaries
        # The last turn's prompt began with the summary in force then, not the first turn.
        last = [q for q in fake.requests if q["messages"][0]["content"] != INSTRUCTIONS][-1]
        assert last["messages"][0]["role"] == "system"
        assert last["messages"][0]["content"].startswith("SUMMARY")
        session = await store.get_session(sid)
        assert session.message_count == 24  # every turn kept
        live = session.token_count - done.compacted_tokens
        assert live <= 40 + 40  # compacted as it passed the threshold

        # Another agent has no threshold: never compacted.
        r = await c.post("/api/engine/chat/stream", json={"content": "x " * 50})
        other = session_of(r.text)
        for _ in range(3):
            await c.post(
                "/api/engine/chat/stream", json={"session_id": other, "content": "y " * 30}
            )
        assert await store.get_compaction(other) is None


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="positive number of tokens"):
        Settings(compact_after_tokens={"*": 0})
