"""Users and metadata filters on the command line (``--user``, ``--meta``), and keys scoped
to users, on a SQLite file and PostgreSQL (Typer's CliRunner, as tests/test_cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from clitools import Invoke, as_json, isolate_user, make_invoke


@pytest.fixture
def cli(file_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    isolate_user(tmp_path, monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")  # room for every column of a table
    invoke = make_invoke(file_db_url)
    as_json(invoke("db", "upgrade", "--json"))
    return invoke


def _ids(result: dict[str, object], key: str = "sessions") -> list[str]:
    return sorted(item["session_id"] for item in result[key])  # type: ignore[attr-defined,index]


def test_user_on_new_ask_add_and_the_filters(cli: Invoke) -> None:
    s1 = as_json(cli("new", "--user", "u1", "--agent", "a", "--json"))
    assert s1["user_id"] == "u1"
    as_json(cli("add", "user", "the quokka smiles", "--json"))  # into the current (u1's)
    as_json(cli("new", "--user", "u2", "--json"))
    asked = as_json(cli("ask", "a quokka question", "--json"))  # u2's current session
    assert asked["created"] is False
    # With no current session, add and ask create one for --user.
    assert cli("delete", asked["session_id"], "--yes").exit_code == 0
    added = as_json(cli("add", "user", "quokka again", "--user", "u3", "--json"))
    u3 = added["session_id"]
    as_json(cli("delete", u3, "--yes", "--json"))
    asked = as_json(cli("ask", "quokka, once more", "--user", "u4", "--json"))
    assert asked["created"] is True
    u4 = asked["session_id"]

    listed = as_json(cli("list", "--user", "u1", "--json"))
    assert _ids(listed) == [s1["session_id"]] and listed["sessions"][0]["user_id"] == "u1"
    assert _ids(as_json(cli("list", "--user", "u4", "--json"))) == [u4]
    assert as_json(cli("list", "--user", "nobody", "--json"))["total"] == 0
    hits = as_json(cli("search", "quokka", "--user", "u1", "--json"))["hits"]
    assert {h["session_id"] for h in hits} == {s1["session_id"]}
    stats = as_json(cli("stats", "--user", "u1", "--user", "u4", "--json"))
    assert (stats["total_sessions"], stats["total_messages"]) == (2, 3)
    assert stats["by_agent"] == {"a": 1, "main": 1}

    shown = cli("show", s1["session_id"])
    assert shown.exit_code == 0 and "u1" in shown.stdout
    assert as_json(cli("show", s1["session_id"], "--json"))["session"]["user_id"] == "u1"
    wide = cli("list", "--user", "u1")
    assert "user" in wide.stdout and "u1" in wide.stdout


def test_user_given_for_an_existing_session_of_another_user_is_refused(cli: Invoke) -> None:
    made = as_json(cli("new", "--user", "u1", "--json"))
    for args in (
        ("add", "user", "hello", "--user", "u2"),
        ("ask", "hello", "--user", "u2"),
        ("add", "user", "hello", "--user", "u2", "--session", made["session_id"]),
    ):
        r = cli(*args)
        assert r.exit_code == 2, (args, r.stdout, r.stderr)
        assert "is for user 'u1'" in r.stderr, r.stderr
    assert as_json(cli("show", "--json"))["messages"] == []  # nothing was written
    assert as_json(cli("add", "user", "hello", "--user", "u1", "--json"))["seq"] == 1


def test_meta_filters_list_and_search(cli: Invoke, file_db_url: str) -> None:
    import asyncio

    from sessionkeeper.store.core import Store

    async def plant() -> None:
        async with await Store.open(file_db_url) as store:
            for sid, metadata in (
                ("red", {"team": "red", "priority": 1, "pinned": True}),
                ("red-text", {"team": "red", "priority": "1"}),
                ("blue", {"team": "blue", "priority": 1, "note": None}),
            ):
                await store.create_session(session_id=sid, metadata=metadata)
                await store.add_message(sid, "user", "numbat sighting")

    asyncio.run(plant())
    assert _ids(as_json(cli("list", "--meta", "team=red", "--json"))) == ["red", "red-text"]
    # A value that parses as JSON is JSON; anything else is a string.
    assert _ids(as_json(cli("list", "--meta", "priority=1", "--json"))) == ["blue", "red"]
    assert _ids(as_json(cli("list", "--meta", 'priority="1"', "--json"))) == ["red-text"]
    both = cli("list", "-m", "team=red", "-m", "pinned=true", "--json")
    assert _ids(as_json(both)) == ["red"]
    assert _ids(as_json(cli("list", "--meta", "note=null", "--json"))) == ["blue"]
    hits = as_json(cli("search", "numbat", "--meta", "team=blue", "--json"))
    assert _ids(hits, "hits") == ["blue"]

    for bad, says in (
        ("team", "KEY=VALUE"),
        ("=red", "KEY=VALUE"),
        ("team=[1]", "string, number, true, false or null"),
        ('te"am=1', "invalid metadata filter key"),
    ):
        for command in (("list",), ("search", "numbat")):
            r = cli(*command, "--meta", bad)
            assert r.exit_code == 2, (bad, r.stdout, r.stderr)
            assert says in r.stderr, (bad, r.stderr)
    twice = cli("list", "--meta", "team=red", "--meta", "team=blue")
    assert twice.exit_code == 2 and "twice" in twice.stderr


def test_export_by_user(cli: Invoke, tmp_path: Path) -> None:
    for user, agent in (("u1", "a"), ("u1", "b"), ("u2", "a")):
        as_json(cli("new", "--user", user, "--agent", agent, "--json"))
        as_json(cli("add", "user", f"hello from {user}", "--json"))
    out = tmp_path / "u1.jsonl"
    summary = as_json(cli("export", "--user", "u1", "-o", str(out), "--json"))
    assert (summary["sessions"], summary["messages"]) == (2, 2)
    headers = [json.loads(line) for line in out.read_text().splitlines()]
    assert [h["user_id"] for h in headers if h["type"] == "session"] == ["u1", "u1"]
    only = as_json(cli("export", "--user", "u1", "--agent", "b", "-o", str(out), "--json"))
    assert only["sessions"] == 1
    r = cli("export", "some-id", "--user", "u1")
    assert r.exit_code == 2 and "not both" in r.stderr


def test_keys_scoped_to_users(cli: Invoke) -> None:
    made = as_json(cli("keys", "create", "--agent", "a", "--user", "u1", "--user", "u2", "--json"))
    assert (made["agent_ids"], made["user_ids"]) == (["a"], ["u1", "u2"])
    listed = as_json(cli("keys", "list", "--json"))
    assert listed[0]["user_ids"] == ["u1", "u2"]
    table = cli("keys", "list")
    assert "a; users u1, u2" in table.stdout
    for args, says in (
        (("keys", "create", "--admin", "--user", "u1"), "admin key sees every user"),
        (("keys", "create", "--user", "u1"), "either --admin or scoped"),
        (("keys", "create", "--agent", "a", "--user", "a b"), "invalid user_ids"),
    ):
        r = cli(*args)
        assert r.exit_code == 2 and says in r.stderr, (args, r.stderr)
    assert len(as_json(cli("keys", "list", "--json"))) == 1
