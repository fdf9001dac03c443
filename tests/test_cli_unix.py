"""The CLI as a Unix tool (issue 16): a closed pipe ends a command quietly (exit 0), Ctrl-C
at any moment exits 130 with one line, input that is not UTF-8 is named by its byte, the
next-page hint is one copyable line, counts have their plurals.

Every test runs the real program (the installed ``sessionkeeper`` console script) in a
subprocess: pipes, signals and the bytes of stdin and argv are what is under test.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

import pytest

from clitools import CLI, isolate_user, load_openclaw_builder, run_cli, subprocess_env
from sessionkeeper import Store

build = load_openclaw_builder()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return subprocess_env(isolate_user(tmp_path, monkeypatch))


def _seed(url: str, messages: int) -> str:
    """A session of ``messages`` messages (about 300 characters each); its id."""

    async def go() -> str:
        store = await Store.open(url)
        try:
            session = await store.create_session(title="big")
            batch = [{"role": "user", "content": f"line {i} " + "x" * 300} for i in range(100)]
            for _ in range(messages // 100):
                await store.add_messages(session.session_id, batch)
            return session.session_id
        finally:
            await store.close()

    return asyncio.run(go())


def _stderr_lines(data: bytes) -> list[str]:
    """stderr without the import-time profile (PYTHONPROFILEIMPORTTIME) lines."""
    lines = data.decode().splitlines()
    return [line for line in lines if not line.startswith("import time:")]


# ── a closed pipe ─────────────────────────────────────────────────────────────


@pytest.mark.parametrize("reader", ["head -1", "gone at once"])
def test_a_closed_pipe_ends_the_command_quietly(
    file_db_url: str, env: dict[str, str], reader: str
) -> None:
    """``sessionkeeper export --all | head -1``: exit 0, nothing on stderr (it was
    "[Errno 32] Broken pipe", exit 1). The export is ~500 KB, far more than a pipe holds;
    with the reader gone before the first write, even the shortest output meets the
    closed pipe."""
    sid = _seed(file_db_url, 1500)
    for argv in (
        ["export", "--all"],
        ["export", "--all", "--format", "markdown"],
        ["show", sid],
        ["show", sid, "--json"],
        ["stats"],
        ["list"],
        ["list", "--json"],
    ):
        proc = subprocess.Popen(
            [*CLI, "--db", file_db_url, *argv],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert proc.stdout is not None and proc.stderr is not None
        if reader == "head -1":
            assert proc.stdout.readline()
        proc.stdout.close()
        err = proc.stderr.read()
        assert proc.wait(timeout=60) == 0, (argv, err)
        assert err == b"", (argv, err)


# ── Ctrl-C ────────────────────────────────────────────────────────────────────


def _held_lock(tmp_path: Path) -> tuple[Path, Path, bytes]:
    """An agents tree whose main index is locked by someone else (pid 4242): an
    ``fs delete`` there waits (up to 10 s) — a long command on demand."""
    root = tmp_path / "agents"
    build.build_tree(root, time.time())
    lock = root / "main" / "sessions" / "sessions.json.lock"
    holder = b'{"pid": 4242, "createdAt": "2026-12-07T12:00:00+00:00"}'
    lock.write_bytes(holder)
    return root, lock, holder


def _read_until(stream: IO[bytes], done: Callable[[str], bool], deadline: float) -> list[str]:
    """Lines of ``stream`` up to the first that is ``done``."""
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = stream.readline()
        if not line:
            break
        seen.append(line.decode())
        if done(seen[-1]):
            return seen
    raise AssertionError(f"never came: {seen[-5:]}")


def _imported(module: str) -> Callable[[str], bool]:
    """An import-time profile line saying ``module`` was imported."""
    return lambda line: line.rstrip().split("|")[-1].strip() == module


def _waiting(line: str) -> bool:
    return line.startswith("waiting for")


def test_ctrl_c_during_start_up_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    """SIGINT while the command line is still being imported (the import-time profile says
    when: Typer, which only the CLI's own modules import, is loading): exit 130 and
    "error: interrupted", never a KeyboardInterrupt traceback."""
    root, lock, holder = _held_lock(tmp_path)
    proc = subprocess.Popen(
        [*CLI, "fs", "--root", str(root), "delete", "cron-old-1"],
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = _read_until(proc.stderr, _imported("typer.colors"), time.monotonic() + 30)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    lines = _stderr_lines(b"".join(line.encode() for line in seen) + err)
    assert proc.returncode == 130, lines
    assert lines == ["error: interrupted"], lines
    assert out == b""
    assert lock.read_bytes() == holder  # someone else's lock: left alone


def test_ctrl_c_during_a_long_command_is_one_line(tmp_path: Path, env: dict[str, str]) -> None:
    """SIGINT while ``fs delete`` waits for an OpenClaw lock held by another process: it
    said once whom it waits for, then exits 130 with one line; nothing changed."""
    root, lock, holder = _held_lock(tmp_path)
    index = root / "main" / "sessions" / "sessions.json"
    before = index.read_bytes()
    proc = subprocess.Popen(
        [*CLI, "fs", "--root", str(root), "delete", "cron-old-1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = _read_until(proc.stderr, _waiting, time.monotonic() + 30)
    assert seen == [
        f"waiting for {lock} (held by pid 4242 since 2026-12-07T12:00:00+00:00; up to 10 s)…\n"
    ]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert err.decode().splitlines() == ["error: interrupted"]
    assert out == b""
    assert lock.read_bytes() == holder and index.read_bytes() == before


def test_ctrl_c_during_an_import_leaves_whole_sessions(
    file_db_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """SIGINT while ``import`` writes (once the database driver is loaded): exit 130, one
    line; the session is in the database whole or not at all, and the next import
    finishes the job."""
    sid = "interrupted-import"
    lines = [json.dumps({"type": "session", "session_id": sid, "created_at": "2025-01-01"})]
    lines += [
        json.dumps({"type": "message", "role": "user", "content": f"m{i} " + "y" * 200})
        for i in range(4000)
    ]
    source = tmp_path / "big.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    driver = "asyncpg" if file_db_url.startswith("postgresql") else "sqlite3"
    proc = subprocess.Popen(
        [*CLI, "--db", file_db_url, "import", str(source)],
        env={**env, "PYTHONPROFILEIMPORTTIME": "1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    seen = _read_until(proc.stderr, _imported(driver), time.monotonic() + 60)
    time.sleep(0.3)  # into the writing
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    lines = _stderr_lines(b"".join(line.encode() for line in seen) + err)
    if proc.returncode == 0:  # a fast machine finished first: nothing to check
        pytest.skip("the import finished before the interrupt")
    assert proc.returncode == 130, lines
    assert lines == ["error: interrupted"], lines

    async def count() -> int | None:
        store = await Store.open(file_db_url)
        try:
            if not await store.session_exists(sid):
                return None
            return (await store.get_session(sid)).message_count
        finally:
            await store.close()

    assert asyncio.run(count()) in (None, 4000)
    again = run_cli(["--db", file_db_url, "import", str(source), "--json"], env)
    assert again.returncode == 0, again.stderr
    assert asyncio.run(count()) == 4000


# ── input that is not UTF-8 ───────────────────────────────────────────────────


def test_input_that_is_not_utf8_is_named_by_its_byte(
    file_db_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """``printf 'caf\\xe9' | sessionkeeper add user -`` and the same bytes as an argument:
    "not UTF-8: byte 0xE9 at offset 3" (it was "a lone surrogate (U+DCE9)"), exit 2,
    nothing stored. A UTF-8 byte order mark is not content."""
    db = ["--db", file_db_url]
    assert run_cli([*db, "db", "upgrade"], env).returncode == 0
    piped = run_cli([*db, "add", "user", "-"], env, input=b"caf\xe9")
    assert piped.returncode == 2, piped.stderr
    assert piped.stderr.decode().startswith(
        "error: stdin is not UTF-8: byte 0xE9 at offset 3 cannot be decoded"
    )
    typed = run_cli(
        [*db, "add", "user", b"caf\xe9 au lait".decode("utf-8", "surrogateescape")], env
    )
    assert typed.returncode == 2
    assert "not UTF-8: byte 0xE9 at offset 3" in typed.stderr.decode()
    assert "surrogate" not in typed.stderr.decode() + piped.stderr.decode()
    titled = run_cli([*db, "new", "--title", b"\xff".decode("utf-8", "surrogateescape")], env)
    assert titled.returncode == 2 and "byte 0xFF at offset 0" in titled.stderr.decode()
    listed = run_cli([*db, "list", "--json"], env)
    assert json.loads(listed.stdout)["total"] == 0  # nothing stored, no session created

    bom = run_cli([*db, "add", "user", "-", "--json"], env, input="\ufeffcafé".encode())
    assert bom.returncode == 0, bom.stderr
    assert json.loads(bom.stdout)["content"] == "café"

    header = b'{"type":"session","session_id":"%s","created_at":"2025-01-01T00:00:00Z"}\n'
    exported = tmp_path / "marked.jsonl"  # a BOM before the first line, a Latin-1 line later
    exported.write_bytes(
        b"\xef\xbb\xbf"
        + header % b"with-bom"
        + b'{"type":"message","role":"user","content":"ok"}\n'
        + header % b"latin-1"
        + b'{"type":"message","role":"user","content":"caf\xe9"}\n'
    )
    imported = run_cli([*db, "import", str(exported), "--json"], env)
    summary = json.loads(imported.stdout)
    assert imported.returncode == 1 and summary["imported"] == ["with-bom"]
    assert [f["error"] for f in summary["failed"]] == [
        "line 4 is not UTF-8: byte 0xE9 at offset 46 cannot be decoded "
        "(convert the text to UTF-8 first, e.g. with iconv)"
    ]


# ── copyable hints, plurals, --max-tokens ─────────────────────────────────────


def test_the_next_page_hint_is_one_line_at_any_width(file_db_url: str, env: dict[str, str]) -> None:
    db = ["--db", file_db_url]
    for _ in range(3):
        assert run_cli([*db, "new"], env).returncode == 0
    cursor = json.loads(run_cli([*db, "list", "-n", "2", "--json"], env).stdout)["next_cursor"]
    assert cursor and len(cursor) > 40
    for columns in ("40", "200"):
        listed = run_cli([*db, "list", "-n", "2"], {**env, "COLUMNS": columns})
        assert listed.returncode == 0
        assert f"next page: --cursor {cursor}" in listed.stdout.decode().splitlines()


def test_counts_have_their_plurals(file_db_url: str, tmp_path: Path, env: dict[str, str]) -> None:
    db = ["--db", file_db_url]
    assert run_cli([*db, "db", "upgrade"], env).returncode == 0
    added = run_cli([*db, "add", "user", "hi"], env)
    assert added.returncode == 0 and "(1 token)" in added.stdout.decode()
    run_cli([*db, "add", "assistant", "hello there"], env)
    shown = run_cli([*db, "show", "--last", "1"], env).stdout.decode()
    assert "(1 earlier message not shown)" in shown

    root = tmp_path / "agents"
    (root / "solo" / "sessions").mkdir(parents=True)
    (root / "solo" / "sessions" / "sessions.json").write_text(
        json.dumps({"agent:solo:cron:a": {"sessionId": "only-1", "updatedAt": 0}})
    )
    (root / "solo" / "sessions" / "only-1.jsonl").write_text("")
    listed = run_cli(["fs", "list", "--root", str(root)], env).stdout.decode()
    assert "1 key" in listed and "1 keys" not in listed
    orphans = run_cli(["fs", "orphans", "--dry-run", "--root", str(root)], env).stdout.decode()
    assert "Would fix 0 keys without a transcript" in orphans
    deleted = run_cli(["fs", "delete", "only-1", "--root", str(root)], env)
    assert deleted.returncode == 0, deleted.stderr
    assert "removed (1 key, transcript=archived)" in deleted.stdout.decode()


@pytest.mark.parametrize("budget", ["0", "-5"])
def test_max_tokens_must_be_positive(file_db_url: str, env: dict[str, str], budget: str) -> None:
    """``ask --max-tokens 0`` silently used the default budget."""
    db = ["--db", file_db_url]
    assert run_cli([*db, "db", "upgrade"], env).returncode == 0
    asked = run_cli([*db, "ask", "hello", "--max-tokens", budget], env)
    assert asked.returncode == 2
    assert asked.stderr.decode().startswith(
        f"error: --max-tokens must be a positive number of tokens, got {budget}"
    )
    assert json.loads(run_cli([*db, "list", "--json"], env).stdout)["total"] == 0
