"""``fork``, ``rewind`` and ``branches`` on the command line, on a SQLite file and
PostgreSQL (Typer's CliRunner, as tests/test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from clitools import Invoke, as_json, isolate_user, make_invoke


@pytest.fixture
def cli(file_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    isolate_user(tmp_path, monkeypatch)
    monkeypatch.setenv("COLUMNS", "200")
    invoke = make_invoke(file_db_url)
    as_json(invoke("db", "upgrade", "--json"))
    return invoke


def contents(cli: Invoke, session_id: str) -> list[str]:
    shown = as_json(cli("show", session_id, "--json"))
    return [m["content"] for m in shown["messages"]]


def test_fork_rewind_branches_and_undo(cli: Invoke) -> None:
    source = as_json(cli("new", "--title", "trip", "--json"))["session_id"]
    for i in range(1, 7):
        as_json(cli("add", "user" if i % 2 else "assistant", f"turn {i}", "--json"))

    # fork the current session at 4: the fork becomes current
    fork = as_json(cli("fork", "--at", "4", "--json"))
    assert (fork["parent_session_id"], fork["fork_seq"], fork["message_count"]) == (source, 4, 4)
    assert as_json(cli("current", "--json"))["session_id"] == fork["session_id"]
    assert contents(cli, fork["session_id"]) == [f"turn {i}" for i in range(1, 5)]
    result = cli("show")
    assert result.exit_code == 0 and f"{source} at #4" in result.output

    # rewind the source to 2: the tail goes to a branch; switching to it undoes the rewind
    cli("switch", source)
    done = as_json(cli("rewind", "2", "--json"))
    assert (done["to_seq"], done["dropped_messages"]) == (2, 4)
    assert contents(cli, source) == ["turn 1", "turn 2"]
    branch = done["branch"]["session_id"]
    assert contents(cli, branch) == [f"turn {i}" for i in range(1, 7)]
    added = as_json(cli("add", "user", "another turn 3", "--json"))
    assert (added["session_id"], added["seq"]) == (source, 3)

    listed = as_json(cli("branches", "--json"))
    assert listed["session_id"] == source
    assert [b["session_id"] for b in listed["branches"]] == [fork["session_id"], branch]
    table = cli("branches")
    assert table.exit_code == 0 and branch in table.output and "2 branches" in table.output
    text = cli("rewind", "1")
    assert text.exit_code == 0 and "sessionkeeper switch" in text.output
    cli("switch", branch)
    assert as_json(cli("current", "--json"))["session_id"] == branch

    # a named source, a chosen id, and the human output
    out = cli("fork", source, "--id", "named-fork", "--title", "other")
    assert out.exit_code == 0 and "named-fork" in out.output
    assert as_json(cli("show", "named-fork", "--json"))["session"]["title"] == "other"


def test_refusals_and_exit_codes(cli: Invoke) -> None:
    source = as_json(cli("new", "--json"))["session_id"]
    as_json(cli("add", "user", "hello", "--json"))
    assert cli("fork", "--at", "2").exit_code == 2  # past the last message
    assert cli("fork", "--at", "-1").exit_code == 2
    assert cli("fork", "nope").exit_code == 3
    assert cli("rewind", "5").exit_code == 2
    assert cli("rewind", "0", "--session", "nope").exit_code == 3
    assert cli("branches", "nope").exit_code == 3
    assert cli("fork", "--id", source).exit_code == 4  # the id is taken
    assert as_json(cli("branches", "--json"))["branches"] == []
    same = as_json(cli("rewind", "1", "--json"))
    assert same["branch"] is None
    assert "nothing to rewind" in cli("rewind", "1").output
    as_json(cli("end", "--json"))
    assert cli("rewind", "0").exit_code == 4  # an ended session is not written
