"""The command line: JSON shapes, exit codes, current-session memory, fs commands,
import/export, serve, startup imports (the skill runner is in test_skill.py).

Most tests use Typer's CliRunner on SQLite AND PostgreSQL; the memory test runs real,
separate processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from clitools import Invoke, as_json, isolate_user, load_openclaw_builder, make_invoke
from fakellm import run_fake_llm
from sessionkeeper.cli import app
from sessionkeeper.models import MAX_MESSAGE_LENGTH, SESSION_FIELDS
from sessionkeeper.openclaw.directory import OpenClawStore

build = load_openclaw_builder()


@pytest.fixture
def user_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return isolate_user(tmp_path, monkeypatch)


@pytest.fixture
def cli(file_db_url: str, user_env: dict[str, str]) -> Invoke:
    # Every invocation opens its own Store: the database must outlive one (no in-memory).
    invoke = make_invoke(file_db_url)
    as_json(invoke("db", "upgrade", "--json"))  # commands other than new/import/serve need it
    return invoke


# ── the new-user flow, one process per command ─────────────────────────────────


def test_memory_between_separate_processes(user_env: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKEEPER_")}
    env.update(user_env)
    exe = [str(Path(sys.executable).with_name("sessionkeeper"))]
    module = [sys.executable, "-m", "sessionkeeper"]

    def run(*args: str, entry: list[str] = module) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([*entry, *args], env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done

    first = json.loads(run("new", "--json", entry=exe).stdout)["session_id"]
    run("add", "user", "hi")
    asked = json.loads(run("ask", "what did I say?", "--json").stdout)
    assert asked["session_id"] == first and asked["echo"] is True
    assert "what did I say?" in asked["assistant"]["content"]
    shown = json.loads(run("show", "--json").stdout)
    assert [(m["role"], m["content"][:15]) for m in shown["messages"]] == [
        ("user", "hi"),
        ("user", "what did I say?"),
        ("assistant", "[echo model — n"),
    ]
    assert shown["messages"][2]["model"] == "echo"
    listed = json.loads(run("list", "--json").stdout)
    assert listed["current"] == first and listed["total"] == 1

    second = json.loads(run("new", "--json").stdout)["session_id"]
    assert second != first
    assert run("current").stdout.strip() == second
    assert json.loads(run("show", "--json").stdout)["messages"] == []

    run("switch", first)
    assert run("current", entry=exe).stdout.strip() == first
    again = json.loads(run("show", "--json").stdout)
    assert again["session"]["session_id"] == first
    assert [m["content"] for m in again["messages"]][:2] == ["hi", "what did I say?"]
    # The human output of show is the conversation.
    human = run("show").stdout
    assert "hi" in human and "what did I say?" in human
    # The default database is a SQLite file in the user's data dir, beside the memory.
    data_dir = Path(user_env["XDG_DATA_HOME"]) / "sessionkeeper"
    assert (data_dir / "sessionkeeper.db").is_file()
    assert (data_dir / "state.json").is_file()


def test_state_and_config_agree_on_the_data_dir(user_env: dict[str, str]) -> None:
    from sessionkeeper.cli import state
    from sessionkeeper.config import default_data_dir

    assert state.data_dir() == default_data_dir()


def test_memory_is_per_database_and_hides_passwords(tmp_path: Path) -> None:
    from sessionkeeper.cli.state import CurrentSession, database_key

    memory = CurrentSession(tmp_path / "state.json")
    memory.set("sqlite:///a.db", "one")
    memory.set("postgresql://u:secret@h/db", "two")
    assert memory.get(f"sqlite:///{Path.cwd() / 'a.db'}") == "one"
    assert memory.get("postgresql://u:secret@h/db") == "two"
    assert "secret" not in (tmp_path / "state.json").read_text()
    assert database_key("postgresql+asyncpg://u:p@h:5/d") == "postgresql+asyncpg://u@h:5/d"
    assert memory.clear("sqlite:///a.db", "other") is False
    assert memory.clear("sqlite:///a.db") is True and memory.get("sqlite:///a.db") is None
    (tmp_path / "state.json").write_text("{garbage")
    assert memory.get("postgresql://u:secret@h/db") is None  # damaged file: no current session


# ── JSON shapes ───────────────────────────────────────────────────────────────

SESSION_KEYS = list(SESSION_FIELDS)
MESSAGE_KEYS = [
    "session_id",
    "seq",
    "role",
    "content",
    "agent_id",
    "model",
    "token_count",
    "metadata",
    "created_at",
    "usage",  # issue 19: what producing it cost (null: none recorded)
]


def test_json_shapes(cli: Invoke) -> None:
    made = as_json(cli("new", "--agent", "analyst", "--title", "T [x]", "--type", "cron", "--json"))
    assert list(made) == SESSION_KEYS
    assert (made["agent_id"], made["title"], made["session_type"]) == ("analyst", "T [x]", "cron")
    sid = made["session_id"]
    added = as_json(cli("add", "user", "hello there", "--json"))
    assert list(added) == MESSAGE_KEYS and added["seq"] == 1
    as_json(cli("add", "assistant", "general kenobi", "--model", "m", "--json"))

    listed = as_json(cli("list", "--json"))
    assert list(listed) == [
        "sessions",
        "total",
        "limit",
        "offset",
        "has_more",
        "next_cursor",
        "current",
    ]
    assert listed["total"] == 1 and listed["current"] == sid
    assert list(listed["sessions"][0]) == SESSION_KEYS
    assert listed["sessions"][0]["message_count"] == 2

    shown = as_json(cli("show", "--json"))
    assert list(shown) == ["session", "messages", "usage", "compaction"]
    assert [m["content"] for m in shown["messages"]] == ["hello there", "general kenobi"]
    assert [
        m["content"] for m in as_json(cli("show", sid, "--last", "1", "--json"))["messages"]
    ] == ["general kenobi"]

    stats = as_json(cli("stats", "--json"))
    assert (stats["total_sessions"], stats["total_messages"]) == (1, 2)
    assert stats["by_agent"] == {"analyst": 1} and stats["by_type"] == {"cron": 1}

    found = as_json(cli("search", "kenobi", "--json"))
    assert found["query"] == "kenobi" and found["hits"][0]["session_id"] == sid

    ended = as_json(cli("end", "--json"))
    assert ended["status"] == "ended" and ended["ended_at"]
    assert as_json(cli("ghosts", "--older-than-minutes", "0", "--json")) == {
        "deleted": 0,
        "status": "ok",
        "older_than_minutes": 0,
        "dry_run": False,
    }
    pruned = as_json(cli("prune", "--max-age-minutes", "1", "--dry-run", "--json"))
    assert pruned["dry_run"] is True and pruned["pruned_count"] == 0
    assert as_json(cli("delete", sid, "--yes", "--json")) == {"deleted": sid}
    assert as_json(cli("list", "--json"))["total"] == 0


def test_list_paging_and_filters(cli: Invoke) -> None:
    for i in range(5):
        as_json(cli("new", "--agent", "a" if i % 2 else "b", "--json"))
    page = as_json(cli("list", "--limit", "2", "--json"))
    assert len(page["sessions"]) == 2 and page["has_more"] and page["next_cursor"]
    rest = as_json(cli("list", "--limit", "3", "--cursor", page["next_cursor"], "--json"))
    seen = [s["session_id"] for s in page["sessions"] + rest["sessions"]]
    assert len(set(seen)) == 5
    assert as_json(cli("list", "--agent", "a", "--json"))["total"] == 2
    assert as_json(cli("list", "--offset", "4", "--json"))["sessions"][0]["session_id"] == seen[4]
    human = cli("list")
    assert human.exit_code == 0 and "Sessions" in human.stdout and "of 5" in human.stdout


# ── errors and exit codes ─────────────────────────────────────────────────────


def test_exit_codes(cli: Invoke) -> None:
    missing = cli("show", "nope")
    assert missing.exit_code == 3
    assert missing.stderr.strip() == "error: session 'nope' not found"
    assert "Traceback" not in missing.stderr + missing.stdout
    assert cli("current").exit_code == 3  # no current session yet
    assert cli("switch", "nope").exit_code == 3

    bad_role = cli("add", "wizard", "hi", "--json")
    assert bad_role.exit_code == 2
    assert json.loads(bad_role.stdout)["error"]["code"] == "invalid_input"
    assert cli("list", "--limit", "1000").exit_code == 2
    assert cli("list", "--no-such-option").exit_code == 2  # usage error
    assert cli("prune", "--days", "1", "--max-age-minutes", "5").exit_code == 2
    assert cli("new", "--agent", "bad agent!").exit_code == 2

    # Too large: refused as a whole, nothing stored (not even a session for it).
    huge = "x" * (MAX_MESSAGE_LENGTH + 1)
    refused = cli("add", "user", huge)
    assert refused.exit_code == 5 and "100,000" in refused.stderr
    assert as_json(cli("list", "--json"))["total"] == 0
    sid = as_json(cli("new", "--json"))["session_id"]
    assert cli("add", "user", huge).exit_code == 5
    assert cli("add", "user", "x" * MAX_MESSAGE_LENGTH).exit_code == 0  # the limit itself is fine
    assert cli("ask", huge).exit_code == 5
    assert as_json(cli("show", "--json"))["session"]["message_count"] == 1
    assert cli("add", "user", "via stdin", "-", input="piped\ntext").exit_code != 0  # 3 args

    as_json(cli("end", sid, "--json"))
    assert cli("ask", "hello?").exit_code == 4  # the session has ended: Conflict

    assert cli("delete", "nope", "--yes").exit_code == 3
    assert cli("delete", sid).exit_code == 2  # no TTY and no --yes: refused
    assert cli("export", "--format", "pdf").exit_code == 2


def test_unreachable_database_is_exit_6(user_env: dict[str, str]) -> None:
    url = "postgresql://nobody:hunter2@127.0.0.1:9/none"  # nothing listens on port 9
    result = CliRunner().invoke(app, ["--db", url, "list"])
    assert result.exit_code == 6
    # One line naming what failed, with the driver's reason; never the password.
    assert result.stderr.startswith("error: cannot reach PostgreSQL: "), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "hunter2" not in result.stderr + result.stdout


def test_add_reads_stdin_and_creates_a_session(cli: Invoke) -> None:
    added = as_json(cli("add", "user", "-", "--json", input="line one\nline two\n"))
    assert added["content"] == "line one\nline two\n"
    assert as_json(cli("current", "--json"))["session_id"] == added["session_id"]


def test_ask_sends_the_window_in_openai_format(
    cli: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    with run_fake_llm(reply="Paris, of course.") as fake:
        monkeypatch.setenv("SESSIONKEEPER_LLM_BASE_URL", fake.base_url)
        monkeypatch.setenv("SESSIONKEEPER_LLM_MODEL", "fake-model")
        as_json(cli("new", "--json"))
        as_json(cli("add", "system", "You are terse.", "--json"))
        as_json(cli("add", "user", "Capital of France?", "--json"))
        as_json(cli("add", "assistant", "Paris.", "--json"))
        human = cli("ask", "Are you sure?")
        assert human.exit_code == 0, human.stderr
        assert human.stdout == "Paris, of course.\n"
        assert fake.requests[-1]["model"] == "fake-model"
        assert fake.requests[-1]["messages"] == [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": "Capital of France?"},
            {"role": "assistant", "content": "Paris."},
            {"role": "user", "content": "Are you sure?"},
        ]
        messages = as_json(cli("show", "--json"))["messages"]
        assert [(m["role"], m["content"], m["model"]) for m in messages[-2:]] == [
            ("user", "Are you sure?", None),
            ("assistant", "Paris, of course.", "fake-model"),
        ]
        # A model failure: exit code 6, one red line; the user turn is taken back, so the
        # next ask does not send two user turns in a row.
        fake.options.fail_status = 503
        failed = cli("ask", "Again?")
        assert failed.exit_code == 6 and "503" in failed.stderr
        assert "your message was not kept" in failed.stderr
        assert as_json(cli("show", "--json"))["messages"][-1]["content"] == "Paris, of course."


def test_db_upgrade(cli: Invoke) -> None:
    from sessionkeeper.store.schema import SCHEMA_REVISION

    first = as_json(cli("db", "upgrade", "--json"))
    assert first["after"] == SCHEMA_REVISION
    second = as_json(cli("db", "upgrade", "--json"))
    assert (second["before"], second["after"], second["changed"]) == (
        SCHEMA_REVISION,
        SCHEMA_REVISION,
        False,
    )
    from sessionkeeper.store.url import masked

    assert masked("postgresql://u:pw@h:5432/d") == "postgresql://u:***@h:5432/d"
    assert masked("sqlite:///x.db") == "sqlite:///x.db"


def test_serve_passes_settings(
    cli: Invoke, file_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sessionkeeper.cli.serving as serving

    seen: list[Any] = []
    monkeypatch.setattr(serving, "run_server", seen.append)
    result = cli("serve", "--host", "0.0.0.0", "--port", "8123")
    assert result.exit_code == 0, result.stderr
    (settings,) = seen
    assert (settings.host, settings.port, settings.database_url) == ("0.0.0.0", 8123, file_db_url)
    other = f"{file_db_url}-other" if file_db_url.startswith("sqlite") else file_db_url
    assert cli("serve", "--db", other, db=None).exit_code == 0
    assert seen[-1].database_url == other and seen[-1].port == 8000


# ── fs commands ──────────────────────────────────────────


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "agents"
    build.build_tree(root, time.time())
    yield root


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_fs_json_is_the_library_dicts(cli: Invoke, tree: Path) -> None:
    lib = OpenClawStore(tree)
    fs = ["fs", "--root", str(tree)]
    assert as_json(cli(*fs, "list", "--json", db=None)) == lib.list_sessions()
    assert as_json(cli(*fs, "list", "--agent", "analyst", "--json", db=None)) == (
        lib.list_sessions("analyst")
    )
    assert as_json(cli(*fs, "stats", "--json", db=None)) == lib.get_session_stats()
    assert as_json(cli(*fs, "stats", "--stale-minutes", "5", "--json", db=None)) == (
        lib.get_session_stats(5)
    )
    assert as_json(cli(*fs, "orphans", "--dry-run", "--json", db=None)) == lib.orphans(True)
    before = snapshot(tree)
    dry = as_json(cli(*fs, "prune", "--max-age-minutes", "60", "--dry-run", "--json", db=None))
    assert dry == lib.prune_sessions(60, dry_run=True)
    assert snapshot(tree) == before
    assert cli(*fs, "list", db=None).exit_code == 0  # human table
    assert cli(*fs, "list", "--agent", "nobody", db=None).exit_code == 3


def test_fs_delete_refuses_path_traversal(cli: Invoke, tree: Path) -> None:
    before = snapshot(tree)
    for bad in ("../../etc/passwd", "..", "/etc/passwd", "a/b"):
        result = cli("fs", "--root", str(tree), "delete", bad, db=None)
        assert result.exit_code == 2, bad
        assert "not a plain file name" in result.stderr
        assert "Traceback" not in result.stderr
    assert snapshot(tree) == before
    protected = cli("fs", "--root", str(tree), "delete", "main-0001", db=None)
    assert protected.exit_code == 7 and snapshot(tree) == before


def test_fs_two_layer_delete_marks_the_database(cli: Invoke, tree: Path, file_db_url: str) -> None:
    imported = as_json(cli("import", str(tree), "--json"))
    assert "cron-old-1" in imported["imported"]
    deleted = as_json(cli("fs", "--root", str(tree), "delete", "cron-old-1", "--json"))
    assert deleted["pg_status_updated"] is True
    assert deleted["removed_keys"] == ["agent:main:cron:job1"]
    assert deleted["transcript_archived"] is True
    assert as_json(cli("show", "cron-old-1", "--json"))["session"]["status"] == "ended"

    # Without a database configured, the fs layer alone (and it says so).
    alone = as_json(cli("fs", "--root", str(tree), "delete", "run-old-1", "--json", db=None))
    assert alone["pg_status_updated"] is False
    assert as_json(cli("show", "run-old-1", "--json"))["session"]["status"] == "active"

    # --db given to the fs group works too; prune ends every pruned session.
    pruned = as_json(
        cli(
            "fs",
            "--root",
            str(tree),
            "--db",
            file_db_url,
            "prune",
            "--max-age-minutes",
            "60",
            "--json",
            db=None,
        )
    )
    assert pruned["deleted_ids"] and pruned["errors"] == []
    for sid in pruned["deleted_ids"]:
        status = as_json(cli("show", sid, "--json"))["session"]["status"]
        assert status == "ended", sid
    cleaned = as_json(
        cli("fs", "--root", str(tree), "cleanup-after-delegation", "sub-fresh-1", "--json")
    )
    assert cleaned["deleted"] == "sub-fresh-1" and cleaned["pg_status_updated"] is True


# ── import / export through the CLI ───────────────────────────────────────────


def test_export_import_commands(cli: Invoke, tmp_path: Path) -> None:
    sid = as_json(cli("new", "--title", "exported", "--json"))["session_id"]
    as_json(cli("add", "user", "héllo\nworld", "--json"))
    out = tmp_path / "all.jsonl"
    summary = as_json(cli("export", "--all", "-o", str(out), "--json"))
    assert summary == {
        "format": "jsonl",
        "sessions": 1,
        "messages": 1,
        "compactions": 0,
        "destination": str(out),
    }
    current_only = cli("export")  # default: the current session, to stdout
    assert current_only.exit_code == 0 and current_only.stdout == out.read_text(encoding="utf-8")
    md = cli("export", sid, "--format", "markdown")
    assert md.exit_code == 0 and md.stdout.startswith("# exported")

    other = f"sqlite:///{tmp_path / 'other.db'}"
    imported = as_json(cli("import", str(out), "--json", db=other))
    assert (imported["imported_count"], imported["message_count"]) == (1, 1)
    again = as_json(cli("import", str(out), "--json", db=other))
    assert again["skipped_count"] == 1 and again["skipped"][0]["reason"].startswith("already")
    copy = tmp_path / "copy.jsonl"
    as_json(cli("export", "--all", "-o", str(copy), "--json", db=other))
    assert copy.read_bytes() == out.read_bytes()

    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"type":"message","role":"user","content":"orphan"}\n', encoding="utf-8")
    failed = cli("import", str(broken), "--json", db=other)
    assert failed.exit_code == 1 and json.loads(failed.stdout)["failed_count"] == 1
    assert cli("import", str(tmp_path / "nope.jsonl")).exit_code == 3
    human = cli("import", str(out), db=other)
    assert human.exit_code == 0 and "skipped 1" in human.stdout


def test_aria_import_sets_current_session(cli: Invoke, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    sid = "session_1764919970_hy66or"
    (cache / f"{sid}.jsonl").write_text(
        json.dumps({"role": "user", "content": "hi", "timestamp": 1764919978, "model": "m"}) + "\n"
    )
    (cache / f"{sid}.meta").write_text(json.dumps({"id": sid, "created": 1764919970}))
    os.symlink(f"{sid}.jsonl", cache / "current")
    summary = as_json(cli("import", str(cache), "--agent", "aria", "--json"))
    assert summary["format"] == "aria-session" and summary["current"] == sid
    current = as_json(cli("current", "--json"))
    assert (current["session_id"], current["agent_id"]) == (sid, "aria")


# ── startup ───────────────────────────────────────────────────────────────────

HEAVY = ("fastapi", "uvicorn", "alembic", "httpx", "tiktoken", "pydantic_settings")


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["fs", "list"]])
def test_fast_paths_import_nothing_heavy(
    argv: list[str], user_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONKEEPER_")}
    env.update(user_env, OPENCLAW_WORKSPACE=str(tmp_path))
    # The first run creates the database (Alembic, once); the measured run is the usual one.
    subprocess.run(
        [sys.executable, "-m", "sessionkeeper", "new"],
        env=env,
        check=True,
        capture_output=True,
        timeout=60,
    )
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "sessionkeeper", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    imported = {
        line.split("|")[-1].strip().split(".")[0]
        for line in done.stderr.splitlines()
        if line.startswith("import time:")
    }
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))
    if argv == ["--help"]:
        assert "sqlalchemy" not in imported


def test_every_command_has_help() -> None:
    import typer.main

    group = typer.main.get_command(app)

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    commands = list(walk(group, []))
    assert len(commands) > 20
    for path, command in commands:
        assert (command.help or "").strip(), f"no help for {' '.join(path)}"
        result = CliRunner().invoke(app, [*path, "--help"])
        assert result.exit_code == 0, path
