"""Users and metadata filters over the REST API, and keys scoped to users of an agent, on SQLite
(file and memory) and PostgreSQL. Apps get an injected Store and are driven through httpx's
ASGI transport, as in tests/test_auth.py."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from sessionkeeper.api import create_app
from sessionkeeper.config import Settings
from sessionkeeper.store.core import Store

API = "/api/engine/sessions"
CHAT = "/api/engine/chat/stream"


def make_app(db_url: str, store: Store) -> FastAPI:
    return create_app(Settings(database_url=db_url, maintenance=False), store=store)


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


@pytest.fixture
async def api(store: Store, db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """The open API (no keys: loopback)."""
    async with client(make_app(db_url, store)) as c:
        yield c


def meta(**pairs: Any) -> dict[str, str]:
    return {"metadata": json.dumps(pairs)}


def ids(r: httpx.Response) -> list[str]:
    assert r.status_code == 200, r.text
    body = r.json()
    items = body["sessions"] if "sessions" in body else body["hits"]
    return sorted(item["session_id"] for item in items)


async def test_user_id_on_create_update_listing_search_and_stats(
    api: httpx.AsyncClient, store: Store
) -> None:
    for sid, user in (("s1", "u1"), ("s2", "u2"), ("s3", None)):
        body: dict[str, Any] = {"session_id": sid}
        if user:
            body["user_id"] = user
        r = await api.post(API, json=body)
        assert r.status_code == 201 and r.json()["user_id"] == user, r.text
        await store.add_message(sid, "user", "the wombat")
    assert (await api.get(f"{API}/s1")).json()["user_id"] == "u1"
    assert ids(await api.get(API, params={"user_id": "u1"})) == ["s1"]
    assert ids(await api.get(f"{API}/search", params={"q": "wombat", "user_id": "u2"})) == ["s2"]
    stats = (await api.get(f"{API}/stats", params={"user_id": "u1"})).json()
    assert (stats["total_sessions"], stats["total_messages"]) == (1, 1)

    r = await api.patch(f"{API}/s3", json={"user_id": "u1"})
    assert r.status_code == 200 and r.json()["user_id"] == "u1"
    assert ids(await api.get(API, params={"user_id": "u1"})) == ["s1", "s3"]
    r = await api.patch(f"{API}/s3", json={"title": "kept"})  # left out: unchanged
    assert r.json()["user_id"] == "u1"
    r = await api.patch(f"{API}/s3", json={"user_id": None})  # null: no user
    assert r.status_code == 200 and r.json()["user_id"] is None


BAD_USER_REQUESTS = [
    ("post", API, {"session_id": "new", "user_id": "a b"}),
    ("post", API, {"session_id": "new", "user_id": 7}),
    ("patch", f"{API}/s", {"user_id": "x" * 65}),
    ("get", f"{API}?user_id=a%20b", None),
    ("get", f"{API}/search?q=x&user_id=a%20b", None),
    ("get", f"{API}/stats?user_id=a%20b", None),
]


async def test_bad_user_id_is_422_and_changes_nothing(api: httpx.AsyncClient, store: Store) -> None:
    await store.create_session(session_id="s", user_id="u")
    for method, path, body in BAD_USER_REQUESTS:
        r = await api.request(method, path, json=body)
        assert r.status_code == 422, (path, r.text)
        assert r.json()["error"] == "invalid_input" and r.json()["field"] == "user_id", r.text
    assert not await store.session_exists("new")
    assert (await store.get_session("s")).user_id == "u"


async def test_metadata_filter_on_listing_and_search(api: httpx.AsyncClient, store: Store) -> None:
    rows = {
        "red": {"team": "red", "n": 1, "pinned": True},
        "red2": {"team": "red", "n": 1.5},
        "blue": {"team": "blue", "n": "1", "note": None},
    }
    for sid, metadata in rows.items():
        await api.post(API, json={"session_id": sid, "metadata": metadata, "user_id": "u"})
        await store.add_message(sid, "user", "a platypus")
    assert ids(await api.get(API, params=meta(team="red"))) == ["red", "red2"]
    assert ids(await api.get(API, params=meta(n=1))) == ["red"]
    assert ids(await api.get(API, params=meta(n="1"))) == ["blue"]
    assert ids(await api.get(API, params=meta(pinned=True, team="red"))) == ["red"]
    assert ids(await api.get(API, params=meta(note=None))) == ["blue"]
    assert ids(await api.get(API, params={**meta(team="red"), "user_id": "v"})) == []
    assert (await api.get(API, params=meta(team="red"))).json()["total"] == 2
    search = {"q": "platypus", **meta(team="red")}
    assert ids(await api.get(f"{API}/search", params=search)) == ["red", "red2"]
    # Paging keeps the filter.
    first = (await api.get(API, params={**meta(team="red"), "limit": 1})).json()
    after = {**meta(team="red"), "limit": 1, "cursor": first["next_cursor"]}
    second = (await api.get(API, params=after)).json()
    assert len({first["sessions"][0]["session_id"], second["sessions"][0]["session_id"]}) == 2


BAD_FILTERS = [
    ("team=red", "must be a JSON object"),
    ("{", "must be a JSON object"),
    ("[1]", "non-empty object"),
    ("{}", "non-empty object"),
    ('{"team": {"name": "red"}}', "string, number, true, false or null"),
    ('{"team": ["red"]}', "string, number, true, false or null"),
    ('{"team": "red", "team": "blue"}', "twice"),
    ('{"te\\"am": 1}', "invalid metadata filter key"),
    ('{"": 1}', "invalid metadata filter key"),
    ('{"n": NaN}', "finite"),
    ('{"n": 1e400}', "finite"),
    ('{"n": 9223372036854775808}', "out of range"),
    ('{"n": "a\\u0000b"}', "NUL"),
    (json.dumps({f"k{i}": i for i in range(21)}), "limit is 20"),
]


async def test_a_bad_metadata_filter_is_422_naming_metadata(api: httpx.AsyncClient) -> None:
    for text, says in BAD_FILTERS:
        for path, params in ((API, {}), (f"{API}/search", {"q": "x"})):
            r = await api.get(path, params={**params, "metadata": text})
            assert r.status_code == 422, (text, r.text)
            body = r.json()
            assert body["error"] == "invalid_input", body
            assert body["field"].split(".")[0] == "metadata", body  # or metadata.<key>
            assert says in body["detail"], (text, body)


def test_the_metadata_parameter_is_documented_as_json() -> None:
    import jsonschema_rs

    app = create_app(Settings(database_url="sqlite://", maintenance=False))
    document = app.openapi()
    for path in (API, f"{API}/search"):
        found = [p for p in document["paths"][path]["get"]["parameters"] if p["name"] == "metadata"]
        assert len(found) == 1 and found[0]["in"] == "query", found
        schema = found[0]["content"]["application/json"]["schema"]
        valid = jsonschema_rs.validator_for(schema).is_valid
        assert valid({"team": "red", "n": 1, "x": 1.5, "ok": True, "none": None})
        for bad in ({}, {"t": {}}, {"t": []}, {'t"': 1}, {"t\x01": 1}, {"n": 2**63}, [1]):
            assert not valid(bad), bad
    listing = {p["name"] for p in document["paths"][API]["get"]["parameters"]}
    assert {"user_id", "metadata"} <= listing
    assert "user_id" in {p["name"] for p in document["paths"][f"{API}/stats"]["get"]["parameters"]}


# ── a key scoped to (agent a, user u1) ─────────────────────────────────────────


class Keys:
    def __init__(self, app: FastAPI, admin: str, u1: str, several: str) -> None:
        self.app, self.admin, self.u1, self.several = app, admin, u1, several


@pytest.fixture
async def keyed(store: Store, db_url: str) -> AsyncIterator[Keys]:
    keys = store.keys
    _, admin = await keys.create(admin=True)
    _, u1 = await keys.create(agent_ids=["a"], user_ids=["u1"], name="a-u1")
    _, several = await keys.create(agent_ids=["a"], user_ids=["u1", "u2"])
    # Sessions: (agent, user) -> id. Each has a message with the word "kiwi".
    for sid, agent, user in (
        ("mine", "a", "u1"),
        ("mine2", "a", "u1"),
        ("other-user", "a", "u2"),
        ("no-user", "a", None),
        ("other-agent", "b", "u1"),
    ):
        await store.create_session(session_id=sid, agent_id=agent, user_id=user, title=sid)
        await store.add_message(sid, "user", f"kiwi in {sid}")
    yield Keys(make_app(db_url, store), admin, u1, several)


NOT_MINE = ("other-user", "no-user", "other-agent")


async def test_a_key_of_one_user_sees_only_that_users_sessions_of_its_agent(
    keyed: Keys, store: Store
) -> None:
    async with client(keyed.app, keyed.u1) as bot:
        listed = (await bot.get(API)).json()
        assert sorted(s["session_id"] for s in listed["sessions"]) == ["mine", "mine2"]
        assert listed["total"] == 2
        assert ids(await bot.get(API, params={"user_id": "u2"})) == []
        assert ids(await bot.get(API, params={"search": "kiwi"})) == ["mine", "mine2"]
        assert ids(await bot.get(f"{API}/search", params={"q": "kiwi"})) == ["mine", "mine2"]
        for sid in NOT_MINE:
            probe = {"q": "kiwi", "session_id": sid}
            assert ids(await bot.get(f"{API}/search", params=probe)) == []
        stats = (await bot.get(f"{API}/stats")).json()
        assert (stats["total_sessions"], stats["total_messages"], stats["by_agent"]) == (
            2,
            2,
            {"a": 2},
        )
        assert (await bot.get(f"{API}/mine")).json()["user_id"] == "u1"
        r = await bot.get(f"{API}/mine/export")
        assert r.status_code == 200 and '"user_id":"u1"' in r.text
        assert (await bot.get(f"{API}/mine/messages")).status_code == 200
        assert (await bot.get(f"{API}/mine/context")).status_code == 200
        me = (await bot.get("/api/engine/whoami")).json()
        assert (me["user_ids"], me["default_user_id"], me["maintenance"]) == (["u1"], "u1", False)


async def _every_route(bot: httpx.AsyncClient, sid: str) -> dict[str, httpx.Response]:
    target = f"{API}/{sid}"
    one = {"role": "user", "content": "x"}
    return {
        "get": await bot.get(target),
        "patch": await bot.patch(target, json={"title": "hijacked"}),
        "patch user": await bot.patch(target, json={"user_id": "u1"}),
        "end": await bot.post(f"{target}/end"),
        "messages": await bot.get(f"{target}/messages"),
        "add": await bot.post(f"{target}/messages", json=one),
        "batch": await bot.post(f"{target}/messages", json={"messages": [one]}),
        "delete message": await bot.delete(f"{target}/messages/1"),
        "context": await bot.get(f"{target}/context"),
        "export": await bot.get(f"{target}/export"),
        "chat": await bot.post(CHAT, json={"content": "hi", "session_id": sid}),
        "delete": await bot.delete(target),
    }


async def test_everything_outside_the_user_scope_answers_as_if_absent(
    keyed: Keys, store: Store
) -> None:
    async with client(keyed.app, keyed.u1) as bot:
        unknown = await _every_route(bot, "no-such-session")
        for sid in NOT_MINE:
            for what, r in (await _every_route(bot, sid)).items():
                assert r.status_code == 404, (sid, what, r.text)
                expected = unknown[what].json()
                expected["detail"] = expected["detail"].replace("no-such-session", sid)
                assert r.json() == expected, (sid, what)
    for sid in NOT_MINE:  # nothing of theirs changed
        s = await store.get_session(sid)
        assert (s.title, s.status, s.message_count) == (sid, "active", 1)


async def test_a_user_scoped_key_creates_and_moves_sessions_only_among_its_users(
    keyed: Keys, store: Store
) -> None:
    async with client(keyed.app, keyed.u1) as bot:
        r = await bot.post(API, json={"session_id": "made"})  # left out: the key's one user
        assert r.status_code == 201 and r.json()["user_id"] == "u1", r.text
        assert (await bot.post(API, json={"session_id": "m2", "user_id": "u1"})).status_code == 201
        r = await bot.post(API, json={"session_id": "m3", "user_id": "u2"})
        assert (r.status_code, r.json()["error"]) == (403, "forbidden"), r.text
        r = await bot.post(API, json={"session_id": "m3", "agent_id": "b"})
        assert r.status_code == 403, r.text
        for user in ("u2", None):  # out of its own scope: refused, nothing changes
            r = await bot.patch(f"{API}/mine", json={"user_id": user, "title": "moved"})
            assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        mine = await store.get_session("mine")
        assert (mine.user_id, mine.title) == ("u1", "mine")
        r = await bot.post(CHAT, json={"content": "hello"})  # a chat's new session: u1's
        assert r.status_code == 200, r.text
        made = r.text.split('"session_id":"', 1)[1].split('"', 1)[0]
        assert (await store.get_session(made)).user_id == "u1"
        r = await bot.post(CHAT, json={"content": "hello", "user_id": "u2"})
        assert r.status_code == 403, r.text
        # Maintenance spans every user: refused, and nothing was purged or pruned.
        await store.create_session(session_id="ghost", agent_id="a", user_id="u2")
        for r in (
            await bot.delete(f"{API}/ghosts", params={"older_than_minutes": 0}),
            await bot.post(f"{API}/prune", params={"days": 1}),
            await bot.post(f"{API}/prune", params={"days": 1, "dry_run": True}),
        ):
            assert (r.status_code, r.json()["error"]) == (403, "forbidden"), r.text
        assert await store.session_exists("ghost")
    assert not await store.session_exists("m3")

    async with client(keyed.app, keyed.several) as two:
        before = (await store.list_sessions()).total
        for r in (await two.post(API, json={}), await two.post(CHAT, json={"content": "hi"})):
            assert r.status_code == 422 and r.json()["field"] == "user_id", r.text
            assert "several users ('u1', 'u2')" in r.json()["detail"]
        assert (await store.list_sessions()).total == before
        r = await two.post(API, json={"user_id": "u2"})
        assert r.status_code == 201 and r.json()["user_id"] == "u2"
        assert ids(await two.get(API, params={"user_id": "u2"})) == sorted(
            ["ghost", "other-user", r.json()["session_id"]]
        )
