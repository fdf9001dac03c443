"""``fs`` and ``import`` against trees and files that fight back (issue 16): a root that is
not there, a lock held by someone else, each agent's main session by OpenClaw's rule and
config, JSON nested too deeply, FIFOs where files should be.

Run as the real program in a subprocess, each with a timeout: a hang fails the test instead
of stopping the suite. FIFOs are made with os.mkfifo under tmp_path.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from clitools import CLI, isolate_user, load_openclaw_builder, run_cli, subprocess_env
from sessionkeeper import Store

build = load_openclaw_builder()
FS_COMMANDS = [["list"], ["stats"], ["orphans", "--dry-run"], ["prune", "--dry-run"]]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    return subprocess_env(isolate_user(tmp_path, monkeypatch))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    path = tmp_path / "state" / "agents"
    build.build_tree(path, time.time())
    return path


def _json(done: subprocess.CompletedProcess[bytes]) -> Any:
    return json.loads(done.stdout)


def _errors(done: subprocess.CompletedProcess[bytes]) -> list[str]:
    return done.stderr.decode().splitlines()


def _sessions(url: str) -> dict[str, int]:
    async def go() -> dict[str, int]:
        store = await Store.open(url)
        try:
            return {s.session_id: s.message_count async for s in store.iter_sessions()}
        finally:
            await store.close()

    return asyncio.run(go())


# ── the root, the lock ────────────────────────────────────────────────────────


def test_root_goes_after_the_subcommand_and_must_exist(
    root: Path, tmp_path: Path, env: dict[str, str]
) -> None:
    before = _json(run_cli(["fs", "--root", str(root), "list", "--json"], env))
    after = _json(run_cli(["fs", "list", "--json", "--root", str(root)], env))
    assert after == before and after["session_count"] == 11
    for command in [*FS_COMMANDS, ["delete", "x"], ["cleanup-after-delegation", "x"]]:
        missing = run_cli(["fs", "--root", str(tmp_path / "nope"), *command], env)
        assert missing.returncode == 3, (command, missing.stderr)
        assert _errors(missing) == [
            f"error: --root {tmp_path / 'nope'} does not exist: no OpenClaw agents directory there"
        ]
    a_file = tmp_path / "file"
    a_file.write_text("")
    assert run_cli(["fs", "list", "--root", str(a_file)], env).returncode == 2
    unset = run_cli(["fs", "list"], env)  # the default root, which this HOME has not
    assert unset.returncode == 3 and "(give --root DIR)" in unset.stderr.decode()
    named = run_cli(["fs", "stats"], {**env, "OPENCLAW_WORKSPACE": str(tmp_path / "ws")})
    assert named.returncode == 3
    assert f"$OPENCLAW_WORKSPACE {tmp_path / 'ws'} does not exist" in named.stderr.decode()


def test_a_lock_wait_is_said_once_with_its_holder(root: Path, env: dict[str, str]) -> None:
    lock = root / "main" / "sessions" / "sessions.json.lock"
    lock.write_text('{"pid": 4242, "createdAt": "2026-12-07T12:00:00+00:00"}')
    release = threading.Timer(1.0, lock.unlink)
    release.start()
    try:
        done = run_cli(["fs", "--root", str(root), "delete", "cron-old-1"], env)
    finally:
        release.join()
    assert done.returncode == 0, done.stderr
    assert _errors(done) == [
        f"waiting for {lock} (held by pid 4242 since 2026-12-07T12:00:00+00:00; up to 10 s)…"
    ]
    assert "Session cron-old-1 removed (1 key" in done.stdout.decode()
    quick = run_cli(["fs", "--root", str(root), "delete", "run-old-1"], env)
    assert quick.returncode == 0 and quick.stderr == b""  # a free lock: not a word


# ── each agent's main session ─────────────────────────────────────────────────


def _add_key(root: Path, agent: str, key: str, sid: str) -> None:
    index_path = root / agent / "sessions" / "sessions.json"
    index = json.loads(index_path.read_text())
    index[key] = {"sessionId": sid, "updatedAt": 0}
    index_path.write_text(json.dumps(index))
    (root / agent / "sessions" / f"{sid}.jsonl").write_text("")


def test_each_agents_main_session_is_protected(root: Path, env: dict[str, str]) -> None:
    """OpenClaw's rule: ``agent:<agentId>:<mainKey>`` in every agent (was: only
    ``agent:main:main``), mainKey "main" unless its config says otherwise."""
    fs = ["fs", "--root", str(root)]
    for sid in ("main-0001", "an-direct-1"):  # agent:main:main, agent:analyst:main
        refused = run_cli([*fs, "delete", sid], env)
        assert refused.returncode == 7, refused.stderr
        assert "protected" in refused.stderr.decode()
    pruned = _json(run_cli([*fs, "prune", "--max-age-minutes", "0", "--json"], env))
    assert {"main-0001", "an-direct-1"}.isdisjoint(pruned["deleted_ids"])
    assert "sub-fresh-1" in pruned["deleted_ids"]
    kept = _json(run_cli([*fs, "list", "--json"], env))["sessions"]
    assert {s["key"] for s in kept} == {"agent:main:main", "agent:analyst:main"}


def test_the_main_key_comes_from_openclaws_config(root: Path, env: dict[str, str]) -> None:
    """``session.mainKey`` in ``openclaw.json`` (JSON5, beside the agents root, or
    $OPENCLAW_CONFIG_PATH); ``agent:<id>:main`` stays an alias; scope "global" makes the
    ``global`` key the main session."""
    config = root.parent / "openclaw.json"
    config.write_text('{\n  // JSON5, as OpenClaw writes it\n  session: {mainKey: "Work"},\n}\n')
    _add_key(root, "analyst", "agent:analyst:work", "an-work-1")
    _add_key(root, "main", "global", "glob-1")
    fs = ["fs", "--root", str(root)]
    for sid in ("an-work-1", "an-direct-1"):
        assert run_cli([*fs, "delete", sid], env).returncode == 7
    assert run_cli([*fs, "delete", "glob-1"], env).returncode == 0  # not global scope

    _add_key(root, "main", "global", "glob-2")
    elsewhere = root.parent / "elsewhere.json5"
    elsewhere.write_text('{session: {scope: "global"}}')
    moved = {**env, "OPENCLAW_CONFIG_PATH": str(elsewhere)}
    assert run_cli([*fs, "delete", "glob-2"], moved).returncode == 7
    assert run_cli([*fs, "delete", "an-work-1"], moved).returncode == 0  # mainKey main there

    config.write_text("{session: {mainKey: ")  # broken: deleting blind is refused
    broken = run_cli([*fs, "delete", "cron-old-1"], env)
    assert broken.returncode == 2
    assert f"cannot read OpenClaw's config {config}" in broken.stderr.decode()
    assert run_cli([*fs, "list"], env).returncode == 0  # reading needs no config


# ── nested too deeply ─────────────────────────────────────────────────────────


def _deep_index(root: Path) -> tuple[Path, str]:
    index = root / "analyst" / "sessions" / "sessions.json"
    index.write_text('{"k": ' + "[" * 2000 + "]" * 2000 + "}")
    return index, f"{index} is nested too deeply to be read: agent 'analyst' left unchanged"


def test_a_deeply_nested_index_stops_only_its_agent(root: Path, env: dict[str, str]) -> None:
    """A sessions.json nested 2,000 deep in one agent: that agent reported (with the reason)
    and skipped by every fs command, the others handled (it was "unexpected RecursionError
    … a bug" for the whole root)."""
    _index, reason = _deep_index(root)
    fs = ["fs", "--root", str(root)]
    for command in [*FS_COMMANDS, ["delete", "cron-old-1"]]:
        done = run_cli([*fs, *command], env)
        assert done.returncode == 1, (command, done.stderr)
        assert _errors(done) == [f"error: agent analyst: {reason}"], command
    result = _json(run_cli([*fs, "list", "--json"], env))
    assert result["agent_errors"] == [{"agent": "analyst", "error": reason}]
    assert {s["agentId"] for s in result["sessions"]} == {"main", "aria-talk"}


def test_a_deeply_nested_index_fails_only_its_agents_import(
    root: Path, file_db_url: str, env: dict[str, str]
) -> None:
    _index, reason = _deep_index(root)
    db = ["--db", file_db_url]
    imported = run_cli([*db, "import", "--format", "openclaw", str(root), "--json"], env)
    assert imported.returncode == 1
    failed = _json(imported)["failed"]
    assert [(f["source"], f["error"]) for f in failed] == [
        ("analyst/sessions/sessions.json", reason)
    ]
    assert "talk-sub-1" in _sessions(file_db_url)


def test_a_deeply_nested_jsonl_line_is_that_lines_error(
    file_db_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    deep = '{"x": ' + "[" * 5000 + "]" * 5000 + "}"
    lines = [
        '{"type":"session","session_id":"deep-1","created_at":"2025-01-01T00:00:00Z"}',
        '{"type":"message","role":"user","content":"a"}',
        '{"type":"message","role":"user","content":"b","metadata":' + deep + "}",
        '{"type":"session","session_id":"fine-1","created_at":"2025-01-01T00:00:00Z"}',
        '{"type":"message","role":"user","content":"ok"}',
    ]
    source = tmp_path / "deep.jsonl"
    source.write_text("\n".join(lines) + "\n")
    done = run_cli(["--db", file_db_url, "import", str(source), "--json"], env)
    assert done.returncode == 1, done.stderr
    summary = _json(done)
    assert summary["imported"] == ["fine-1"]
    assert [(f["session_id"], f["error"]) for f in summary["failed"]] == [
        ("deep-1", "line 3 is nested too deeply to be read")
    ]
    assert _sessions(file_db_url) == {"fine-1": 1}

    skill = run_cli(["skill", "session_manager", "list_sessions", "[" * 5000, "--root", "."], env)
    assert skill.returncode == 2
    assert _json(skill) == {"error": "ARGS is nested too deeply to be read"}


# ── FIFOs ─────────────────────────────────────────────────────────────────────


def test_a_fifo_in_a_tree_is_refused_never_opened(
    root: Path, file_db_url: str, env: dict[str, str]
) -> None:
    """A FIFO listed as a transcript (import: that entry fails, the rest imports) or
    standing as an agent's sessions.json (that agent is reported): nothing hangs."""
    transcript = root / "main" / "sessions" / "cron-old-1.jsonl"
    transcript.unlink()
    os.mkfifo(transcript)
    index = root / "aria-talk" / "sessions" / "sessions.json"
    index.unlink()
    os.mkfifo(index)
    db = ["--db", file_db_url]
    done = run_cli([*db, "import", "--format", "openclaw", str(root), "--json"], env, timeout=60)
    assert done.returncode == 1
    failed = {f["source"]: f["error"] for f in _json(done)["failed"]}
    assert failed == {
        "aria-talk/sessions/sessions.json": (
            f"{index} is a FIFO (named pipe), not a regular file: not read: "
            "agent 'aria-talk' left unchanged"
        ),
        "main/sessions/cron-old-1.jsonl": (
            f"{transcript} is a FIFO (named pipe), not a regular file: not read"
        ),
    }
    assert _sessions(file_db_url)["main-0001"] == 2
    fs = ["fs", "--root", str(root)]
    for command in [*FS_COMMANDS, ["orphans"], ["delete", "cron-old-1"]]:
        ran = run_cli([*fs, *command], env, timeout=60)
        assert ran.returncode == 1, (command, ran.stderr)
        assert _errors(ran) == [
            f"error: agent aria-talk: {index} is a FIFO (named pipe), not a regular file: "
            "not read: agent 'aria-talk' left unchanged"
        ]
    assert transcript.exists()  # archived by rename, or kept: never read
    assert index.is_fifo()


def _fifo_writer(fifo: Path, data: bytes) -> threading.Thread:
    def write() -> None:
        with fifo.open("wb") as handle:  # blocks until the importer opens it
            handle.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def test_import_reads_a_fifo_it_is_given(
    file_db_url: str, tmp_path: Path, env: dict[str, str]
) -> None:
    """``import some.fifo`` and ``import <(cat x.jsonl)`` read the stream (it was "no such
    file"); in a directory import, a FIFO is one failed entry and the others import."""

    def export(sid: str, n: int) -> bytes:
        lines = [json.dumps({"type": "session", "session_id": sid, "created_at": "2025-01-01"})]
        lines += [
            json.dumps({"type": "message", "role": "user", "content": f"m{i}"}) for i in range(n)
        ]
        return ("\n".join(lines) + "\n").encode()

    db = ["--db", file_db_url]
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    writer = _fifo_writer(fifo, export("from-fifo", 300))
    done = run_cli([*db, "import", str(fifo), "--json"], env, timeout=60)
    writer.join(timeout=10)
    assert done.returncode == 0, done.stderr
    assert _json(done)["imported"] == ["from-fifo"]

    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(export("from-subst", 5))
    substituted = subprocess.run(
        ["bash", "-c", 'exec "$@" import <(cat "$0") --json', str(plain), *CLI, *db],
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert substituted.returncode == 0, substituted.stderr
    assert _json(substituted)["imported"] == ["from-subst"]

    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes(export("in-folder", 2))
    os.mkfifo(folder / "b.jsonl")
    listed = run_cli([*db, "import", str(folder), "--json"], env, timeout=60)
    assert listed.returncode == 1
    summary = _json(listed)
    assert summary["imported"] == ["in-folder"]
    assert [(f["source"], f["error"]) for f in summary["failed"]] == [
        (
            str(folder / "b.jsonl"),
            f"{folder / 'b.jsonl'} is a FIFO (named pipe), not a regular file: not read",
        )
    ]
    assert _sessions(file_db_url) == {"from-fifo": 300, "from-subst": 5, "in-folder": 2}
