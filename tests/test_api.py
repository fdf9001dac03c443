"""The REST API over real SQLite and PostgreSQL, through httpx's ASGI transport.

The Store is opened here and injected (``create_app(settings, store=store)``), so the app's
lifespan is not needed for route tests; the lifespan itself and a real uvicorn server are
tested at the end.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionkeeper.api import create_app
from sessionkeeper.api.deps import get_principal
from sessionkeeper.api.principal import Principal
from sessionkeeper.config import Settings
from sessionkeeper.models import Message, Session
from sessionkeeper.store.core import Store

API = "/api/engine/sessions"
SESSION_KEYS = set(Session.__dataclass_fields__)
MESSAGE_KEYS = set(Message.__dataclass_fields__)


def settings_for(url: str) -> Settings:
    return Settings(database_url=url, maintenance=False)


@pytest.fixture
async def client(store: Store, db_url: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings_for(db_url), store=store)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        c.app = app  # type: ignore[attr-defined]
        yield c


async def new_session(client: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    r = await client.post(API, json=body)
    assert r.status_code == 201, r.text
    return dict(r.json())


def user(content: str) -> dict[str, str]:
    return {"role": "user", "content": content}


def assert_error(r: httpx.Response, status: int, code: str, *in_detail: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] == code
    for text in in_detail:
        assert text in body["detail"], body
    return dict(body)


# ── sessions ────────────────────────────────────────────────────────────────


async def test_health_and_openapi(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    assert (await client.get("/docs")).status_code == 200
    paths = (await client.get("/openapi.json")).json()["paths"]
    for path in ("", "/ghosts", "/prune", "/stats", "/search", "/{session_id}/messages"):
        assert API + path in paths


async def test_create_get_and_defaults(client: httpx.AsyncClient) -> None:
    created = await new_session(client)
    assert set(created) == SESSION_KEYS
    defaults = (created["agent_id"], created["session_type"], created["status"])
    assert defaults == ("main", "chat", "active")
    got = (await client.get(f"{API}/{created['session_id']}")).json()
    assert got == created
    assert datetime.fromisoformat(got["created_at"]).tzinfo is not None

    fields = {"agent_id": "aria", "title": "T", "session_type": "cron", "metadata": {"k": [1]}}
    own = await new_session(client, session_id="agent:x:1", **fields)
    assert (own["session_id"], own["title"], own["metadata"]) == ("agent:x:1", "T", {"k": [1]})


async def test_create_errors(client: httpx.AsyncClient) -> None:
    await new_session(client, session_id="dup")
    assert_error(await client.post(API, json={"session_id": "dup"}), 409, "conflict", "dup")
    body = assert_error(await client.post(API, json={"session_id": "a b"}), 422, "invalid_input")
    assert body["field"] == "session_id"
    body = assert_error(await client.post(API, json={"title": "t" * 201}), 422, "invalid_input")
    assert body["field"] == "title"
    assert_error(await client.post(API, json={"colour": "red"}), 422, "invalid_input", "colour")
    assert (await client.get(API)).json()["total"] == 1


async def test_unknown_session_is_404_everywhere(client: httpx.AsyncClient) -> None:
    u = f"{API}/nope"
    for r in (
        await client.get(u),
        await client.patch(u, json={"title": "x"}),
        await client.delete(u),
        await client.post(f"{u}/end"),
        await client.get(f"{u}/messages"),
        await client.post(f"{u}/messages", json={"role": "user", "content": "hi"}),
        await client.delete(f"{u}/messages/1"),
        await client.get(f"{u}/context"),
    ):
        body = assert_error(r, 404, "not_found", "'nope'")
        assert set(body) == {"error", "detail"}
    assert_error(await client.get("/no/such/route"), 404, "not_found")


async def test_list_filters_paging_and_errors(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await new_session(client, session_id=f"s{i}", agent_id="a" if i < 3 else "b", title=f"t{i}")
    await client.post(f"{API}/s4/end")
    page = (await client.get(API, params={"limit": 2, "sort": "title", "order": "asc"})).json()
    assert set(page) == {"sessions", "total", "limit", "offset", "has_more", "next_cursor"}
    assert [s["session_id"] for s in page["sessions"]] == ["s0", "s1"]
    assert (page["total"], page["limit"], page["offset"], page["has_more"]) == (5, 2, 0, True)
    nxt = (
        await client.get(
            API, params={"limit": 2, "sort": "title", "order": "asc", "cursor": page["next_cursor"]}
        )
    ).json()
    assert [s["session_id"] for s in nxt["sessions"]] == ["s2", "s3"]
    # An empty cursor (the schema allows it) is the first page.
    params = {"limit": 2, "sort": "title", "order": "asc", "cursor": ""}
    empty = await client.get(API, params=params)
    assert empty.status_code == 200, empty.text
    assert [s["session_id"] for s in empty.json()["sessions"]] == ["s0", "s1"]
    off = (await client.get(API, params={"limit": 2, "offset": 4, "sort": "title"})).json()
    assert off["has_more"] is False and off["next_cursor"] is None
    assert (await client.get(API, params={"agent_id": "b"})).json()["total"] == 2
    assert (await client.get(API, params={"status": "ended"})).json()["total"] == 1
    assert (await client.get(API, params={"search": "t3"})).json()["total"] == 1
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert (await client.get(API, params={"created_after": future})).json()["total"] == 0
    assert (await client.get(API, params={"updated_before": future})).json()["total"] == 5
    assert (await client.get(API)).json()["limit"] == 20

    body = assert_error(await client.get(API, params={"sort": "bogus"}), 422, "invalid_input")
    assert body["field"] == "sort" and "sort" in body["detail"]
    assert_error(await client.get(API, params={"limit": 101}), 422, "invalid_input", "limit")
    naive = {"created_after": "2025-01-01T00:00:00"}
    assert_error(await client.get(API, params=naive), 422, "invalid_input", "timezone")
    assert_error(
        await client.get(API, params={"cursor": "garbage"}), 422, "invalid_input", "cursor"
    )


async def test_patch_changes_only_fields_sent(client: httpx.AsyncClient) -> None:
    s = await new_session(client, title="old", metadata={"a": 1})
    u = f"{API}/{s['session_id']}"
    r = await client.patch(u, json={"title": "new"})
    assert (r.json()["title"], r.json()["metadata"]) == ("new", {"a": 1})
    r = await client.patch(u, json={"metadata": {"b": 2}, "session_type": "cron"})
    assert (r.json()["title"], r.json()["metadata"]) == ("new", {"b": 2})
    assert r.json()["session_type"] == "cron"
    r = await client.patch(u, json={"title": None, "metadata": None})
    assert (r.json()["title"], r.json()["metadata"]) == (None, {})
    r = await client.patch(u, json={"status": "ended"})
    assert r.json()["status"] == "ended" and r.json()["ended_at"] is not None
    assert_error(await client.patch(u, json={"status": "paused"}), 422, "invalid_input", "status")
    assert_error(await client.patch(u, json={"title": "t" * 201}), 422, "invalid_input")
    assert (await client.get(u)).json()["status"] == "ended"


async def test_patch_only_if_the_metadata_is_still_what_was_read(
    client: httpx.AsyncClient,
) -> None:
    s = await new_session(client, metadata={"a": 1, "tags": ["x"]})
    u = f"{API}/{s['session_id']}"
    read = (await client.get(u)).json()["metadata"]
    r = await client.patch(u, json={"metadata": {**read, "b": 2}, "expected_metadata": read})
    assert r.status_code == 200 and r.json()["metadata"] == {"a": 1, "tags": ["x"], "b": 2}
    # A second client that read before the first wrote: 409, nothing changed.
    stale = {"metadata": {**read, "c": 3}, "expected_metadata": read, "title": "lost"}
    r = await client.patch(u, json=stale)
    assert_error(r, 409, "conflict", "changed since it was read")
    got = (await client.get(u)).json()
    assert (got["metadata"], got["title"]) == ({"a": 1, "tags": ["x"], "b": 2}, None)
    empty = await new_session(client)
    r = await client.patch(
        f"{API}/{empty['session_id']}", json={"metadata": {"n": 1}, "expected_metadata": None}
    )
    assert r.status_code == 200 and r.json()["metadata"] == {"n": 1}


async def test_end_and_delete(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    u = f"{API}/{s['session_id']}"
    first = (await client.post(f"{u}/end")).json()
    assert first["status"] == "ended"
    assert (await client.post(f"{u}/end")).json()["ended_at"] == first["ended_at"]
    r = await client.delete(u)
    assert (r.status_code, r.json()) == (200, {"deleted": s["session_id"], "status": "ok"})
    assert (await client.get(u)).status_code == 404


# ── messages ────────────────────────────────────────────────────────────────


async def test_add_and_read_messages(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    u = f"{API}/{s['session_id']}/messages"
    r = await client.post(u, json={"role": "system", "content": "be brief", "model": "m1"})
    assert r.status_code == 201 and set(r.json()) == MESSAGE_KEYS
    assert (r.json()["seq"], r.json()["model"]) == (1, "m1")
    batch = [{"role": "user", "content": f"hello {i}", "metadata": {"i": i}} for i in range(4)]
    r = await client.post(u, json={"messages": batch})
    assert r.status_code == 201
    assert [m["seq"] for m in r.json()["messages"]] == [2, 3, 4, 5]

    got = (await client.get(u)).json()
    assert got["session_id"] == s["session_id"]
    assert [m["seq"] for m in got["messages"]] == [1, 2, 3, 4, 5]
    seqs = (await client.get(u, params={"last": 2})).json()["messages"]
    assert [m["seq"] for m in seqs] == [4, 5]
    seqs = (await client.get(u, params={"after_seq": 3})).json()["messages"]
    assert [m["seq"] for m in seqs] == [4, 5]
    seqs = (await client.get(u, params={"limit": 2, "offset": 1})).json()["messages"]
    assert [m["seq"] for m in seqs] == [2, 3]
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert len((await client.get(u, params={"since": past})).json()["messages"]) == 5
    session = (await client.get(f"{API}/{s['session_id']}")).json()
    assert session["message_count"] == 5 and session["token_count"] > 0

    r = await client.delete(f"{u}/3")
    assert r.status_code == 200 and r.json()["content"] == "hello 1"
    assert_error(await client.delete(f"{u}/3"), 404, "not_found", "message 3")
    assert (await client.get(f"{API}/{s['session_id']}")).json()["message_count"] == 4


async def test_message_validation_errors(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    u = f"{API}/{s['session_id']}/messages"
    body = assert_error(
        await client.post(u, json={"role": "robot", "content": "x"}), 422, "invalid_input", "role"
    )
    assert body["field"] == "role"
    batch = [user("ok"), {"role": "x", "content": "y"}]
    body = assert_error(await client.post(u, json={"messages": batch}), 422, "invalid_input")
    assert body["field"] == "messages[1].role"
    assert_error(await client.post(u, json={"content": "x"}), 422, "invalid_input", "role")
    naive = {"since": "2025-01-01T00:00:00"}
    assert_error(await client.get(u, params=naive), 422, "invalid_input", "since", "timezone")
    assert_error(await client.get(u, params={"limit": 501}), 422, "invalid_input", "limit")
    got = (await client.get(f"{API}/{s['session_id']}")).json()
    assert got["message_count"] == 0


async def test_too_large_message_is_413_and_writes_nothing(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    u = f"{API}/{s['session_id']}/messages"
    r = await client.post(u, json={"role": "user", "content": "x" * 100_001})
    body = assert_error(r, 413, "too_large", "100,001", "Nothing was stored")
    assert (body["field"], body["limit"], body["length"]) == ("content", 100_000, 100_001)
    batch = [{"role": "user", "content": "fine"}, {"role": "user", "content": "x" * 100_001}]
    assert_error(await client.post(u, json={"messages": batch}), 413, "too_large")
    assert (await client.get(f"{API}/{s['session_id']}")).json()["message_count"] == 0
    assert (await client.get(u)).json()["messages"] == []
    exact = await client.post(u, json={"role": "user", "content": "x" * 100_000})
    assert exact.status_code == 201 and len(exact.json()["content"]) == 100_000


async def test_context_window(client: httpx.AsyncClient) -> None:
    s = await new_session(client)
    u = f"{API}/{s['session_id']}"
    batch = [{"role": "system", "content": "sys"}, *(user("word " * 50) for _ in range(5))]
    await client.post(f"{u}/messages", json={"messages": batch})
    w = (await client.get(f"{u}/context", params={"max_tokens": 120})).json()
    assert w["session_id"] == s["session_id"] and w["pinned"] == 1
    assert w["messages"][0]["role"] == "system" and w["total_tokens"] <= 120
    assert w["dropped_messages"] > 0
    full = (await client.get(f"{u}/context")).json()
    assert (full["max_tokens"], full["dropped_messages"]) == (8000, 0)
    no_room = {"max_tokens": 10, "reserve": 10}
    assert_error(await client.get(f"{u}/context", params=no_room), 422, "invalid_input", "reserve")


async def test_search_and_stats(client: httpx.AsyncClient) -> None:
    a = await new_session(client, agent_id="a", title="Pets")
    b = await new_session(client, agent_id="b")
    await new_session(client, agent_id="b")
    for s, text in ((a, "my zebra"), (b, "a zebra")):
        await client.post(f"{API}/{s['session_id']}/messages", json=user(text))
    r = (await client.get(f"{API}/search", params={"q": "zebra"})).json()
    assert r["query"] == "zebra" and len(r["hits"]) == 2 and "<mark>" in r["hits"][0]["snippet"]
    only_a = (await client.get(f"{API}/search", params={"q": "zebra", "agent_id": "a"})).json()
    assert [h["session_title"] for h in only_a["hits"]] == ["Pets"]
    one = {"q": "zebra", "session_id": b["session_id"]}
    assert len((await client.get(f"{API}/search", params=one)).json()["hits"]) == 1
    assert_error(await client.get(f"{API}/search", params={"q": "?!"}), 422, "invalid_input")
    assert_error(await client.get(f"{API}/search"), 422, "invalid_input", "q")

    stats = (await client.get(f"{API}/stats")).json()
    assert (stats["total_sessions"], stats["total_messages"], stats["active_agents"]) == (3, 2, 2)
    assert stats["by_agent"] == {"b": 2, "a": 1} and stats["ghost_sessions"] == 0
    assert (await client.get(f"{API}/stats", params={"ghost_minutes": 0})).json()[
        "ghost_sessions"
    ] == 1


# ── maintenance routes ──────────────────────────────────────────────────────


async def test_seed_ghost_verification(client: httpx.AsyncClient) -> None:
    """Seeds 002/004: a fresh 0-message session is purged with older_than_minutes=0."""
    ghost = await new_session(client, agent_id="test", title="ghost-test")
    kept = await new_session(client, agent_id="test", title="has messages")
    await client.post(f"{API}/{kept['session_id']}/messages", json=user("hi"))
    # The default (15 minutes) leaves a fresh ghost alone.
    r = await client.delete(f"{API}/ghosts")
    assert r.json() == {"deleted": 0, "status": "ok", "older_than_minutes": 15}
    r = await client.delete(f"{API}/ghosts", params={"older_than_minutes": 0})
    assert r.status_code == 200
    assert r.text == '{"deleted":1,"status":"ok","older_than_minutes":0}'
    assert (await client.get(f"{API}/{ghost['session_id']}")).status_code == 404
    assert (await client.get(f"{API}/{kept['session_id']}")).json()["message_count"] == 1
    again = await client.delete(f"{API}/ghosts", params={"older_than_minutes": 0})
    assert again.json()["deleted"] == 0
    negative = {"older_than_minutes": -1}
    r = await client.delete(f"{API}/ghosts", params=negative)
    assert_error(r, 422, "invalid_input", "older_than_minutes")


async def test_prune_dry_run_then_real(client: httpx.AsyncClient, store: Store) -> None:
    old = datetime.now(UTC) - timedelta(days=40)
    fresh = await store.create_session(session_id="fresh")
    stale = replace(fresh, session_id="stale", created_at=old, updated_at=old)
    msg = Message("stale", 1, "user", "old words", None, None, 2, {}, old)
    await store.import_session(stale, [msg])

    dry = await client.post(f"{API}/prune", params={"dry_run": True})
    assert dry.status_code == 200
    body = dry.json()
    assert (body["pruned_count"], body["message_count"], body["dry_run"]) == (1, 1, True)
    assert body["status"] == "ok"
    assert body["days"] == 30 and datetime.fromisoformat(body["cutoff"]).tzinfo is not None
    assert (await client.get(f"{API}/stale")).status_code == 200

    real = (await client.post(f"{API}/prune", params={"days": 30})).json()
    assert (real["pruned_count"], real["message_count"], real["dry_run"]) == (1, 1, False)
    assert (await client.get(f"{API}/stale")).status_code == 404
    assert (await client.get(f"{API}/fresh")).status_code == 200
    assert_error(await client.post(f"{API}/prune", params={"days": 0}), 422, "invalid_input")


@pytest.mark.parametrize("days", ["0.0001", "1.5", "0", "-3", "", "1e3"])
async def test_prune_days_are_whole_days_from_1(
    client: httpx.AsyncClient, store: Store, days: str
) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    session = await store.create_session(session_id="hour-old")
    await store.import_session(replace(session, created_at=old, updated_at=old), [])
    r = await client.post(f"{API}/prune", params={"days": days})
    body = assert_error(r, 422, "invalid_input", "query field 'days'")
    assert body["field"] == "days"
    assert (await client.get(f"{API}/hour-old")).status_code == 200


async def test_export_one_session_as_a_download(client: httpx.AsyncClient, store: Store) -> None:
    from sessionkeeper.transfer.export import export_sessions

    s = await new_session(client, session_id="chat:1", title="Export me")
    for text in ("first", "second — with ünïcode"):
        r = await client.post(f"{API}/chat:1/messages", json=user(text))
        assert r.status_code == 201, r.text
    r = await client.get(f"{API}/chat:1/export")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-ndjson"
    assert r.headers["content-disposition"] == 'attachment; filename="chat_1.jsonl"'
    # Byte for byte what `sessionkeeper export` writes, which `import` reads back.
    import io

    out = io.StringIO()
    await export_sessions(store, out, session_ids=[s["session_id"]])
    assert r.text == out.getvalue() and r.text.count("\n") == 3

    r = await client.get(f"{API}/chat:1/export", params={"format": "markdown"})
    assert r.status_code == 200 and r.headers["content-type"] == "text/markdown; charset=utf-8"
    assert r.text.startswith("# Export me") and "second — with ünïcode" in r.text
    assert r.headers["content-disposition"] == 'attachment; filename="chat_1.md"'

    assert_error(await client.get(f"{API}/nope/export"), 404, "not_found")
    r = await client.get(f"{API}/chat:1/export", params={"format": "csv"})
    assert assert_error(r, 422, "invalid_input")["field"] == "format"


# ── the principal hook ──────────────────────────────────────────────────────


async def test_scoped_principal_sees_only_its_agents(client: httpx.AsyncClient) -> None:
    """The principal hook alone (no keys): a principal scoped to agent "a" (404 for the rest)."""
    mine = await new_session(client, agent_id="a")
    theirs = await new_session(client, agent_id="b")
    for s in (mine, theirs):
        await client.post(f"{API}/{s['session_id']}/messages", json=user("kiwi"))

    async def scoped() -> Principal:
        return Principal(name="key-a", agent_ids=frozenset({"a"}))

    client.app.dependency_overrides[get_principal] = scoped  # type: ignore[attr-defined]
    other = f"{API}/{theirs['session_id']}"
    for r in (
        await client.get(other),
        await client.patch(other, json={"title": "x"}),
        await client.delete(other),
        await client.get(f"{other}/messages"),
        await client.post(f"{other}/messages", json={"role": "user", "content": "x"}),
    ):
        assert_error(r, 404, "not_found")
    assert (await client.get(f"{API}/{mine['session_id']}")).status_code == 200
    assert [s["agent_id"] for s in (await client.get(API)).json()["sessions"]] == ["a"]
    assert (await client.get(API, params={"agent_id": "b"})).json()["total"] == 0
    hits = (await client.get(f"{API}/search", params={"q": "kiwi"})).json()["hits"]
    assert [h["session_id"] for h in hits] == [mine["session_id"]]
    assert (await client.get(f"{API}/stats")).json()["total_sessions"] == 1
    assert_error(await client.post(API, json={"agent_id": "b"}), 403, "forbidden")
    assert_error(await client.delete(f"{API}/ghosts"), 403, "forbidden")
    assert_error(await client.post(f"{API}/prune"), 403, "forbidden")
    client.app.dependency_overrides.clear()  # type: ignore[attr-defined]
    assert (await client.get(other)).json()["message_count"] == 1


# ── a real server ──────────────────────────────────────────────


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_real_server_ghost_verification(tmp_path: Path) -> None:
    """Seed 002's curl verification, against uvicorn in a subprocess, over real HTTP."""
    port = _free_port()
    url = f"sqlite:///{tmp_path / 'served.db'}"
    env = {
        **os.environ,
        "SESSIONKEEPER_DATABASE_URL": url,
        "SESSIONKEEPER_PORT": str(port),
        "SESSIONKEEPER_MAINTENANCE": "true",
        "SESSIONKEEPER_LOG_LEVEL": "info",
    }
    code = (
        "from sessionkeeper.api.server import serve; from sessionkeeper.config import Settings; "
        "serve(Settings())"
    )
    pipe = subprocess.PIPE
    proc = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=pipe, stderr=pipe, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, trust_env=False, timeout=5) as http:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, proc.communicate()
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
            r = http.post(API, json={"agent_id": "test", "title": "ghost-test"})
            assert r.status_code == 201
            time.sleep(0.01)
            r = http.delete(f"{API}/ghosts", params={"older_than_minutes": 0})
            assert r.json() == {"deleted": 1, "status": "ok", "older_than_minutes": 0}
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert f"sessionkeeper serving http://127.0.0.1:{port} (database: {url})" in out
    # uvicorn shuts down gracefully, then re-raises SIGTERM to itself (exit status -15).
    assert proc.returncode in (0, -signal.SIGTERM), err
    assert "Application shutdown complete" in err and "Traceback" not in err, err
    # No keys in the database and a loopback host: open, and it says so.
    assert "no API keys configured: running open on loopback only" in err, err


# ── bad input: 4xx naming the field, nothing changed (issue 8) ──────────────


async def snapshot(store: Store) -> list[Any]:
    """Everything a request could have changed: every session and every message."""
    page = await store.list_sessions(limit=100)
    return [
        (s.to_dict(), [m.to_dict() for m in await store.get_messages(s.session_id, limit=500)])
        for s in page.items
    ]


DEEP = {"m": 1}
for _ in range(70):
    DEEP = {"m": DEEP}
S = f"{API}/s1"
# (method, path, query, body: JSON value or raw text, status, field; "x*": x or inside x)
BAD_INPUTS: list[tuple[str, str, dict[str, str], Any, int, str]] = [
    # numbers out of range, in the query and the path
    ("GET", API, {"offset": "9223372036854775808"}, None, 422, "offset"),
    ("GET", f"{S}/messages", {"offset": "2147483648"}, None, 422, "offset"),
    ("GET", f"{S}/messages", {"after_seq": "2147483648"}, None, 422, "after_seq"),
    ("DELETE", f"{S}/messages/2147483648", {}, None, 422, "seq"),
    ("DELETE", f"{S}/messages/0", {}, None, 422, "seq"),
    ("POST", f"{API}/prune", {"days": "1000000000"}, None, 422, "days"),
    ("POST", f"{API}/prune", {"days": "nan"}, None, 422, "days"),
    ("DELETE", f"{API}/ghosts", {"older_than_minutes": "inf"}, None, 422, "older_than_minutes"),
    ("DELETE", f"{API}/ghosts", {"older_than_minutes": "NaN"}, None, 422, "older_than_minutes"),
    ("DELETE", f"{API}/ghosts", {"older_than_minutes": "1e12"}, None, 422, "older_than_minutes"),
    ("GET", f"{API}/stats", {"stale_days": "1e9"}, None, 422, "stale_days"),
    ("GET", f"{API}/stats", {"ghost_minutes": "-inf"}, None, 422, "ghost_minutes"),
    ("GET", f"{S}/context", {"max_tokens": "2147483648"}, None, 422, "max_tokens"),
    ("GET", f"{S}/context", {"reserve": "9223372036854775808"}, None, 422, "reserve"),
    # dates: RFC 3339 with an offset, nothing else
    ("GET", f"{S}/messages", {"since": "0.5"}, None, 422, "since"),
    ("GET", API, {"created_after": "1700000000"}, None, 422, "created_after"),
    ("GET", API, {"updated_before": "2025-01-01"}, None, 422, "updated_before"),
    ("GET", API, {"created_after": "0001-01-01T00:00:00+14:00"}, None, 422, "created_after"),
    # non-standard JSON bodies: NaN, Infinity, too deep, not UTF-8
    ("POST", API, {}, '{"metadata": {"n": NaN}}', 422, "metadata.n"),
    ("PATCH", S, {}, '{"metadata": {"a": [1, Infinity]}}', 422, "metadata.a[1]"),
    ("POST", f"{S}/messages", {}, '{"role": "user", "content": "x", "metadata": {"n": -Infinity}}',
     422, "metadata.n"),
    ("POST", API, {}, "[" * 50_000 + "]" * 50_000, 422, "body"),
    ("POST", API, {}, b'{"title": "\xff"}', 422, "body"),
    ("POST", API, {}, '{"title": ', 422, "body"),
    ("POST", API, {}, {"metadata": DEEP}, 422, "metadata"),
    # text: no NUL, no lone surrogates; ids and labels
    ("POST", API, {}, {"title": "a\x00b"}, 422, "title"),
    ("POST", API, {}, '{"title": "a\\ud800"}', 422, "title"),
    ("POST", API, {}, {"metadata": {"k\x00": 1}}, 422, "metadata*"),
    ("POST", API, {}, {"metadata": {"k": ["\x00"]}}, 422, "metadata*"),
    ("POST", API, {}, {"session_id": ".."}, 422, "session_id"),
    ("POST", API, {}, {"session_id": "."}, 422, "session_id"),
    ("POST", API, {}, {"session_id": ""}, 422, "session_id"),
    ("POST", API, {}, {"session_id": "search"}, 422, "session_id"),
    ("POST", API, {}, {"agent_id": "a b"}, 422, "agent_id"),
    ("POST", f"{S}/messages", {}, {"role": "user", "content": "a\x00"}, 422, "content"),
    ("POST", f"{S}/messages", {}, '{"role": "user", "content": "\\udc00"}', 422, "content"),
    ("POST", f"{S}/messages", {}, '{"role": "user", "content": "x", "model": "\\ud800"}',
     422, "model"),
    ("POST", f"{S}/messages", {}, {"role": "user", "content": "x", "token_count": 2**31},
     422, "token_count"),
    ("POST", f"{S}/messages", {}, {"role": "user", "content": "x", "token_count": 2**63},
     422, "token_count"),
    ("POST", f"{S}/messages", {}, {"role": "user", "content": "x", "token_count": "5"},
     422, "token_count"),
    ("POST", f"{S}/messages", {}, {"role": "user", "content": "x", "token_count": 1.5},
     422, "token_count"),
    ("POST", f"{S}/messages", {}, {"messages": [{"role": "user", "content": "ok"},
     {"role": "user", "content": "\x00"}]}, 422, "content"),
    ("GET", f"{API}/search", {"q": "a\x00"}, None, 422, "q"),
    ("GET", f"{API}/search", {"q": ""}, None, 422, "q"),
    ("GET", f"{API}/search", {"q": "?!"}, None, 422, "q"),
    ("GET", API, {"search": "?!"}, None, 422, "search"),
    ("GET", API, {"agent_id": "a\x00"}, None, 422, "agent_id"),
    ("GET", API, {"cursor": "garbage"}, None, 422, "cursor"),
    ("GET", API, {"cursor": "WyJ1cGRhdGVkX2F0IiwiYXNjIiwieCIsInkiXQ"}, None, 422, "cursor"),
    # session ids of dots alone, in the path: refused, never looked up or deleted
    ("DELETE", f"{API}/%2e%2e", {}, None, 422, "session_id"),
    ("DELETE", f"{API}/%2E", {}, None, 422, "session_id"),
    ("PATCH", f"{API}/%2e%2e", {}, {"title": "x"}, 422, "session_id"),
    ("GET", f"{API}/%2e%2e/messages", {}, None, 422, "session_id"),
    ("POST", f"{API}/%2e%2e/messages", {}, {"role": "user", "content": "x"}, 422, "session_id"),
    # chat: refused before anything is stored
    ("POST", "/api/engine/chat/stream", {}, {"content": "   "}, 422, "content"),
    ("POST", "/api/engine/chat/stream", {}, {"content": "a\x00"}, 422, "content"),
    ("POST", "/api/engine/chat/stream", {}, '{"content": "\\ud800"}', 422, "content"),
    ("POST", "/api/engine/chat/stream", {}, '{"content": "x", "max_context_tokens": NaN}',
     422, "max_context_tokens"),
    ("POST", "/api/engine/chat/stream", {}, {"content": "x", "session_id": ".."},
     422, "session_id"),
    ("POST", "/api/engine/chat/stream", {}, {"content": "x", "max_context_tokens": 2**31},
     422, "max_context_tokens"),
]  # fmt: skip


async def test_bad_input_is_4xx_naming_the_field_and_changes_nothing(
    client: httpx.AsyncClient, store: Store
) -> None:
    await new_session(client, session_id="s1", title="kept", metadata={"a": 1})
    await client.post(f"{S}/messages", json=user("hello"))
    before = await snapshot(store)
    for method, path, query, body, status, field in BAD_INPUTS:
        if body is None:
            r = await client.request(method, path, params=query)
        elif isinstance(body, str | bytes):
            headers = {"content-type": "application/json"}
            r = await client.request(method, path, params=query, content=body, headers=headers)
        else:
            r = await client.request(method, path, params=query, json=body)
        case = f"{method} {path} {query} {str(body)[:80]!r}: {r.status_code} {r.text[:300]}"
        assert r.status_code == status, case
        got = r.json()
        assert got["error"] == "invalid_input" and got["detail"], case
        if field.endswith("*"):  # the Store names where inside metadata
            assert got["field"].startswith(field[:-1]), case
        else:
            assert got["field"] == field, case
    assert await snapshot(store) == before


async def test_the_error_position_of_a_nul_is_reported(client: httpx.AsyncClient) -> None:
    r = await client.post(API, json={"title": "abc\x00"})
    assert r.status_code == 422
    assert (r.json()["field"], r.json()["position"]) == ("title", 3)


async def test_integral_json_numbers_are_integers(client: httpx.AsyncClient) -> None:
    """JSON has one number type: 7.0 is the integer 7 (as JSON Schema says)."""
    s = await new_session(client)
    r = await client.post(
        f"{API}/{s['session_id']}/messages",
        content='{"role": "user", "content": "x", "token_count": 7.0}',
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 201 and r.json()["token_count"] == 7


async def test_405_allow_lists_every_method(client: httpx.AsyncClient) -> None:
    r = await client.put(f"{API}/abc")
    assert r.status_code == 405 and r.headers["allow"] == "GET, PATCH, DELETE"
    assert r.json()["error"] == "method_not_allowed"
    r = await client.get(f"{API}/ghosts")
    assert r.status_code == 405 and r.headers["allow"] == "DELETE"
    r = await client.delete(API)
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
