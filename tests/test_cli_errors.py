"""The CLI as a new user meets it (issue 8, item 5): no traceback for any error, global options
before or after the command, errors naming the option typed, databases never created by a
typo, ghosts/prune listing before deleting, a vanished current session, ids that never wrap,
``serve`` announcing its URL only once listening, the aria-session aliases.

Every command of the Typer app is driven with a missing database, a bad URL and bad input
(the tables below must name every command: a new one fails the test until it is added).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.main
from typer.testing import CliRunner, Result

from clitools import Invoke, as_json, isolate_user, load_openclaw_builder, make_invoke
from sessionkeeper.cli import app

build = load_openclaw_builder()


@pytest.fixture
def user_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return isolate_user(tmp_path, monkeypatch)


@pytest.fixture
def cli(file_db_url: str, user_env: dict[str, str]) -> Invoke:
    invoke = make_invoke(file_db_url)
    as_json(invoke("db", "upgrade", "--json"))
    return invoke


def leaf_commands() -> list[str]:
    def walk(command: Any, path: list[str]) -> Iterator[str]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk(sub, [*path, name])
        else:
            yield " ".join(path)

    return list(walk(typer.main.get_command(app), []))


def run(argv: list[str], input: str | None = None) -> Result:
    return CliRunner().invoke(app, argv, input=input)


def assert_clean(result: Result, argv: list[str]) -> None:
    """No traceback, nothing unexpected: an exit code and at most one line saying why."""
    shown = result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        argv,
        repr(result.exception),
        shown,
    )
    assert "Traceback" not in shown, (argv, shown)
    assert "(a bug:" not in result.stderr, (argv, result.stderr)
    if result.exit_code not in (0, 2) or result.stderr.startswith("error:"):
        lines = result.stderr.strip().splitlines()
        assert len(lines) <= 1, (argv, result.stderr)


# ── every command: a missing database, a bad URL, bad input ──────────────────────

FS = ["fs", "--root", "{root}"]
# A valid call of each command (the database, when one is needed, is given separately).
COMMANDS: dict[str, list[str]] = {
    "new": ["new"],
    "current": ["current"],
    "switch": ["switch", "{sid}"],
    "list": ["list"],
    "show": ["show", "{sid}"],
    "add": ["add", "user", "hello"],
    "ask": ["ask", "hello"],
    "chat": ["chat", "--new"],
    "pop": ["pop", "{sid}"],
    "rename": ["rename", "{sid}", "A title"],
    "end": ["end", "{sid}"],
    "reopen": ["reopen", "{sid}"],
    "delete": ["delete", "{sid}", "--yes"],
    "search": ["search", "hello"],
    "stats": ["stats"],
    "ghosts": ["ghosts", "--yes"],
    "prune": ["prune", "--yes"],
    "serve": ["serve", "--port", "1"],
    "export": ["export", "--all", "-o", "{tmp}/out.jsonl"],
    "import": ["import", "{export}"],
    "db upgrade": ["db", "upgrade"],
    "db vacuum": ["db", "vacuum"],
    "fs list": [*FS, "list"],
    "fs delete": [*FS, "delete", "cron-old-1"],
    "fs cleanup-after-delegation": [*FS, "cleanup-after-delegation", "sub-fresh-1"],
    "fs prune": [*FS, "prune"],
    "fs stats": [*FS, "stats"],
    "fs orphans": [*FS, "orphans"],
    "skill": ["skill", "session_manager", "list_sessions", "{}", "--root", "{root}"],
    "keys create": ["keys", "create", "--admin"],
    "keys list": ["keys", "list"],
    "keys revoke": ["keys", "revoke", "nokey"],
    "policy set": ["policy", "set", "--agent", "A", "--delete-after", "30d"],
    "policy list": ["policy", "list"],
    "policy delete": ["policy", "delete", "--agent", "nopolicy"],
    "policy run": ["policy", "run", "--dry-run"],
    "forget-user": ["forget-user", "u1", "--yes"],
    "fork": ["fork", "{sid}"],
    "rewind": ["rewind", "0", "--session", "{sid}"],
    "branches": ["branches", "{sid}"],
    "compact": ["compact", "{sid}", "-m", "echo"],
    "usage": ["usage", "{sid}"],
    "mcp": ["mcp"],
}
# Commands that store something create a missing SQLite file and its directory; the others
# create nothing (README, "Database URLs").
CREATORS = {"new", "add", "ask", "chat", "import", "keys create", "db upgrade", "serve"}
NO_DATABASE = {"fs list", "fs stats", "fs orphans"}  # filesystem only

# Bad input for each command, on a database that exists: (argv, exit code, text in the error).
BAD: dict[str, tuple[list[str], int, str | None]] = {
    "new": (["new", "--agent", "bad agent!"], 2, "invalid --agent 'bad agent!'"),
    "current": (["current"], 3, "no current session"),
    "switch": (["switch", "bad id!"], 2, "invalid session id"),
    "list": (["list", "--limit", "1000"], 2, "--limit must be"),
    "show": (["show", "nope"], 3, "session 'nope' not found"),
    "add": (["add", "wizard", "hi"], 2, "invalid role 'wizard'"),
    "ask": (["ask", "   "], 2, "must not be empty"),
    "chat": (["chat", "--new", "-c"], 2, "--continue and --new cannot be used together"),
    "pop": (["pop", "nope"], 3, "session 'nope' not found"),
    "rename": (["rename", "nope", "T"], 3, "session 'nope' not found"),
    "reopen": (["reopen", "bad id!"], 2, "invalid session id"),
    "end": (["end", "bad id!"], 2, "invalid session id"),
    "delete": (["delete", "nope", "--yes"], 3, "not found"),
    "search": (["search", "hello", "--limit", "0"], 2, "--limit must be"),
    "stats": (["stats", "--stale-days", "1e9"], 2, "--stale-days must be"),
    "ghosts": (["ghosts", "--older-than-minutes", "inf"], 2, "--older-than-minutes must be"),
    "prune": (["prune", "--max-age-minutes", "0"], 2, "--max-age-minutes must be a positive"),
    "serve": (["serve", "--port", "70000"], 2, "--port must be"),
    "export": (["export", "--format", "pdf"], 2, "unknown export format 'pdf'"),
    "import": (["import", "{tmp}/nope.jsonl"], 3, "no such file"),
    "db upgrade": (["db", "upgrade", "extra"], 2, None),
    "db vacuum": (["db", "vacuum", "--nope"], 2, None),
    "fs list": ([*FS, "list", "--agent", "../x"], 2, "not a plain file name"),
    "fs delete": ([*FS, "delete", "../../etc/passwd"], 2, "not a plain file name"),
    "fs cleanup-after-delegation": ([*FS, "cleanup-after-delegation", "nope-1"], 3, "not found"),
    "fs prune": ([*FS, "prune", "--max-age-minutes", "-1"], 2, "--max-age-minutes must be"),
    "fs stats": ([*FS, "stats", "--stale-minutes", "nan"], 2, "--stale-minutes must be"),
    "fs orphans": ([*FS, "orphans", "--nope"], 2, None),
    "skill": (
        ["skill", "session_manager", "nope", "{}", "--root", "{root}"],
        2,
        "unknown function",
    ),
    "keys create": (["keys", "create"], 2, "either --admin or scoped"),
    "keys list": (["keys", "list", "--nope"], 2, None),
    "keys revoke": (["keys", "revoke", "nokey"], 3, "no active API key"),
    "policy set": (
        ["policy", "set", "--agent", "A", "--delete-after", "36h"],
        2,
        "--delete-after must be a whole number of days",
    ),
    "policy list": (["policy", "list", "--nope"], 2, None),
    "policy delete": (["policy", "delete", "--agent", "A"], 3, "no retention policy"),
    "policy run": (["policy", "run", "--nope"], 2, None),
    "forget-user": (["forget-user", "u1", "--agent", "bad agent!", "--yes"], 2, "bad agent!"),
    "fork": (["fork", "{sid}", "--at", "-1"], 2, "--at must be an integer"),
    "rewind": (["rewind", "ten"], 2, None),
    "branches": (["branches", "nope"], 3, "session 'nope' not found"),
    "compact": (["compact", "{sid}", "--keep", "-1"], 2, None),
    "usage": (["usage", "nope"], 3, "session 'nope' not found"),
    "mcp": (["mcp", "--nope"], 2, None),
}


def test_the_tables_name_every_command() -> None:
    assert sorted(COMMANDS) == sorted(leaf_commands())
    assert sorted(BAD) == sorted(leaf_commands())


@pytest.fixture
def workspace(
    tmp_path: Path, user_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    """An OpenClaw tree, a small export file, and serve that never really listens."""
    import sessionkeeper.cli.serving as serving

    root = tmp_path / "agents"
    build.build_tree(root, time.time())
    export = tmp_path / "one.jsonl"
    export.write_text(
        json.dumps(
            {"type": "session", "session_id": "imported-1", "created_at": "2025-01-01T00:00:00Z"}
        )
        + "\n"
        + json.dumps({"type": "message", "seq": 1, "role": "user", "content": "hello"})
        + "\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(serving.AnnouncingServer, "run", lambda self, sockets=None: None)
    # uvicorn's Config installs logging handlers on the stderr of the moment (here, one
    # CliRunner invocation's): not in these in-process runs.
    monkeypatch.setattr(serving.uvicorn.Config, "configure_logging", lambda self: None)
    return {"root": str(root), "export": str(export), "tmp": str(tmp_path), "sid": "s-1"}


def fill(argv: list[str], values: dict[str, str]) -> list[str]:
    filled = []
    for arg in argv:
        for name, value in values.items():
            arg = arg.replace("{" + name + "}", value)
        filled.append(arg)
    return filled


def with_db(argv: list[str], url: str, where: str) -> list[str]:
    return ["--db", url, *argv] if where == "before" else [*argv, "--db", url]


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_missing_sqlite_file_is_refused_unless_the_command_creates_stores(
    command: str, where: str, workspace: dict[str, str], tmp_path: Path
) -> None:
    missing = tmp_path / "missing.db"
    argv = with_db(fill(COMMANDS[command], workspace), f"sqlite:///{missing}", where)
    result = run(argv)
    assert_clean(result, argv)
    if command in CREATORS:
        assert result.exit_code == 0, (argv, result.stdout, result.stderr)
        assert missing.is_file() or command == "serve" and result.exit_code == 0
    elif command in NO_DATABASE:
        assert result.exit_code == 0, (argv, result.stderr)
        assert not missing.exists()
    else:
        assert not missing.exists(), argv
        if command == "skill":  # the skill runner answers in JSON, as run_skill.py did
            assert result.exit_code == 3 and "no database at" in json.loads(result.stdout)["error"]
        else:
            assert result.exit_code == 3, (argv, result.stdout, result.stderr)
            assert result.stderr.startswith(f"error: --db: no database at {missing};")


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_missing_directory_is_created_only_by_commands_that_store(
    command: str, workspace: dict[str, str], tmp_path: Path
) -> None:
    database = tmp_path / "nodir" / "deeper" / "x.db"
    argv = with_db(fill(COMMANDS[command], workspace), f"sqlite:///{database}", "before")
    result = run(argv)
    assert_clean(result, argv)
    if command in NO_DATABASE:
        assert result.exit_code == 0
        assert not (tmp_path / "nodir").exists(), argv
    elif command in CREATORS:
        assert result.exit_code == 0, (argv, result.stdout, result.stderr)
        assert database.is_file() or command == "serve", argv  # serve does not run here
    else:
        assert not (tmp_path / "nodir").exists(), argv
        assert result.exit_code == 3, (argv, result.stdout, result.stderr)
        assert "no database at" in (result.stderr or result.stdout)


BAD_URLS = ["mysql://h/db", "not-a-url", "sqlite:///x.db?foo=1"]


@pytest.mark.parametrize("url", BAD_URLS)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_database_url(command: str, url: str, workspace: dict[str, str]) -> None:
    argv = with_db(fill(COMMANDS[command], workspace), url, "after")
    result = run(argv)
    assert_clean(result, argv)
    if command in NO_DATABASE:
        assert result.exit_code == 0
        return
    assert result.exit_code == 2, (argv, result.stdout, result.stderr)
    message = result.stderr if command != "skill" else json.loads(result.stdout)["error"]
    assert "--db" in message, message


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_database_that_does_not_answer(command: str, workspace: dict[str, str]) -> None:
    """Nothing listens on port 9: every database command is 'unavailable' (exit 6)."""
    url = "postgresql://nobody:hunter2@127.0.0.1:9/none"
    argv = with_db(fill(COMMANDS[command], workspace), url, "before")
    result = run(argv)
    assert_clean(result, argv)
    assert "hunter2" not in result.stdout + result.stderr
    if command == "current":  # nothing remembered for it: said before any connection
        assert result.exit_code == 3 and "no current session" in result.stderr
    elif command in NO_DATABASE or command == "skill":
        assert result.exit_code == 0, (argv, result.stderr)
    elif command.startswith("fs "):
        # The two-layer delete: the files are done, the database part is best effort and
        # says it failed (the seed skill's contract).
        assert result.exit_code == 0, (argv, result.stderr)
        assert "DB not updated" in result.stdout or "DB update failed" in result.stdout
    else:
        assert result.exit_code == 6, (argv, result.stdout, result.stderr)


@pytest.mark.parametrize("command", sorted(BAD))
def test_bad_input(command: str, cli: Invoke, workspace: dict[str, str], file_db_url: str) -> None:
    argv, code, text = BAD[command]
    argv = fill(argv, workspace)
    result = cli(*argv)
    assert_clean(result, argv)
    assert result.exit_code == code, (argv, result.stdout, result.stderr)
    if text is not None:
        message = result.stderr if command != "skill" else json.loads(result.stdout)["error"]
        assert text in message, (argv, message)


def test_postgres_database_that_does_not_exist(user_env: dict[str, str]) -> None:
    pytest.importorskip("asyncpg")
    admin_url = os.environ.get(
        "SESSIONKEEPER_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
    )
    url = admin_url.rsplit("/", 1)[0] + "/sk_no_such_database"
    for argv in (["--db", url, "list"], ["list", "--db", url], ["--db", url, "new"]):
        result = run(argv)
        assert_clean(result, argv)
        assert result.exit_code == 6, (argv, result.stderr)
        assert "sk_no_such_database" in result.stderr


# ── options name what was typed ─────────────────────────────────────────────────


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["prune", "--max-age-minutes", "0"], "--max-age-minutes must be a positive number"),
        (["prune", "--days", "0"], "--days must be a positive number"),
        (["prune", "--days", "nan"], "--days must be"),
        (["ghosts", "--older-than-minutes", "-5"], "--older-than-minutes must be"),
        (["list", "-n", "1000"], "--limit must be an integer from 1 to 100"),
        (["list", "--offset", "9223372036854775808"], "--offset must be an integer"),
        (["list", "--sort", "nope"], "invalid --sort 'nope'"),
        (["list", "--agent", "bad agent!"], "invalid --agent 'bad agent!'"),
        (["new", "--type", "bad type!"], "invalid --type 'bad type!'"),
        (["stats", "--ghost-minutes", "inf"], "--ghost-minutes must be"),
        (["search", "x", "--session", "bad id!"], "invalid session id 'bad id!'"),
        (["show", "--last", "0"], None),
    ],
)
def test_errors_name_the_option_typed(cli: Invoke, argv: list[str], expected: str | None) -> None:
    if argv[0] == "show":
        as_json(cli("new", "--json"))
        expected = "--last must be"
    result = cli(*argv)
    assert result.exit_code == 2, (argv, result.stderr)
    assert result.stderr.startswith(f"error: {expected}") or expected in result.stderr, (
        result.stderr
    )
    shown = cli("--json", *argv)
    assert expected in json.loads(shown.stdout)["error"]["message"]


# ── global options anywhere ───────────────────────────────────────────────────


def test_global_options_before_or_after_the_command(cli: Invoke, file_db_url: str) -> None:
    sid = as_json(cli("new", "--json", "--db", file_db_url, db=None))["session_id"]
    for argv in (
        ["--db", file_db_url, "--json", "list"],
        ["--json", "list", "--db", file_db_url],
        ["list", "--db", file_db_url, "--json"],
        ["--db", file_db_url, "list", "--json"],
    ):
        listed = as_json(cli(*argv, db=None))
        assert [s["session_id"] for s in listed["sessions"]] == [sid], argv
    assert as_json(cli("--json", "show", sid))["session"]["session_id"] == sid
    failed = cli("--json", "show", "nope")
    assert failed.exit_code == 3
    assert json.loads(failed.stdout)["error"]["code"] == "not_found"
    # The last --db wins; fs takes it after its subcommand too.
    assert as_json(cli("--db", "sqlite:///elsewhere.db", "list", "--db", file_db_url, "--json"))
    assert "--db URL" in cli("list", "--help").stdout


# ── aliases ───────────────────────────────────────────────────────────────────


def test_aria_session_aliases(cli: Invoke) -> None:
    sid = as_json(cli("new", "--json"))["session_id"]
    as_json(cli("add", "user", "What is 2+2?", "--json"))
    assert cli("cur").stdout.strip() == sid
    assert as_json(cli("cur", "--json")) == as_json(cli("current", "--json"))
    assert as_json(cli("ls", "--json")) == as_json(cli("list", "--json"))
    viewed, shown = as_json(cli("view", "--json")), as_json(cli("show", "--json"))
    for answer in (viewed, shown):  # the time each priced the usage is its own
        answer["usage"].pop("priced_at")
    assert viewed == shown
    assert "What is 2+2?" in cli("view").stdout
    assert "alias: cur" in cli("current", "--help").stdout


# ── a current session that no longer exists ──────────────────────────────────


def _stale(cli: Invoke, file_db_url: str) -> str:
    """A current session that was deleted behind the CLI's back."""
    import asyncio

    from sessionkeeper.store.core import Store

    sid: str = as_json(cli("new", "--json"))["session_id"]

    async def drop() -> None:
        store = await Store.open(file_db_url)
        try:
            await store.delete_session(sid)
        finally:
            await store.close()

    asyncio.run(drop())
    return sid


@pytest.mark.parametrize("argv", [["show"], ["current"], ["end"], ["export"]])
def test_vanished_current_session_is_explained(
    cli: Invoke, file_db_url: str, argv: list[str]
) -> None:
    sid = _stale(cli, file_db_url)
    result = cli(*argv)
    assert result.exit_code == 3, (argv, result.stderr)
    assert result.stderr.startswith(f"error: the current session {sid} no longer exists")
    assert "sessionkeeper new" in result.stderr and "`sessionkeeper add`" in result.stderr
    assert "no current session" in cli(*argv).stderr  # reported once, then forgotten


def test_add_and_ask_start_a_new_session_when_the_current_one_vanished(
    cli: Invoke, file_db_url: str
) -> None:
    old = _stale(cli, file_db_url)
    added = cli("add", "user", "still there?")
    assert added.exit_code == 0, added.stderr
    assert f"the current session {old} no longer exists; started a new one" in added.stdout
    new = as_json(cli("current", "--json"))["session_id"]
    assert new != old and as_json(cli("show", "--json"))["messages"][0]["content"] == (
        "still there?"
    )

    old = _stale(cli, file_db_url)
    asked = cli("ask", "hello again", "--json")
    assert asked.exit_code == 0, asked.stderr
    data = json.loads(asked.stdout)
    assert data["created"] is True and data["session_id"] != old
    assert f"the current session {old} no longer exists" in asked.stderr
    assert as_json(cli("current", "--json"))["session_id"] == data["session_id"]


# ── SQLite files: only the creating commands create them, never directories ────


def test_databases_are_created_by_commands_that_store(
    user_env: dict[str, str], tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    assert run(["--db", url, "list"]).exit_code == 3
    assert not (tmp_path / "fresh.db").exists()
    assert run(["--db", url, "new"]).exit_code == 0
    assert (tmp_path / "fresh.db").is_file()
    assert run(["--db", url, "list"]).exit_code == 0
    upgraded = tmp_path / "upgraded.db"
    assert run(["db", "upgrade", "--db", f"sqlite:///{upgraded}"]).exit_code == 0
    assert upgraded.is_file()
    deep = tmp_path / "a" / "b" / "c.db"
    refused = run(["--db", f"sqlite:///{deep}", "stats"])
    assert refused.exit_code == 3 and f"no database at {deep}" in refused.stderr
    assert not (tmp_path / "a").exists()
    assert run(["--db", f"sqlite:///{deep}", "db", "upgrade"]).exit_code == 0
    assert deep.is_file()  # with its directories, as Store.open makes them
    # Bad input to a command that stores is refused before anything is made.
    typo = tmp_path / "typo-dir" / "x.db"
    for argv in (
        ["add", "wizard", "hi"],
        ["ask", "  "],
        ["ask", "hi", "--system", " "],
        ["chat", "--new", "-c"],
        ["keys", "create"],
        ["new", "--agent", "bad agent!"],
    ):
        result = run(["--db", f"sqlite:///{typo}", *argv])
        assert result.exit_code == 2, (argv, result.stderr)
        assert not typo.parent.exists(), argv
    # ?mode=rw and ?mode=ro open only what exists, even for a command that stores.
    rw = tmp_path / "rw.db"
    refused = run(["--db", f"sqlite:///{rw}?mode=rw", "new"])
    assert refused.exit_code == 3 and f"no database at {rw}" in refused.stderr
    assert not rw.exists()
    # A file where the directory should be: one clear line, nothing made.
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = run(["--db", f"sqlite:///{blocker / 'x.db'}", "new"])
    assert_clean(result, ["new"])
    assert result.exit_code == 2 and f"{blocker} is not a directory" in result.stderr
    assert blocker.is_file()
    # The environment variable is held to the same rule, and named in the message.
    os.environ["SESSIONKEEPER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'typo.db'}"
    try:
        result = run(["list"])
    finally:
        del os.environ["SESSIONKEEPER_DATABASE_URL"]
    assert result.exit_code == 3 and "$SESSIONKEEPER_DATABASE_URL" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_default_database_follows_the_same_rule(user_env: dict[str, str]) -> None:
    """Nothing configured: the SQLite file in the user data dir is made by the first command
    that stores something, with its directory; reading commands before it create nothing."""
    data_dir = Path(user_env["XDG_DATA_HOME"]) / "sessionkeeper"
    listed = run(["list", "--json"])
    assert listed.exit_code == 3, listed.stderr
    assert f"no database at {data_dir / 'sessionkeeper.db'} yet" in listed.stderr
    assert not data_dir.exists()
    assert run(["new"]).exit_code == 0
    assert (data_dir / "sessionkeeper.db").is_file()
    assert run(["list", "--json"]).exit_code == 0


# ── ghosts and prune: list, then ask ─────────────────────────────────────────


def test_ghosts_dry_run_lists_and_asks_before_deleting(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sessionkeeper.cli import common

    ghost = as_json(cli("new", "--title", "empty one", "--json"))["session_id"]
    kept = as_json(cli("new", "--title", "has messages", "--json"))["session_id"]
    as_json(cli("add", "user", "hi", "--json"))
    time.sleep(0.05)

    dry = as_json(cli("ghosts", "--older-than-minutes", "0", "--dry-run", "--json"))
    assert (dry["deleted"], dry["would_delete"], dry["dry_run"]) == (0, 1, True)
    assert dry["older_than_minutes"] == 0 and dry["status"] == "ok"
    (listed,) = dry["sessions"]
    assert (listed["session_id"], listed["title"]) == (ghost, "empty one")
    assert listed["age_minutes"] >= 0
    human = cli("ghosts", "--older-than-minutes", "0", "--dry-run")
    assert ghost in human.stdout and "empty one" in human.stdout and kept not in human.stdout
    assert "Would delete 1 ghost session" in human.stdout

    # No terminal and no --yes: refused, nothing deleted.
    refused = cli("ghosts", "--older-than-minutes", "0")
    assert refused.exit_code == 2 and "add --yes" in refused.stderr
    assert ghost in {s["session_id"] for s in as_json(cli("list", "--json"))["sessions"]}

    # A terminal: the list, then the question; "n" keeps everything.
    monkeypatch.setattr(common, "interactive", lambda: True)
    declined = cli("ghosts", "--older-than-minutes", "0", input="n\n")
    assert declined.exit_code == 1 and ghost in declined.stdout
    assert "Delete 1 ghost session?" in declined.stderr
    assert as_json(cli("list", "--json"))["total"] == 2
    accepted = cli("ghosts", "--older-than-minutes", "0", input="y\n")
    assert accepted.exit_code == 0, (accepted.stdout, accepted.stderr)
    assert "Deleted 1 ghost session" in accepted.stdout
    assert [s["session_id"] for s in as_json(cli("list", "--json"))["sessions"]] == [kept]
    # Nothing to delete: no question at all.
    none = cli("ghosts", "--older-than-minutes", "0", "--json")
    assert json.loads(none.stdout) == {
        "deleted": 0,
        "status": "ok",
        "older_than_minutes": 0,
        "dry_run": False,
    }


def test_ghosts_confirmed_deletes_only_what_was_listed(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ghost that comes of age while the question is open is not deleted with the others."""
    from sessionkeeper.cli import common

    first = as_json(cli("new", "--json"))["session_id"]
    time.sleep(1.2)
    second = as_json(cli("new", "--json"))["session_id"]
    monkeypatch.setattr(common, "interactive", lambda: True)

    def slow_yes(question: str, err: bool = False) -> bool:
        time.sleep(1.0)  # the user reads the list; `second` becomes a ghost meanwhile
        return True

    monkeypatch.setattr("typer.confirm", slow_yes)
    done = cli("ghosts", "--older-than-minutes", str(1 / 60), "--json")
    assert json.loads(done.stdout)["deleted"] == 1, done.stdout
    left = {s["session_id"] for s in as_json(cli("list", "--json"))["sessions"]}
    assert left == {second} and first not in left


def test_ghost_listing_leaves_out_langgraph_threads(cli: Invoke, file_db_url: str) -> None:
    """An empty session holding LangGraph checkpoints is not a ghost (the Store keeps it):
    the dry run does not list it either."""
    import asyncio

    from sessionkeeper.store.backends.frameworks.checkpoints_base import CheckpointRow
    from sessionkeeper.store.core import Store

    thread = as_json(cli("new", "--title", "graph thread", "--json"))["session_id"]
    ghost = as_json(cli("new", "--title", "plain ghost", "--json"))["session_id"]

    async def checkpoint() -> None:
        store = await Store.open(file_db_url)
        try:
            row = CheckpointRow(thread, "", "1", None, "json", b"{}", {}, {})
            await store.checkpoints.put(row, [])
        finally:
            await store.close()

    asyncio.run(checkpoint())
    time.sleep(0.05)
    dry = as_json(cli("ghosts", "--older-than-minutes", "0", "--dry-run", "--json"))
    assert [s["session_id"] for s in dry["sessions"]] == [ghost] and dry["would_delete"] == 1
    assert as_json(cli("ghosts", "--older-than-minutes", "0", "--yes", "--json"))["deleted"] == 1
    assert [s["session_id"] for s in as_json(cli("list", "--json"))["sessions"]] == [thread]


def test_prune_dry_run_lists_ids_titles_and_idle_times(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch, file_db_url: str
) -> None:
    from sessionkeeper.cli import common

    old = as_json(cli("new", "--title", "old talk", "--json"))["session_id"]
    as_json(cli("add", "user", "hello", "--json"))
    fresh = as_json(cli("new", "--title", "fresh", "--json"))["session_id"]
    _age(file_db_url, old, hours=2)  # not a sleep: a slow machine must not age "fresh" too
    hour = "60"

    dry = as_json(cli("prune", "--max-age-minutes", hour, "--dry-run", "--json"))
    assert dry["dry_run"] is True and dry["session_ids"] == [old]
    assert dry["pruned_count"] == 1 and dry["message_count"] == 1
    (listed,) = dry["sessions"]
    assert (listed["session_id"], listed["title"], listed["message_count"]) == (old, "old talk", 1)
    assert listed["idle_minutes"] > 0
    human = cli("prune", "--max-age-minutes", hour, "--dry-run")
    assert old in human.stdout and "old talk" in human.stdout and fresh not in human.stdout
    assert "Would prune 1 session (1 message)" in human.stdout

    refused = cli("prune", "--max-age-minutes", hour)
    assert refused.exit_code == 2 and "add --yes" in refused.stderr
    assert as_json(cli("list", "--json"))["total"] == 2

    monkeypatch.setattr(common, "interactive", lambda: True)
    assert cli("prune", "--max-age-minutes", hour, input="n\n").exit_code == 1
    assert as_json(cli("list", "--json"))["total"] == 2
    done = as_json(cli("prune", "--max-age-minutes", hour, "--yes", "--json"))
    assert done["session_ids"] == [old] and done["dry_run"] is False
    assert [s["session_id"] for s in as_json(cli("list", "--json"))["sessions"]] == [fresh]


def _age(url: str, session_id: str, *, hours: float) -> None:
    """Make a session look idle for ``hours`` (its updated_at and last_message_at)."""
    import asyncio
    from datetime import UTC, datetime, timedelta

    import rawdb
    from sessionkeeper.store.core import Store

    async def run() -> None:
        async with await Store.open(url) as store:
            then = rawdb.when(store, datetime.now(UTC) - timedelta(hours=hours))
            await rawdb.execute(
                store,
                "UPDATE sessions SET updated_at = ?, last_message_at = ? WHERE session_id = ?",
                then,
                then,
                session_id,
            )

    asyncio.run(run())


# ── ids never wrap ────────────────────────────────────────────────────────────


def _id_lines(text: str, ids: list[str]) -> None:
    for sid in ids:
        assert any(sid in line for line in text.splitlines()), (sid, text)


@pytest.mark.parametrize("columns", [80, 60, 40])
def test_ids_never_wrap_in_narrow_terminals(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, columns: int
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    ids = []
    for i in range(3):
        made = cli(
            "new",
            "--agent",
            f"a-rather-long-agent-name-{i}",
            "--title",
            f"A title that goes on and on, well past any terminal's width [{i}] " * 2,
            "--json",
        )
        ids.append(as_json(made)["session_id"])
        as_json(cli("add", "user", f"searchable words number {i} " * 20, "--json"))
    listed = cli("list")
    assert listed.exit_code == 0
    _id_lines(listed.stdout, ids)
    assert all(len(line) <= columns for line in listed.stdout.splitlines()), listed.stdout
    found = cli("search", "searchable")
    assert found.exit_code == 0
    _id_lines(found.stdout, ids)
    assert all(len(line) <= columns for line in found.stdout.splitlines()), found.stdout

    # An id wider than the terminal: printed whole, the table wider than the terminal.
    long_id = "a-session-id-that-is-longer-than-a-narrow-terminal-is-wide-" + "x" * 30
    as_json(cli("import", str(_one_session_file(tmp_path, long_id)), "--json"))
    _id_lines(cli("list").stdout, [*ids, long_id])

    root = tmp_path / "agents"
    build.build_tree(root, time.time())
    fs_listed = cli("fs", "--root", str(root), "list", db=None)
    assert fs_listed.exit_code == 0
    fs_ids = [
        s["sessionId"]
        for s in as_json(cli("fs", "--root", str(root), "list", "--json"))["sessions"]
    ]
    _id_lines(fs_listed.stdout, fs_ids)
    assert all(len(line) <= columns for line in fs_listed.stdout.splitlines()), fs_listed.stdout


def _one_session_file(tmp_path: Path, sid: str) -> Path:
    path = tmp_path / f"{sid[:10]}.jsonl"
    path.write_text(
        json.dumps({"type": "session", "session_id": sid, "created_at": "2025-01-01T00:00:00Z"})
        + "\n",
        encoding="utf-8",
    )
    return path


# ── serve announces its URL once listening ────────────────────────────────────


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve_env(user_env: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKEEPER_")}
    env.update(user_env)
    return env


def test_serve_announces_the_url_once_listening(user_env: dict[str, str], tmp_path: Path) -> None:
    port = _free_port()
    url = f"sqlite:///{tmp_path / 'served.db'}"
    cmd = [sys.executable, "-m", "sessionkeeper", "serve", "--port", str(port), "--db", url]
    proc = subprocess.Popen(
        cmd, env=_serve_env(user_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the announcement (or the end)
        assert line.strip() == f"sessionkeeper serving http://127.0.0.1:{port} (database: {url})"
        # Printed only once listening: the very first request after it is answered.
        with httpx.Client(trust_env=False, timeout=5) as http:
            assert http.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    finally:
        proc.terminate()
        proc.communicate(timeout=30)


def test_serve_on_a_busy_port_never_announces(user_env: dict[str, str], tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        url = f"sqlite:///{tmp_path / 'served.db'}"
        done = subprocess.run(
            [sys.executable, "-m", "sessionkeeper", "serve", "--port", str(port), "--db", url],
            env=_serve_env(user_env),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 6, (done.stdout, done.stderr)
    assert "serving" not in done.stdout
    assert "address already in use" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: could not start serving")
    assert "Traceback" not in done.stderr


def test_no_traceback_from_the_real_entry_point(user_env: dict[str, str], tmp_path: Path) -> None:
    """The installed ``sessionkeeper`` (Typer's own exception hook) for a few failures."""
    exe = str(Path(sys.executable).with_name("sessionkeeper"))
    env = _serve_env(user_env)
    for argv in (
        ["--db", "postgresql://nobody@127.0.0.1:9/none", "list"],
        ["list", "--db", f"sqlite:///{tmp_path / 'nope.db'}"],
        ["prune", "--max-age-minutes", "0"],
        ["export", "-o", str(tmp_path / "no" / "dir.jsonl"), "--all"],
    ):
        done = subprocess.run([exe, *argv], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode != 0, argv
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, (
            argv,
            done.stderr,
        )
        assert re.match(r"error: ", done.stderr), done.stderr
