"""Forks, rewinds and branches over the REST API, on SQLite file, SQLite memory and
PostgreSQL (httpx's ASGI transport, the real app and store)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from sessionkeeper.api import create_app
from sessionkeeper.config import Settings
from sessionkeeper.store.core import Store

API = "/api/engine/sessions"
MESSAGE_FIELDS = ("seq", "role", "content", "agent_id", "model", "token_count", "metadata")


def client_for(store: Store, db_url: str, token: str | None = None) -> httpx.AsyncClient:
    app = create_app(Settings(database_url=db_url, maintenance=False), store=store)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


@pytest.fixture
async def api(store: Store, db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(store, db_url) as c:
        yield c


async def messages(api: httpx.AsyncClient, session_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    after = 0
    while True:
        r = await api.get(f"{API}/{session_id}/messages", params={"after_seq": after, "limit": 500})
        assert r.status_code == 200, r.text
        page = r.json()["messages"]
        if not page:
            return found
        found += page
        after = page[-1]["seq"]


def same(m: dict[str, Any]) -> tuple[Any, ...]:
    """A message's fields, but the session it is in."""
    return tuple(m[k] for k in (*MESSAGE_FIELDS, "created_at"))


async def hundred(api: httpx.AsyncClient) -> str:
    r = await api.post(API, json={"agent_id": "lab", "title": "hundred", "metadata": {"k": 1}})
    sid = str(r.json()["session_id"])
    batch = [
        {
            "role": ("user", "assistant", "tool")[i % 3],
            "content": f"message {i + 1}",
            "model": "gpt-4o" if i % 3 == 1 else None,
            "metadata": {"i": i} if i % 2 else None,
        }
        for i in range(100)
    ]
    r = await api.post(f"{API}/{sid}/messages", json={"messages": batch})
    assert r.status_code == 201, r.text
    return sid


async def test_fork_at_40_then_rewind_to_10(api: httpx.AsyncClient) -> None:
    """The issue's check: a 100-message session forked at 40 is exactly those 40 with its
    lineage; rewound to 10 it holds 10, its branch the other 90, nothing deleted."""
    sid = await hundred(api)
    original = await messages(api, sid)
    assert len(original) == 100

    r = await api.post(f"{API}/{sid}/fork", json={"at_seq": 40})
    assert r.status_code == 201, r.text
    fork = r.json()
    assert (fork["parent_session_id"], fork["fork_seq"]) == (sid, 40)
    assert (fork["message_count"], fork["agent_id"], fork["title"]) == (40, "lab", "hundred")
    forked = await messages(api, fork["session_id"])
    assert [same(m) for m in forked] == [same(m) for m in original[:40]]
    assert (await api.get(f"{API}/{fork['session_id']}")).json() == fork
    # The source is unchanged, and lists the fork.
    assert [same(m) for m in await messages(api, sid)] == [same(m) for m in original]
    source = (await api.get(f"{API}/{sid}")).json()
    assert (source["parent_session_id"], source["fork_seq"]) == (None, None)

    r = await api.post(f"{API}/{sid}/rewind", json={"to_seq": 10})
    assert r.status_code == 200, r.text
    done = r.json()
    assert done["to_seq"] == 10 and done["dropped_messages"] == 90
    assert done["session"]["message_count"] == 10
    branch = done["branch"]
    assert (branch["parent_session_id"], branch["fork_seq"]) == (sid, 10)
    kept = await messages(api, sid)
    in_branch = await messages(api, branch["session_id"])
    assert [same(m) for m in kept] == [same(m) for m in original[:10]]
    # The branch holds the other 90 after the shared ten (the whole earlier conversation).
    tail = [m for m in in_branch if m["seq"] > branch["fork_seq"]]
    assert [same(m) for m in tail] == [same(m) for m in original[10:]]
    assert [same(m) for m in in_branch[:10]] == [same(m) for m in kept]
    assert [same(m) for m in kept + tail] == [same(m) for m in original]  # union = original

    r = await api.get(f"{API}/{sid}/branches")
    assert r.status_code == 200
    listed = r.json()
    assert listed["session_id"] == sid
    assert [b["session_id"] for b in listed["branches"]] == [
        fork["session_id"],
        branch["session_id"],
    ]
    assert listed["branches"][1]["fork_seq"] == 10
    # The session continues after 10.
    r = await api.post(f"{API}/{sid}/messages", json={"role": "user", "content": "edited"})
    assert r.json()["seq"] == 11


async def test_fork_bodies_and_errors(api: httpx.AsyncClient) -> None:
    sid = await hundred(api)
    r = await api.post(
        f"{API}/{sid}/fork", json={"session_id": "my-fork", "title": "t2", "metadata": {"b": 2}}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["session_id"], body["title"], body["metadata"], body["fork_seq"]) == (
        "my-fork",
        "t2",
        {"b": 2},
        100,
    )
    r = await api.post(f"{API}/{sid}/fork", json={"session_id": "my-fork"})
    assert r.status_code == 409 and "already exists" in r.json()["detail"]
    r = await api.post(f"{API}/{sid}/fork", json={"at_seq": 101})
    assert r.status_code == 422 and "at_seq 101 is past" in r.json()["detail"]
    for bad in ({"at_seq": -1}, {"at_seq": "3"}, {"other": 1}, {"session_id": "a b"}):
        r = await api.post(f"{API}/{sid}/fork", json=bad)
        assert r.status_code == 422, (bad, r.text)
    for bad in ({}, {"to_seq": -1}, {"to_seq": 101}, {"to_seq": True}):
        r = await api.post(f"{API}/{sid}/rewind", json=bad)
        assert r.status_code == 422, (bad, r.text)
    assert (await api.post(f"{API}/nope/fork", json={})).status_code == 404
    assert (await api.post(f"{API}/nope/rewind", json={"to_seq": 0})).status_code == 404
    assert (await api.get(f"{API}/nope/branches")).status_code == 404
    # Nothing was written by the refusals: one fork only.
    assert len((await api.get(f"{API}/{sid}/branches")).json()["branches"]) == 1
    assert (await api.get(API)).json()["total"] == 2
    r = await api.post(f"{API}/{sid}/rewind", json={"to_seq": 100})
    assert r.status_code == 200 and r.json()["branch"] is None


async def test_scoped_keys_reach_only_their_sessions(store: Store, db_url: str) -> None:
    _, mine = await store.keys.create(agent_ids=["a"])
    ours = await store.create_session(agent_id="a", session_id="ours")
    theirs = await store.create_session(agent_id="b", session_id="theirs")
    for s in (ours, theirs):
        await store.add_message(s.session_id, "user", "hi")
    async with client_for(store, db_url, mine) as api:
        r = await api.post(f"{API}/ours/fork", json={})
        assert r.status_code == 201 and r.json()["agent_id"] == "a"
        assert (await api.post(f"{API}/theirs/fork", json={})).status_code == 404
        assert (await api.post(f"{API}/theirs/rewind", json={"to_seq": 0})).status_code == 404
        assert (await api.get(f"{API}/theirs/branches")).status_code == 404
        r = await api.post(f"{API}/ours/rewind", json={"to_seq": 0})
        assert r.status_code == 200 and r.json()["branch"]["agent_id"] == "a"
        assert len((await api.get(f"{API}/ours/branches")).json()["branches"]) == 2
    assert await store.list_branches("theirs") == []
    assert (await store.get_session("theirs")).message_count == 1
