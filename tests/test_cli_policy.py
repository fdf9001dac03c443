"""``sessionkeeper policy set|list|delete|run`` (issue 20, item 3), on a SQLite file and on
PostgreSQL; and the issue's "must show": ``policy set --agent A --delete-after 1d`` then
``policy run`` (real processes) removes A's old sessions, not B's, not pinned ones, while
writers appending to old sessions of A lose no acknowledged message."""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import rawdb
from clitools import Invoke, as_json, isolate_user, make_invoke
from sessionkeeper.errors import NotFound
from sessionkeeper.store.core import Store
from test_store_retention import old_sessions


@pytest.fixture
def user_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return isolate_user(tmp_path, monkeypatch)


@pytest.fixture
def cli(file_db_url: str, user_env: dict[str, str]) -> Invoke:
    invoke = make_invoke(file_db_url)
    as_json(invoke("db", "upgrade", "--json"))
    return invoke


async def _age(url: str, session_ids: list[str], days: float) -> None:
    async with await Store.open(url) as store:
        then = rawdb.when(store, datetime.now(UTC) - timedelta(days=days))
        for sid in session_ids:
            await rawdb.execute(
                store, "UPDATE sessions SET updated_at = ? WHERE session_id = ?", then, sid
            )


def test_set_list_delete(cli: Invoke) -> None:
    made = as_json(
        cli(
            "policy",
            "set",
            "--agent",
            "A",
            "--delete-after",
            "30d",
            "--end-idle-after",
            "2h",
            "--json",
        )
    )
    assert {k: v for k, v in made.items() if k != "updated_at"} == {
        "agent_id": "A",
        "end_idle_minutes": 120,
        "delete_ended_days": None,
        "delete_after_days": 30,
    }
    as_json(cli("policy", "set", "--default", "--delete-ended-after", "7d", "--json"))
    as_json(
        cli("policy", "set", "--agent", "*", "--delete-ended-after", "14d", "--json")
    )  # the same one
    listed = as_json(cli("policy", "list", "--json"))
    assert [(p["agent_id"], p["delete_ended_days"]) for p in listed] == [("*", 14), ("A", None)]

    human = cli("policy", "list")
    assert human.exit_code == 0
    assert "* (default)" in human.stdout and "14d" in human.stdout and "2h" in human.stdout
    shown = cli("policy", "set", "--agent", "C")
    assert shown.exit_code == 0 and "every session of agent C is kept" in shown.stdout

    assert as_json(cli("policy", "delete", "--agent", "C", "--json"))["agent_id"] == "C"
    gone = cli("policy", "delete", "--agent", "C")
    assert gone.exit_code == 3 and "no retention policy for agent 'C'" in gone.stderr
    deleted = cli("policy", "delete", "--default")
    assert deleted.exit_code == 0 and "Deleted the default policy" in deleted.stdout
    assert [p["agent_id"] for p in as_json(cli("policy", "list", "--json"))] == ["A"]


BAD_SETS = [
    (["--agent", "A", "--delete-after", "36h"], "--delete-after must be a whole number of days"),
    (["--agent", "A", "--end-idle-after", "soon"], "--end-idle-after must be a duration"),
    (["--agent", "A", "--delete-after", "0d"], "--delete-after must be a positive number"),
    (["--delete-after", "3d"], "say whose policy"),
    (["--agent", "A", "--default"], "not both"),
    (["--agent", "a b", "--delete-after", "3d"], "invalid --agent 'a b'"),
]


def test_bad_input_exits_2_and_changes_nothing(cli: Invoke) -> None:
    as_json(cli("policy", "set", "--agent", "A", "--delete-after", "30d", "--json"))
    for argv, words in BAD_SETS:
        bad = cli("policy", "set", *argv)
        assert bad.exit_code == 2, (argv, bad.stdout, bad.stderr)
        assert words in bad.stderr, argv
    [kept] = as_json(cli("policy", "list", "--json"))
    assert (kept["agent_id"], kept["delete_after_days"], kept["end_idle_minutes"]) == (
        "A",
        30,
        None,
    )
    for command in (["delete"], ["delete", "--agent", "A", "--default"]):
        assert cli("policy", *command).exit_code == 2
    assert len(as_json(cli("policy", "list", "--json"))) == 1


def test_run_and_dry_run_list_each_rule_with_ids(cli: Invoke, file_db_url: str) -> None:
    ids = {}
    for name, agent in [("a-old", "A"), ("a-idle", "A"), ("b-old", "B")]:
        ids[name] = as_json(cli("new", "--agent", agent, "--json"))["session_id"]
        as_json(cli("add", "user", f"hello from {name}", "--json"))
    asyncio.run(_age(file_db_url, [ids["a-old"], ids["b-old"]], days=3))
    asyncio.run(_age(file_db_url, [ids["a-idle"]], days=0.25))
    as_json(
        cli(
            "policy",
            "set",
            "--agent",
            "A",
            "--delete-after",
            "2d",
            "--end-idle-after",
            "1h",
            "--json",
        )
    )

    dry = cli("policy", "run", "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert f"A delete_after would delete 1 session: {ids['a-old']}" in dry.stdout
    assert f"A end_idle_after would end 1 session: {ids['a-idle']}" in dry.stdout
    assert "Would end 1 session, would delete 1 session (dry run: nothing changed)" in dry.stdout
    dry_json = as_json(cli("policy", "run", "--dry-run", "--json"))
    assert dry_json["dry_run"] is True
    assert [(r["rule"], r["action"], r["session_ids"]) for r in dry_json["rules"]] == [
        ("delete_after", "delete", [ids["a-old"]]),
        ("end_idle_after", "end", [ids["a-idle"]]),
    ]
    assert len(as_json(cli("list", "--json"))["sessions"]) == 3

    done = as_json(cli("policy", "run", "--json"))
    assert (done["dry_run"], done["deleted_count"], done["ended_count"]) == (False, 1, 1)
    left = {s["session_id"]: s["status"] for s in as_json(cli("list", "--json"))["sessions"]}
    assert left == {ids["a-idle"]: "ended", ids["b-old"]: "active"}
    again = cli("policy", "run")
    assert again.exit_code == 0 and "Ended 0 sessions, deleted 0 sessions" in again.stdout


def test_run_without_policies_says_so(cli: Invoke) -> None:
    done = cli("policy", "run")
    assert done.exit_code == 0 and "No retention policies" in done.stdout
    assert as_json(cli("policy", "run", "--json"))["rules"] == []
    empty = cli("policy", "list")
    assert empty.exit_code == 0 and "no policies" in empty.stdout


# ── the "must show", with real processes ────────────────────────────


async def _cli(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "sessionkeeper",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


OLD_A = 700  # more than a run's batch (500): the run takes several transactions


async def test_policy_delete_after_1d_keeps_b_pinned_and_every_acknowledged_append(
    file_db_url: str, user_env: dict[str, str]
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKEEPER_")}
    env.update(user_env)
    db = ["--db", file_db_url]
    async with await Store.open(file_db_url) as store:
        old = await old_sessions(store, OLD_A)
        for sid, agent, metadata in [
            ("a-pinned", "A", {"pinned": True}),
            ("a-recent", "A", None),
            ("b-old", "B", None),
        ]:
            await store.create_session(session_id=sid, agent_id=agent, metadata=metadata)
            await store.add_message(sid, "user", f"kept: {sid}")
        await rawdb.execute(
            store,
            "UPDATE sessions SET updated_at = ? WHERE session_id IN (?, ?)",
            rawdb.when(store, datetime.now(UTC) - timedelta(days=2)),
            "a-pinned",
            "b-old",
        )
        code, out, err = await _cli(
            env, *db, "policy", "set", "--agent", "A", "--delete-after", "1d"
        )
        assert code == 0, (out, err)

        acknowledged: list[tuple[str, int, str]] = []
        written: set[str] = set()
        stop = asyncio.Event()

        async def writer(n: int) -> None:
            rng = random.Random(n)
            i = 0
            while not stop.is_set():
                sid = rng.choice(old)
                text = f"writer {n} message {i}"
                i += 1
                written.add(sid)  # tried: a write may save it from the run
                try:
                    message = await store.add_message(sid, "user", text)
                except NotFound:
                    continue  # its session was deleted first: nothing acknowledged
                acknowledged.append((sid, message.seq, text))
                await asyncio.sleep(0.002)

        writers = [asyncio.create_task(writer(n)) for n in range(4)]
        try:
            code, out, err = await _cli(env, *db, "policy", "run", "--json")
        finally:
            stop.set()
            await asyncio.gather(*writers)
        assert code == 0, (out, err)
        run = json.loads(out)
        [rule] = run["rules"]
        assert (rule["agent_id"], rule["rule"], rule["action"]) == ("A", "delete_after", "delete")
        deleted = set(rule["session_ids"])

        left = {s.session_id async for s in store.iter_sessions()}
        assert {"a-pinned", "a-recent", "b-old"} <= left  # not B's, not pinned, not recent
        assert deleted.isdisjoint(left)
        untouched = set(old) - written
        assert untouched and untouched <= deleted  # every old session of A nobody wrote to
        assert acknowledged, "the writers wrote nothing during the run"
        for sid, seq, text in acknowledged:
            assert sid in left, f"{sid} was deleted after acknowledging {text!r}"
            rows = await rawdb.fetch(
                store, "SELECT content FROM messages WHERE session_id = ? AND seq = ?", sid, seq
            )
            assert rows == [(text,)], (sid, seq)
        print(
            f"{store.dialect}: deleted {len(deleted)} of {OLD_A}, "
            f"{len(acknowledged)} appends acknowledged during the run"
        )
