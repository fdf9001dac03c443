"""API keys over the REST API, on SQLite and PostgreSQL, and the ``keys`` CLI.

Apps are built with an injected Store and driven through httpx's ASGI transport, so the
lifespan does not run and the open/closed decision is made lazily (as in production when a
key is created while the server runs); the lifespan's own check is tested separately.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

import rawdb
from sessionkeeper.api import create_app
from sessionkeeper.api.auth import Authenticator, check_open, is_loopback
from sessionkeeper.api.server import check_startup
from sessionkeeper.config import Settings
from sessionkeeper.errors import Forbidden
from sessionkeeper.store.core import Store

API = "/api/engine/sessions"
LOCAL = ("127.0.0.1", 50000)


def make_app(db_url: str, store: Store, host: str = "127.0.0.1") -> FastAPI:
    return create_app(Settings(database_url=db_url, host=host, maintenance=False), store=store)


def client(
    app: FastAPI, token: str | None = None, peer: tuple[str, int] = LOCAL
) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, client=peer)
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


def assert_401(r: httpx.Response, *in_detail: str) -> None:
    assert r.status_code == 401, r.text
    assert r.headers["www-authenticate"] == "Bearer"
    body = r.json()
    assert body["error"] == "unauthorized"
    for text in in_detail:
        assert text in body["detail"], body


class Keys:
    """An app with keys: an admin, and one scoped to agent "a"."""

    def __init__(self, app: FastAPI, admin: str, scoped: str, scoped_id: str) -> None:
        self.app, self.admin, self.scoped, self.scoped_id = app, admin, scoped, scoped_id


@pytest.fixture
async def keyed(store: Store, db_url: str) -> AsyncIterator[Keys]:
    keys = store.keys
    _, admin = await keys.create(admin=True, name="ops")
    key_a, scoped = await keys.create(agent_ids=["a"], name="bot-a")
    yield Keys(make_app(db_url, store), admin, scoped, key_a.key_id)


async def seed(admin: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    """A session of agent "a" and one of agent "b", each with one message about kiwis."""
    made = []
    for agent in ("a", "b"):
        r = await admin.post(API, json={"agent_id": agent, "title": f"of {agent}"})
        assert r.status_code == 201, r.text
        sid = r.json()["session_id"]
        r = await admin.post(f"{API}/{sid}/messages", json={"role": "user", "content": "kiwi"})
        assert r.status_code == 201, r.text
        made.append(r.json() | {"session_id": sid})
    return made[0], made[1]


# ── scoped keys ─────────────────────────────────────────────────────────────


async def test_scoped_key_gets_404_on_other_agents_sessions_everywhere(keyed: Keys) -> None:
    async with client(keyed.app, keyed.admin) as admin, client(keyed.app, keyed.scoped) as bot:
        mine, theirs = await seed(admin)
        other = f"{API}/{theirs['session_id']}"
        unknown = f"{API}/no-such-session"
        for target in (other, unknown):
            responses = {
                "get": await bot.get(target),
                "patch": await bot.patch(target, json={"title": "hijacked"}),
                "delete": await bot.delete(target),
                "end": await bot.post(f"{target}/end"),
                "messages": await bot.get(f"{target}/messages"),
                "add": await bot.post(f"{target}/messages", json={"role": "user", "content": "x"}),
                "batch": await bot.post(
                    f"{target}/messages", json={"messages": [{"role": "user", "content": "x"}]}
                ),
                "delete message": await bot.delete(f"{target}/messages/1"),
                "context": await bot.get(f"{target}/context"),
            }
            for what, r in responses.items():
                assert r.status_code == 404, (what, r.text)
                # Exactly what an unknown id gets: nothing tells "exists" from "not yours".
                assert set(r.json()) == {"error", "detail"}, what
                assert r.json()["error"] == "not_found", what

        # Nothing of b's changed, as the admin sees it.
        b = (await admin.get(other)).json()
        assert (b["title"], b["status"], b["message_count"]) == ("of b", "active", 1)

        # The scoped key's own session works normally.
        own = f"{API}/{mine['session_id']}"
        assert (await bot.get(own)).status_code == 200
        r = await bot.post(f"{own}/messages", json={"role": "assistant", "content": "kiwi too"})
        assert r.status_code == 201
        assert (await bot.get(f"{own}/context")).status_code == 200


async def test_scoped_key_listing_search_and_stats_show_only_its_agents(keyed: Keys) -> None:
    async with client(keyed.app, keyed.admin) as admin, client(keyed.app, keyed.scoped) as bot:
        mine, theirs = await seed(admin)
        listed = (await bot.get(API)).json()
        assert [s["agent_id"] for s in listed["sessions"]] == ["a"] and listed["total"] == 1
        assert (await bot.get(API, params={"agent_id": "b"})).json()["total"] == 0
        assert (await bot.get(API, params={"search": "kiwi"})).json()["total"] == 1

        hits = (await bot.get(f"{API}/search", params={"q": "kiwi"})).json()["hits"]
        assert [h["session_id"] for h in hits] == [mine["session_id"]]
        probe = {"q": "kiwi", "session_id": theirs["session_id"]}
        assert (await bot.get(f"{API}/search", params=probe)).json()["hits"] == []

        stats = (await bot.get(f"{API}/stats")).json()
        assert (stats["total_sessions"], stats["total_messages"]) == (1, 1)
        assert stats["by_agent"] == {"a": 1}
        everyone = (await admin.get(f"{API}/stats")).json()
        assert everyone["by_agent"] == {"a": 1, "b": 1}


async def test_scoped_key_creates_only_for_its_agents(keyed: Keys) -> None:
    async with client(keyed.app, keyed.scoped) as bot, client(keyed.app, keyed.admin) as admin:
        r = await bot.post(API, json={"agent_id": "b"})
        assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        assert (await bot.post(API, json={"agent_id": "a"})).status_code == 201
        assert (await admin.get(API)).json()["total"] == 1


async def test_a_create_without_agent_id_is_the_keys_default_agent(
    store: Store, db_url: str
) -> None:
    """Left out, agent_id is "main" if the key may act for it, else the key's only agent; a
    key of several agents, none of them "main", must name one (422 naming agent_id). The
    same rule for a session made by the chat endpoint's first message."""
    keys = store.keys
    _, admin = await keys.create(admin=True)
    _, one = await keys.create(agent_ids=["a"])
    _, with_main = await keys.create(agent_ids=["a", "main"])
    _, several = await keys.create(agent_ids=["a", "b"])
    app = make_app(db_url, store)
    chat = "/api/engine/chat/stream"
    for token, expected in ((admin, "main"), (one, "a"), (with_main, "main")):
        async with client(app, token) as c:
            r = await c.post(API, json={"title": "no agent named"})
            assert r.status_code == 201 and r.json()["agent_id"] == expected, r.text
            r = await c.post(chat, json={"content": "hello"})
            assert r.status_code == 200, r.text
            sid = r.text.split('"session_id":"', 1)[1].split('"', 1)[0]
            assert (await store.get_session(sid)).agent_id == expected
    before = (await store.list_sessions()).total
    async with client(app, several) as c:
        for r in (await c.post(API, json={}), await c.post(chat, json={"content": "hello"})):
            assert r.status_code == 422, r.text
            body = r.json()
            assert body["field"] == "agent_id"
            assert "several agents ('a', 'b')" in body["detail"] and "agent_id" in body["detail"]
        assert (await c.post(API, json={"agent_id": "b"})).json()["agent_id"] == "b"
        assert (await c.post(API, json={"agent_id": "main"})).status_code == 403
        # Continuing a session needs no agent_id, whatever the key's scope.
        made = (await c.post(API, json={"agent_id": "a"})).json()["session_id"]
        r = await c.post(chat, json={"content": "hi", "session_id": made})
        assert r.status_code == 200 and "event: done" in r.text, r.text
    assert (await store.list_sessions()).total == before + 2
    async with client(app, admin) as c:  # null is not "left out"
        r = await c.post(API, json={"agent_id": None})
        assert r.status_code == 422 and r.json()["field"] == "agent_id", r.text


async def test_whoami_says_what_the_key_may_do(keyed: Keys, store: Store, db_url: str) -> None:
    _, several = await store.keys.create(agent_ids=["x", "y"], name="two")
    async with client(keyed.app, keyed.admin) as admin:
        me = (await admin.get("/api/engine/whoami")).json()
        assert me == {
            "name": "ops",
            "key_id": me["key_id"],
            "admin": True,
            "agent_ids": None,
            "default_agent_id": "main",
            "user_ids": None,
            "default_user_id": None,
            "maintenance": True,
        }
    async with client(keyed.app, keyed.scoped) as bot:
        me = (await bot.get("/api/engine/whoami")).json()
        assert me == {
            "name": "bot-a",
            "key_id": keyed.scoped_id,
            "admin": False,
            "agent_ids": ["a"],
            "default_agent_id": "a",
            "user_ids": None,
            "default_user_id": None,
            "maintenance": False,
        }
    async with client(keyed.app, several) as two:
        me = (await two.get("/api/engine/whoami")).json()
        assert (me["agent_ids"], me["default_agent_id"], me["maintenance"]) == (
            ["x", "y"],
            None,
            False,
        )
    async with client(keyed.app) as anonymous:
        assert_401(await anonymous.get("/api/engine/whoami"))
    open_app = make_app(db_url, await Store.open("sqlite://"))
    try:
        async with client(open_app) as c:
            me = (await c.get("/api/engine/whoami")).json()
            assert (me["key_id"], me["admin"], me["maintenance"]) == (None, True, True)
    finally:
        await open_app.state.store.close()


async def test_taken_id_of_another_agent_is_answered_like_a_taken_id_of_ones_own(
    keyed: Keys,
) -> None:
    """Ids are one namespace: a create with a taken id fails whoever owns it. The answer to a
    scoped key is the same for another agent's id as for its own agent's (status, body shape,
    wording, headers): it learns the id is taken, never by whom or what it holds."""
    async with client(keyed.app, keyed.admin) as admin, client(keyed.app, keyed.scoped) as bot:
        for sid, agent in (("same-a", "a"), ("same-b", "b")):
            made = await admin.post(API, json={"session_id": sid, "agent_id": agent})
            assert made.status_code == 201, made.text
        own = await bot.post(API, json={"session_id": "same-a", "agent_id": "a", "title": "t"})
        other = await bot.post(API, json={"session_id": "same-b", "agent_id": "a", "title": "t"})
        assert own.status_code == other.status_code == 409
        assert own.json() == {"error": "conflict", "detail": "session 'same-a' already exists"}
        assert other.json() == {"error": "conflict", "detail": "session 'same-b' already exists"}
        assert own.text.replace("same-a", "same-b") == other.text
        assert sorted(own.headers.keys()) == sorted(other.headers.keys())
        # And the chat endpoint, which creates no id: another agent's session is "not found".
        chat = "/api/engine/chat/stream"
        theirs = await bot.post(chat, json={"content": "hi", "session_id": "same-b"})
        missing = await bot.post(chat, json={"content": "hi", "session_id": "same-c"})
        assert theirs.status_code == missing.status_code == 404
        assert theirs.text.replace("same-b", "same-c") == missing.text
        b = (await admin.get(f"{API}/same-b")).json()
        assert (b["agent_id"], b["title"], b["message_count"]) == ("b", None, 0)


async def test_maintenance_and_metrics_need_an_admin_key(keyed: Keys) -> None:
    async with client(keyed.app, keyed.scoped) as bot, client(keyed.app, keyed.admin) as admin:
        for r in (
            await bot.delete(f"{API}/ghosts", params={"older_than_minutes": 0}),
            await bot.post(f"{API}/prune", params={"dry_run": True}),
            await bot.get("/metrics"),
        ):
            assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
        r = await admin.delete(f"{API}/ghosts", params={"older_than_minutes": 0})
        assert r.status_code == 200 and r.json()["deleted"] == 0
        assert (await admin.post(f"{API}/prune", params={"dry_run": True})).status_code == 200
        assert (await admin.get("/metrics")).status_code == 200


# ── 401 ─────────────────────────────────────────────────────────────────────


async def test_no_key_bad_key_and_revoked_key_get_401(keyed: Keys, store: Store) -> None:
    async with client(keyed.app) as anonymous:
        for r in (
            await anonymous.get(API),
            await anonymous.post(API, json={}),
            await anonymous.get(f"{API}/anything"),
            await anonymous.delete(f"{API}/ghosts"),
            await anonymous.get("/metrics"),
        ):
            assert_401(r, "API key")
        for header in ("Basic dXNlcjpwdw==", "Bearer", "Bearer sk_nope", f"Bearer {keyed.scoped}x"):
            r = await anonymous.get(API, headers={"Authorization": header})
            assert_401(r)
        # Public without a key: liveness, readiness, and the pages.
        assert (await anonymous.get("/healthz")).status_code == 200
        assert (await anonymous.get("/readyz")).status_code == 200
        if any(getattr(route, "path", None) == "/chat" for route in keyed.app.routes):
            assert (await anonymous.get("/chat")).status_code == 200

    async with client(keyed.app, keyed.scoped) as bot:
        assert (await bot.get(API)).status_code == 200
        await store.keys.revoke(keyed.scoped_id)
        # No cache: the very next request is refused.
        assert_401(await bot.get(API), "revoked")


async def test_keys_are_not_stored_in_plain_text(keyed: Keys, store: Store) -> None:
    rows = await rawdb.fetch(store, "SELECT * FROM api_keys")
    assert len(rows) == 2
    stored = " ".join(str(v) for row in rows for v in row)
    for token in (keyed.admin, keyed.scoped):
        secret = token.split("_", 2)[2]
        assert token not in stored
        assert secret not in stored and secret[:16] not in stored


# ── open mode ───────────────────────────────────────────────────────────────


async def test_open_mode_on_loopback_without_keys(store: Store, db_url: str) -> None:
    app = make_app(db_url, store)
    async with client(app) as local:
        r = await local.post(API, json={"agent_id": "anyone"})
        assert r.status_code == 201
        assert (await local.delete(f"{API}/ghosts")).status_code == 200  # open means admin
        assert (await local.get("/metrics")).status_code == 200
        # A key that is sent is still checked, open or not.
        assert_401(await local.get(API, headers={"Authorization": "Bearer sk_bad_key"}))
    # Keyless requests from another machine are refused even in open mode.
    async with client(app, peer=("192.0.2.10", 40000)) as remote:
        assert_401(await remote.get(API))


async def test_creating_a_key_while_running_ends_open_mode(store: Store, db_url: str) -> None:
    app = make_app(db_url, store)
    auth: Authenticator = app.state.auth
    async with client(app) as local:
        assert (await local.get(API)).status_code == 200
        assert auth.is_open
        _, token = await store.keys.create(agent_ids=["a"])
        # Within the re-check interval the server may still be open; after it, never.
        auth.recheck_seconds = 0
        assert_401(await local.get(API))
        assert not auth.is_open
        async with client(app, token) as bot:
            assert (await bot.get(API)).status_code == 200


async def test_a_valid_key_ends_open_mode_at_once(store: Store, db_url: str) -> None:
    app = make_app(db_url, store)
    async with client(app) as local:
        assert (await local.get(API)).status_code == 200  # open, decided now
        _, token = await store.keys.create(admin=True)
        async with client(app, token) as admin:
            assert (await admin.get(API)).status_code == 200
        assert_401(await local.get(API))  # no waiting for the re-check interval


async def test_non_loopback_host_without_keys_is_never_open(store: Store, db_url: str) -> None:
    app = make_app(db_url, store, host="0.0.0.0")
    async with client(app) as local:
        assert_401(await local.get(API))
        assert (await local.get("/healthz")).status_code == 200
    # And its lifespan refuses to start.
    with pytest.raises(Forbidden, match="sessionkeeper keys create --admin"):
        async with app.router.lifespan_context(app):
            pass


def test_loopback_rules() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "192.168.1.5", "example.com", "", None):
        assert not is_loopback(host), host
    assert check_open("127.0.0.1", False) is True
    assert check_open("0.0.0.0", True) is False
    assert check_open("127.0.0.1", True) is False
    with pytest.raises(Forbidden) as refused:
        check_open("0.0.0.0", False)
    assert "sessionkeeper keys create --admin" in refused.value.message


async def test_startup_check_refuses_public_host_until_a_key_exists(file_db_url: str) -> None:
    # check_startup opens its own Store on the URL: it must see the key made by another one.
    public = Settings(database_url=file_db_url, host="0.0.0.0", maintenance=False)
    with pytest.raises(Forbidden, match="refusing to serve on 0.0.0.0"):
        await check_startup(public)
    assert await check_startup(public.model_copy(update={"host": "127.0.0.1"})) is True
    async with await Store.open(file_db_url) as store:
        await store.keys.create(admin=True)
    assert await check_startup(public) is False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_serve_on_public_host_without_keys_exits_with_the_fix(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'served.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKEEPER_")}
    cmd = [sys.executable, "-m", "sessionkeeper", "serve", "--host", "0.0.0.0"]
    cmd += ["--port", str(_free_port()), "--db", url]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 7, (done.stdout, done.stderr)  # Forbidden
    assert "no API keys configured" in done.stderr
    assert "sessionkeeper keys create --admin" in done.stderr
    assert "Traceback" not in done.stderr and "serving" not in done.stdout


# ── the keys CLI ───────────────────────────────────────────────────────────


def test_keys_cli_create_list_revoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sessionkeeper.cli import app as cli

    monkeypatch.delenv("SESSIONKEEPER_DATABASE_URL", raising=False)
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(cli, ["--db", url, "keys", *args], catch_exceptions=False)

    # `keys create` makes a missing database (it stores something); `list`, `revoke` need one.
    created = runner.invoke(cli, ["--db", url, "db", "upgrade"], catch_exceptions=False)
    assert created.exit_code == 0, created.output
    made = run("create", "--admin", "--name", "ops", "--json")
    assert made.exit_code == 0, made.output
    admin = json.loads(made.stdout)
    assert set(admin) == {"key_id", "token", "admin", "agent_ids", "user_ids", "name"}
    assert (admin["admin"], admin["agent_ids"], admin["name"]) == (True, [], "ops")

    made = run("create", "--agent", "b", "--agent", "a", "--name", "bot")
    assert made.exit_code == 0, made.output
    token = made.stdout.strip()  # human mode: the token alone on stdout
    assert token.startswith("sk_") and "\n" not in token
    assert "cannot be shown again" in made.stderr

    listed = run("list", "--json")
    assert listed.exit_code == 0
    keys = json.loads(listed.stdout)
    assert [(k["admin"], k["agent_ids"]) for k in keys] == [(True, []), (False, ["a", "b"])]
    scoped_id = keys[1]["key_id"]
    assert token.startswith(f"sk_{scoped_id}_")
    table = run("list")
    assert table.exit_code == 0 and scoped_id in table.stdout and "a, b" in table.stdout
    for shown in (listed.stdout, table.stdout):
        assert token not in shown and admin["token"] not in shown
        assert token.split("_", 2)[2][:12] not in shown

    revoked = run("revoke", scoped_id)
    assert revoked.exit_code == 0 and scoped_id in revoked.stdout
    assert [k["key_id"] for k in json.loads(run("list", "--json").stdout)] == [admin["key_id"]]
    everything = run("list", "--all")
    assert scoped_id in everything.stdout and "revoked" in everything.stdout

    assert run("revoke", scoped_id).exit_code == 3  # NotFound: no active key by that id
    assert run("create").exit_code == 2  # neither --admin nor --agent: InvalidInput
    assert run("create", "--admin", "--agent", "a").exit_code == 2
