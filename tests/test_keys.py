"""API keys on SQLite and PostgreSQL: hashed at rest, scoped, revocable."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

import rawdb
from clitools import CLI, isolate_user, run_cli, subprocess_env
from sessionkeeper.errors import InvalidInput, NotFound, Unauthorized, Unavailable
from sessionkeeper.store import keys as keys_module
from sessionkeeper.store.backends.base import KeyRow
from sessionkeeper.store.core import Store
from sessionkeeper.store.keys import ApiKeys


async def test_create_verify_revoke(store: Store) -> None:
    keys = store.keys
    assert not await keys.any_active()
    scoped, token = await keys.create(agent_ids=["b", "a", "a"], name="bot")
    admin, admin_token = await keys.create(admin=True)
    assert scoped.agent_ids == ["a", "b"] and scoped.scope == ["a", "b"]
    assert admin.scope is None
    # An admin key reaches every agent's sessions; a scoped key only its own agents'.
    other = await store.create_session(agent_id="anything")
    assert [s.session_id for s in (await store.list_sessions(agent_ids=admin.scope)).items] == [
        other.session_id
    ]
    assert (await store.list_sessions(agent_ids=scoped.scope)).items == []
    assert token.startswith(f"sk_{scoped.key_id}_")
    assert (await keys.verify(token)).key_id == scoped.key_id
    assert (await keys.verify(admin_token)).admin

    stored = await rawdb.fetch(store, "SELECT * FROM api_keys")
    assert len(stored) == 2
    secret = token.split("_", 2)[2]
    assert not any(secret in str(v) for row in stored for v in row)  # never in plain text

    for bad in ("", "nope", token + "x", f"sk_{scoped.key_id}_wrong", "sk_unknown_x"):
        with pytest.raises(Unauthorized):
            await keys.verify(bad)
    await keys.revoke(scoped.key_id)
    with pytest.raises(Unauthorized, match="revoked"):
        await keys.verify(token)
    with pytest.raises(NotFound):
        await keys.revoke(scoped.key_id)
    assert [k.key_id for k in await keys.list()] == [admin.key_id]
    assert len(await keys.list(include_revoked=True)) == 2


async def test_key_must_be_admin_or_scoped(store: Store) -> None:
    keys = store.keys
    with pytest.raises(InvalidInput):
        await keys.create()
    with pytest.raises(InvalidInput):
        await keys.create(admin=True, agent_ids=["a"])
    with pytest.raises(InvalidInput):
        await keys.create(agent_ids=["bad agent"])
    assert await keys.list(include_revoked=True) == []


# ── last use ────────────────────────────────────────────────────────────────


async def test_verify_records_last_use(store: Store) -> None:
    keys = store.keys
    made, token = await keys.create(admin=True)
    assert made.last_used_at is None
    before = datetime.now(UTC)
    used = await keys.verify(token)
    assert used.last_used_at is not None
    assert before <= used.last_used_at <= datetime.now(UTC)
    [listed] = await keys.list()
    assert listed.last_used_at == used.last_used_at
    assert listed.to_dict()["last_used_at"] == used.last_used_at.isoformat()

    # Used again within the minute: nothing written, the first use stays.
    again = await keys.verify(token)
    assert again.last_used_at == used.last_used_at
    assert [k.last_used_at for k in await keys.list()] == [used.last_used_at]


class _DownBackend:
    """A key table whose writes fail (a database gone read-only, say)."""

    def __init__(self, row: KeyRow) -> None:
        self.row = row
        self.writes = 0

    async def get_key(self, key_id: str) -> KeyRow | None:
        return self.row if key_id == self.row.key_id else None

    async def touch_key(self, key_id: str, now: datetime) -> None:
        self.writes += 1
        raise Unavailable("the database did not answer within 2 s")


async def test_last_use_write_failure_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    row = KeyRow("k1", None, True, [], now, None, None, hashlib.sha256(b"secret").hexdigest())
    backend = _DownBackend(row)
    keys = ApiKeys(backend)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="sessionkeeper.store.keys"):
        key = await keys.verify("sk_k1_secret")
    assert key.key_id == "k1" and key.last_used_at is None  # valid all the same
    assert backend.writes == 1
    assert "could not record the use of API key k1" in caplog.text
    # At most one attempt a minute per key and process, failed or not: no write per request.
    for _ in range(5):
        await keys.verify("sk_k1_secret")
    assert backend.writes == 1
    monkeypatch.setattr(keys_module, "TOUCH_INTERVAL", 0.0)
    await keys.verify("sk_k1_secret")
    assert backend.writes == 2


def test_keys_list_shows_last_use(file_db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """`sessionkeeper keys list` shows when a key was last used (SQLite file, PostgreSQL: the
    CLI opens its own store, so an in-memory database is covered by the test above)."""
    from typer.testing import CliRunner

    from sessionkeeper.cli import app as cli

    monkeypatch.delenv("SESSIONKEEPER_DATABASE_URL", raising=False)

    async def make() -> tuple[str, str, datetime | None]:
        store = await Store.open(file_db_url)
        try:
            used, token = await store.keys.create(agent_ids=["a"], name="bot")
            unused, _ = await store.keys.create(admin=True, name="ops")
            return used.key_id, unused.key_id, (await store.keys.verify(token)).last_used_at
        finally:
            await store.close()

    used_id, unused_id, last_used = asyncio.run(make())
    assert last_used is not None
    runner = CliRunner()
    listed = runner.invoke(cli, ["--db", file_db_url, "keys", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    shown = {k["key_id"]: k["last_used_at"] for k in json.loads(listed.stdout)}
    assert shown == {used_id: last_used.isoformat(), unused_id: None}
    table = runner.invoke(cli, ["--db", file_db_url, "keys", "list"], terminal_width=200)
    assert table.exit_code == 0, table.output
    assert "last used" in table.stdout
    [used_line] = [line for line in table.stdout.splitlines() if used_id in line]
    assert last_used.strftime("%Y-%m-%d") in used_line
    [unused_line] = [line for line in table.stdout.splitlines() if unused_id in line]
    assert "never" in unused_line


# ── revoking the last key while `serve` runs (issue 16) ─────────────────────────


def _serving(url: str, env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [*CLI, "serve", "--port", str(port), "--db", url],
        env={**env, "SESSIONKEEPER_MAINTENANCE": "false"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()  # announced once listening
    assert "serving" in line, proc.communicate(timeout=30)
    return proc, f"http://127.0.0.1:{port}/api/engine/sessions"


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.terminate()
    proc.communicate(timeout=30)


def test_revoking_the_last_key_says_what_a_running_server_does(
    file_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`keys list` said "the API runs open" while a running server kept answering 401.
    Revoking never opens a running server (revocation takes access away, never grants it):
    the CLI says so, the server keeps refusing keyless requests, a restart runs open."""
    env = subprocess_env(isolate_user(tmp_path, monkeypatch))
    db = ["--db", file_db_url]
    assert run_cli([*db, "db", "upgrade"], env).returncode == 0
    made = json.loads(run_cli([*db, "keys", "create", "--admin", "--json"], env).stdout)
    proc, sessions = _serving(file_db_url, env)
    try:
        with httpx.Client(trust_env=False, timeout=10) as http:
            bearer = {"Authorization": f"Bearer {made['token']}"}
            assert http.get(sessions, headers=bearer).status_code == 200
            assert http.get(sessions).status_code == 401
            revoked = run_cli([*db, "keys", "revoke", made["key_id"]], env)
            assert revoked.returncode == 0, revoked.stderr
            note = " ".join(revoked.stderr.decode().split())  # folded at the width
            assert "that was the last active key" in note and "until it is restarted" in note
            listed = " ".join(run_cli([*db, "keys", "list"], env).stdout.decode().split())
            assert listed.startswith("No active key: `serve` started now runs open")
            assert "a server already running that had a key keeps refusing" in listed
            assert "the API runs open" not in listed
            time.sleep(2.5)  # past the server's 2 s re-check of whether keys exist
            assert http.get(sessions).status_code == 401  # as the CLI said
            assert http.get(sessions, headers=bearer).status_code == 401  # revoked
    finally:
        _stop(proc)
    proc, sessions = _serving(file_db_url, env)
    try:
        with httpx.Client(trust_env=False, timeout=10) as http:
            assert http.get(sessions).status_code == 200  # restarted: open, on loopback
    finally:
        _stop(proc)
    first, second = (
        json.loads(run_cli([*db, "keys", "create", "--admin", "--json"], env).stdout)["key_id"]
        for _ in range(2)
    )
    one_left = run_cli([*db, "keys", "revoke", first], env)
    assert one_left.returncode == 0 and one_left.stderr == b""  # another key is active
