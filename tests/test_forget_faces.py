"""Forgetting a user through the REST API (admin only) and the CLI (asks unless --yes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from fastapi import FastAPI

from clitools import as_json, isolate_user, make_invoke
from sessionkeeper.api import create_app
from sessionkeeper.config import Settings
from sessionkeeper.store.adk import AdkKey, Scopes
from sessionkeeper.store.core import Store

USERS = "/api/engine/users"
LOCAL = ("127.0.0.1", 50000)


def client(app: FastAPI, token: str | None = None) -> httpx.AsyncClient:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, client=LOCAL)
    return httpx.AsyncClient(transport=transport, base_url="http://test", headers=headers)


async def two_users(store: Store) -> tuple[str, str]:
    """A session of "team/u1" (a label with a slash) and one of "u2", each with a message."""
    one = await store.create_session(agent_id="a", user_id="team/u1")
    two = await store.create_session(agent_id="a", user_id="u2")
    for s in (one, two):
        await store.add_message(s.session_id, "user", "hello")
    return one.session_id, two.session_id


async def test_rest_forgets_a_user_with_an_admin_key_only(store: Store, db_url: str) -> None:
    one, two = await two_users(store)
    _, admin = await store.keys.create(admin=True)
    _, scoped = await store.keys.create(agent_ids=["a"])
    app = create_app(Settings(database_url=db_url, maintenance=False), store=store)
    path = f"{USERS}/{quote('team/u1', safe='')}"
    async with client(app) as nobody, client(app, scoped) as bot, client(app, admin) as ops:
        assert (await nobody.delete(path)).status_code == 401
        refused = await bot.delete(path)
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
        assert await store.session_exists(one)

        dry = await ops.delete(path, params={"dry_run": True})
        assert dry.status_code == 200, dry.text
        assert dry.json()["dry_run"] is True and dry.json()["forget_id"] is None
        assert (dry.json()["sessions"], dry.json()["messages"]) == (1, 1)
        assert await store.session_exists(one)

        other_agent = await ops.delete(path, params={"agent_id": "b"})
        assert other_agent.json()["sessions"] == 0 and await store.session_exists(one)

        done = await ops.delete(path)
        assert done.status_code == 200, done.text
        body = done.json()
        assert (body["sessions"], body["messages"], body["dry_run"]) == (1, 1, False)
        assert body["forget_id"] and len(body["user_hash"]) == 64 and body["agent_id"] is None
        assert not await store.session_exists(one) and await store.session_exists(two)

        bad = await ops.delete(f"{USERS}/{'x' * 257}")
        assert bad.status_code == 422 and bad.json()["field"] == "user_id", bad.text
        bad = await ops.delete(f"{USERS}/u2", params={"agent_id": "not an agent"})
        assert bad.status_code == 422 and bad.json()["field"] == "agent_id", bad.text
        assert await store.session_exists(two)


async def test_rest_forgets_an_adk_user_whose_id_is_any_text(store: Store, db_url: str) -> None:
    user = "Ada Lovelace/ü?#%"
    assert await store.adk.create(AdkKey("app", user, "s"), Scopes({}, {}, {"a": 1}), update_time=1)
    app = create_app(Settings(database_url=db_url, maintenance=False), store=store)
    async with client(app) as ops:  # open mode: no keys, loopback
        done = await ops.delete(f"{USERS}/{quote(user, safe='')}")
    assert done.status_code == 200, done.text
    assert (done.json()["sessions"], done.json()["adk_state"]) == (1, 2)


def test_cli_dry_run_refusal_and_yes(
    file_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from sessionkeeper.cli import common

    isolate_user(tmp_path, monkeypatch)
    cli = make_invoke(file_db_url)

    async def seed() -> str:
        store = await Store.open(file_db_url)
        try:
            s = await store.create_session(agent_id="a", user_id="u1")
            await store.add_messages(s.session_id, [{"role": "user", "content": "x"}] * 2)
            await store.create_session(user_id="u2")
            return s.session_id
        finally:
            await store.close()

    sid = asyncio.run(seed())
    dry = as_json(cli("forget-user", "u1", "--dry-run", "--json"))
    assert (dry["sessions"], dry["messages"], dry["dry_run"]) == (1, 2, True)
    human = cli("forget-user", "u1", "--dry-run")
    assert human.exit_code == 0 and "Would forget u1" in human.stdout

    # No terminal and no --yes: refused with the counts, nothing deleted.
    refused = cli("forget-user", "u1")
    assert refused.exit_code == 2, refused.stderr
    assert "1 session, 2 messages" in refused.stderr and "add --yes" in refused.stderr
    assert as_json(cli("show", sid, "--json"))["session"]["message_count"] == 2

    # A terminal: the counts, then the question; "n" keeps everything.
    monkeypatch.setattr(common, "interactive", lambda: True)
    declined = cli("forget-user", "u1", input="n\n")
    assert declined.exit_code == 1 and "messages" in declined.stdout
    assert "Forget u1: delete 1 session, 2 messages?" in declined.stderr
    assert cli("show", sid, "--json").exit_code == 0

    other_agent = as_json(cli("forget-user", "u1", "--agent", "b", "--yes", "--json"))
    assert other_agent["sessions"] == 0 and other_agent["agent_id"] == "b"
    accepted = cli("forget-user", "u1", "--agent", "a", input="y\n")
    assert accepted.exit_code == 0, accepted.stderr
    assert "Forgot u1 (agent a): deleted 1 session, 2 messages" in accepted.stdout
    assert cli("show", sid, "--json").exit_code == 3
    assert as_json(cli("list", "--json"))["total"] == 1


def test_cli_in_a_real_process(file_db_url: str, tmp_path: Path) -> None:
    """``sessionkeeper forget-user`` as a subprocess, as an operator runs it (and cron)."""
    import asyncio

    async def seed() -> None:
        store = await Store.open(file_db_url)
        try:
            s = await store.create_session(user_id="u1")
            await store.add_message(s.session_id, "user", "hello")
        finally:
            await store.close()

    asyncio.run(seed())
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKEEPER_")}
    env["HOME"] = str(tmp_path)
    argv = [sys.executable, "-m", "sessionkeeper", "--db", file_db_url, "forget-user", "u1"]
    t0 = time.monotonic()
    done = subprocess.run(
        [*argv, "--yes", "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)
    assert (receipt["sessions"], receipt["messages"], receipt["keys"]) == (1, 1, 0)
    assert receipt["wal_truncated"] is (True if file_db_url.startswith("sqlite") else None)
    assert time.monotonic() - t0 < 30
