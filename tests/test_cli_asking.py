"""The CLI as simonw/llm users expect it (issue 16): ``--version``, ``ask -m/--system/-c``,
an interactive ``chat``, ``rename``, ``pop``/``undo``, a failed model call that leaves no
orphan user message, repeated answers sent, ended sessions refused by every write, and the
one rule for creating a SQLite database.

On SQLite and PostgreSQL, with the real local model server of ``fakellm.py``. What a person
meets at a terminal runs as real processes (``python -m sessionkeeper``): ``ask`` streaming
and failing, ``--version``, the database rule, and ``chat`` in a pseudo-terminal (pexpect),
typed into as a person does. The other commands run in-process (Typer's CliRunner, as in
test_cli.py), which keeps the file fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from clitools import Invoke, isolate_user, make_invoke
from fakellm import FakeLLM, run_fake_llm
from sessionkeeper import SyncStore, __version__

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with run_fake_llm() as server:
        yield server


def user_env(home: Path, **extra: str) -> dict[str, str]:
    """This environment without sessionkeeper settings, with a fresh HOME and data dir."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SESSIONKEEPER_", "OPENCLAW_", "ARIA_"))
    }
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / ".local" / "share"), **extra)
    return env


def runner(env: dict[str, str]) -> Run:
    def run(
        *args: str, code: int = 0, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [sys.executable, "-m", "sessionkeeper", *args],
            env=env,
            input=input,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
        return done

    return run


@pytest.fixture
def env(file_db_url: str, fake: FakeLLM, tmp_path: Path) -> dict[str, str]:
    return user_env(
        tmp_path / "home",
        SESSIONKEEPER_DATABASE_URL=file_db_url,
        SESSIONKEEPER_LLM_BASE_URL=fake.base_url,
        SESSIONKEEPER_LLM_MODEL="fake-model",
    )


@pytest.fixture
def sk(env: dict[str, str]) -> Run:
    return runner(env)


@pytest.fixture
def cli(file_db_url: str, fake: FakeLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """The CLI in-process, on the same database and model, with its own user dirs."""
    isolate_user(tmp_path / "inproc", monkeypatch)
    monkeypatch.setenv("SESSIONKEEPER_LLM_BASE_URL", fake.base_url)
    monkeypatch.setenv("SESSIONKEEPER_LLM_MODEL", "fake-model")
    invoke = make_invoke(file_db_url)

    def run(*args: str, code: int = 0, input: str | None = None) -> Any:
        result = invoke(*args, input=input)
        assert result.exit_code == code, (args, result.exit_code, result.stdout, result.stderr)
        return result

    return run


def as_json(done: Any) -> Any:
    return json.loads(done.stdout)


def conversation(url: str, session_id: str) -> list[tuple[str, str]]:
    with SyncStore.open(url) as store:
        return [(m.role, m.content) for m in store.get_messages(session_id)]


def sent(fake: FakeLLM) -> list[tuple[str, str]]:
    """What the model was sent last: (role, content) of each message."""
    return [(m["role"], m["content"]) for m in fake.requests[-1]["messages"]]


# ── --version, -m, --system, -c ───────────────────────────────────────────────────────


def test_version(tmp_path: Path) -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    done = runner(user_env(tmp_path))("--version")
    assert done.stdout == f"sessionkeeper {pyproject['project']['version']}\n"
    assert __version__ == pyproject["project"]["version"]


def test_ask_model_and_system_prompt(sk: Run, fake: FakeLLM, file_db_url: str) -> None:
    first = as_json(sk("ask", "--system", "You are terse.", "-m", "fake-2", "hi", "--json"))
    assert fake.requests[-1]["model"] == "fake-2"
    assert sent(fake) == [("system", "You are terse."), ("user", "hi")]
    assert first["system"]["seq"] == 1 and first["assistant"]["model"] == "fake-2"
    # The system prompt is in the session now: given again, it is not stored twice; the
    # model is the configured one again; the reply is printed as it came.
    again = sk("ask", "--system", "You are terse.", "again")
    assert again.stdout == "Reply to: again\n"
    assert fake.requests[-1]["model"] == "fake-model"
    assert [role for role, _ in sent(fake)] == ["system", "user", "assistant", "user"]
    stored = conversation(file_db_url, first["session_id"])
    assert stored[0] == ("system", "You are terse.") and len(stored) == 5
    # -m echo: the offline model, even with a server configured.
    echoed = as_json(sk("ask", "-m", "echo", "offline?", "--json"))
    assert echoed["echo"] is True and echoed["assistant"]["model"] == "echo"


def test_ask_model_needs_a_server(tmp_path: Path) -> None:
    run = runner(user_env(tmp_path, SESSIONKEEPER_DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}"))
    done = run("ask", "-m", "gpt-4o", "hi", code=2)
    assert "--model 'gpt-4o': no model server is configured" in done.stderr
    assert not (tmp_path / "x.db").exists()  # refused before anything is created


def test_ask_continue_takes_the_most_recent_session(cli: Invoke, file_db_url: str) -> None:
    older = as_json(cli("ask", "hi", "--json"))["session_id"]
    newer = as_json(cli("new", "--json"))["session_id"]  # now current
    cli("add", "user", "a note", "--session", older)  # older has the newest message
    continued = as_json(cli("ask", "-c", "back", "--json"))
    assert continued["session_id"] == older and not continued["created"]
    assert cli("current").stdout.strip() == older  # -c makes it current
    assert conversation(file_db_url, older)[-3:] == [
        ("user", "a note"),
        ("user", "back"),
        ("assistant", "Reply to: back"),
    ]
    refused = cli("ask", "-c", "--session", newer, "x", code=2)
    assert "cannot be used together" in refused.stderr


# ── failures, repeats, ended sessions ─────────────────────────────────────────────────


def test_failed_model_call_leaves_no_user_turn_behind(
    sk: Run, fake: FakeLLM, file_db_url: str
) -> None:
    fake.options.fail_status = 503
    refused = sk("ask", "first", code=6)
    assert "HTTP 503" in refused.stderr and "your message was not kept" in refused.stderr
    with SyncStore.open(file_db_url) as store:
        assert store.list_sessions().total == 0  # the session it made went with it
        sid = store.create_session().session_id
        store.add_messages(sid, [{"role": "user", "content": "hello"}])
        store.add_messages(sid, [{"role": "assistant", "content": "Hi."}])
    sk("ask", "lost", "--session", sid, code=6)
    fake.options.fail_status = None
    sk("ask", "found", "--session", sid)
    assert sent(fake) == [("user", "hello"), ("assistant", "Hi."), ("user", "found")]
    assert [role for role, _ in conversation(file_db_url, sid)] == ["user", "assistant"] * 2


def test_ctrl_c_before_the_reply_keeps_nothing(
    env: dict[str, str], fake: FakeLLM, file_db_url: str
) -> None:
    fake.options.delay = 1.0  # before the first piece of the reply
    child = pexpect.spawn(
        sys.executable, ["-m", "sessionkeeper", "ask", "hello"], env=env, encoding="utf-8"
    )
    deadline = time.monotonic() + 30
    while not fake.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.requests, "the model was never called"
    child.sendintr()
    child.expect(pexpect.EOF, timeout=30)
    child.close()
    assert child.exitstatus == 130 and "Traceback" not in (child.before or "")
    with SyncStore.open(file_db_url) as store:
        assert store.list_sessions().total == 0  # the message and its new session went back


def test_the_same_answer_twice_is_sent_twice(cli: Invoke, file_db_url: str) -> None:
    sid = as_json(cli("ask", "yes", "--json"))["session_id"]
    cli("ask", "yes")  # within 5 s: a person's real answer, not a double click
    assert conversation(file_db_url, sid) == [("user", "yes"), ("assistant", "Reply to: yes")] * 2


def test_an_ended_session_refuses_every_write_until_reopened(cli: Invoke, file_db_url: str) -> None:
    sid = as_json(cli("add", "user", "hi", "--json"))["session_id"]
    cli("end")
    for argv in (["add", "user", "more"], ["ask", "more"], ["pop"], ["chat"]):
        refused = cli(*argv, code=4)
        assert f"session {sid} has ended" in refused.stderr
        assert f"sessionkeeper reopen {sid}" in refused.stderr
    assert conversation(file_db_url, sid) == [("user", "hi")]
    assert "is active" in cli("reopen").stdout
    cli("add", "user", "more")
    assert conversation(file_db_url, sid) == [("user", "hi"), ("user", "more")]


# ── rename, pop / undo ────────────────────────────────────────────────────────────────


def test_rename(cli: Invoke, file_db_url: str) -> None:
    sid = as_json(cli("new", "--title", "old", "--json"))["session_id"]
    assert cli("rename", "New title").stdout == f"Renamed {sid}: 'old' -> 'New title'\n"
    assert as_json(cli("rename", sid, "Second", "--json"))["title"] == "Second"
    assert "quote a title" in cli("rename", sid, "two", "words", code=2).stderr
    assert "must not be empty" in cli("rename", " ", code=2).stderr
    assert "title is 201 characters" in cli("rename", "x" * 201, code=2).stderr
    assert "not found" in cli("rename", "nope", "T", code=3).stderr
    with SyncStore.open(file_db_url) as store:
        assert store.get_session(sid).title == "Second"


def test_pop_and_undo_remove_the_newest_message(cli: Invoke, file_db_url: str) -> None:
    sid = as_json(cli("add", "user", "one", "--json"))["session_id"]
    cli("add", "assistant", "two")
    popped = cli("pop").stdout
    assert popped.startswith(f"Removed assistant message #2 from {sid}:") and "two" in popped
    assert as_json(cli("undo", sid, "--json"))["content"] == "one"
    assert "has no messages" in cli("pop", code=3).stderr
    assert cli("current").stdout.strip() == sid  # an empty session is still the current one
    assert conversation(file_db_url, sid) == []


# ── chat: a REPL in a terminal ────────────────────────────────────────────────────────


def spawn_chat(env: dict[str, str], *args: str) -> pexpect.spawn:
    return pexpect.spawn(
        sys.executable,
        ["-m", "sessionkeeper", "chat", *args],
        env={**env, "TERM": "xterm"},
        encoding="utf-8",
        timeout=30,
    )


def leave(child: pexpect.spawn) -> int:
    child.sendeof()  # Ctrl-D at the prompt
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus is not None and child.signalstatus is None
    return int(child.exitstatus)


def only_session(url: str) -> str:
    with SyncStore.open(url) as store:
        (session,) = store.list_sessions().items
    return session.session_id


def test_chat_two_turns_then_ctrl_d(
    env: dict[str, str], sk: Run, fake: FakeLLM, file_db_url: str
) -> None:
    child = spawn_chat(env, "--new")
    child.expect("Chatting in a new session")
    for text in ("hello", "and again"):
        child.expect("> ")
        child.sendline(text)
        child.expect(f"Reply to: {text}")
    child.expect("> ")
    assert leave(child) == 0
    sid = only_session(file_db_url)
    assert conversation(file_db_url, sid) == [
        ("user", "hello"),
        ("assistant", "Reply to: hello"),
        ("user", "and again"),
        ("assistant", "Reply to: and again"),
    ]
    assert [content for _, content in sent(fake)] == ["hello", "Reply to: hello", "and again"]
    assert sk("current").stdout.strip() == sid  # the chat's session is the current one


def test_chat_history_failure_and_ctrl_c(
    env: dict[str, str], fake: FakeLLM, file_db_url: str
) -> None:
    with SyncStore.open(file_db_url) as store:
        sid = store.create_session().session_id
    child = spawn_chat(env, sid, "--system", "Be brief.")
    child.expect(f"Chatting in session {sid}")
    child.expect("> ")
    child.sendline("first")
    child.expect("Reply to: first")
    child.expect("> ")
    child.send("\x1b[A\r")  # up arrow: readline brings "first" back; sent again
    child.expect("Reply to: first")
    child.expect("> ")
    # A failed call is reported; the message is taken back; the chat goes on.
    fake.options.fail_status = 503
    child.sendline("lost")
    child.expect("your message was not kept")
    child.expect("> ")
    # Ctrl-C stops a slow reply: the text so far is kept, marked partial.
    fake.options.fail_status = None
    fake.options.reply, fake.options.chunks, fake.options.delay = "one two three four", 4, 0.4
    child.sendline("slow")
    child.expect("one ")
    child.sendintr()
    child.expect("interrupted: the reply so far is stored, marked partial")
    child.expect("> ")
    child.sendintr()  # at the prompt: a fresh line, still chatting
    child.expect("> ")
    assert leave(child) == 0
    with SyncStore.open(file_db_url) as store:
        messages = store.get_messages(sid)
    assert [(m.role, m.content) for m in messages][:6] == [
        ("system", "Be brief."),  # stored once, before the first message
        ("user", "first"),
        ("assistant", "Reply to: first"),
        ("user", "first"),
        ("assistant", "Reply to: first"),
        ("user", "slow"),
    ]
    partial = messages[6]
    assert partial.content.startswith("one ") and partial.content != "one two three four"
    assert partial.metadata["partial"] is True and "interrupted" in partial.metadata["error"]
    assert len(messages) == 7


def test_chat_reads_a_pipe(sk: Run, file_db_url: str) -> None:
    done = sk("chat", "--new", input="one\n\n  \ntwo\nexit\nthree\n")
    assert done.stdout == "Reply to: one\nReply to: two\n"
    assert "Chatting in a new session" in done.stderr
    messages = conversation(file_db_url, only_session(file_db_url))
    assert [content for role, content in messages if role == "user"] == ["one", "two"]


# ── the database creation rule ────────────────────────────────────────────────────────


def test_writers_create_the_database_and_its_directory_readers_create_nothing(
    tmp_path: Path,
) -> None:
    run = runner(user_env(tmp_path / "home"))
    default = tmp_path / "home" / ".local" / "share" / "sessionkeeper" / "sessionkeeper.db"
    refused = run("list", code=3)
    assert f"no database at {default} yet" in refused.stderr
    assert not default.parent.exists()
    deep = tmp_path / "a" / "b" / "chat.db"
    url = f"sqlite:///{deep}"
    assert f"--db: no database at {deep};" in run("--db", url, "show", "x", code=3).stderr
    assert not (tmp_path / "a").exists()
    run("--db", url, "add", "user", "hi")  # stores something: file and directories made
    assert deep.is_file()
    run("ask", "hi")
    assert default.is_file()
