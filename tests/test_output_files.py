"""Files the CLI writes or repairs (issue 8, item 6): ``export -o`` onto FIFOs, existing files
(their mode kept), symlinks and stdout; ``fs`` with one agent's index empty or broken.

Tests make their own FIFOs in tmp_path and never write to the machine's device nodes.
"""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from pathlib import Path

import pytest

from clitools import Invoke, as_json, isolate_user, load_openclaw_builder, make_invoke
from sessionkeeper.atomic import open_output, standard_stream

build = load_openclaw_builder()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """SQLite only: the files are the point here, not the database."""
    isolate_user(tmp_path, monkeypatch)
    invoke = make_invoke(f"sqlite:///{tmp_path / 'store.db'}")
    as_json(invoke("new", "--title", "exported", "--json"))
    as_json(invoke("add", "user", "héllo\nworld", "--json"))
    as_json(invoke("add", "assistant", "hi ✓", "--json"))
    return invoke


def expected_export(cli: Invoke) -> str:
    result = cli("export", "--all")
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_export_onto_a_fifo_writes_into_it(cli: Invoke, tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    received: list[bytes] = []

    def reader() -> None:
        with open(fifo, "rb") as handle:  # blocks until the export opens it
            received.append(handle.read())

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    result = cli("export", "--all", "-o", str(fifo), "--json")
    thread.join(timeout=30)
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["messages"] == 2
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not replaced by a file
    assert received == [expected_export(cli).encode()]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".pipe")) == []


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o640])
def test_export_onto_an_existing_file_keeps_its_mode(
    cli: Invoke, tmp_path: Path, mode: int
) -> None:
    target = tmp_path / "backup.jsonl"
    target.write_text("old contents\n")
    os.chmod(target, mode)
    inode = target.stat().st_ino
    assert as_json(cli("export", "--all", "-o", str(target), "--json"))["sessions"] == 1
    assert stat.S_IMODE(target.stat().st_mode) == mode
    assert target.read_text(encoding="utf-8") == expected_export(cli)
    assert target.stat().st_ino != inode  # replaced atomically (a new file renamed over it)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".backup")] == []


def test_export_to_a_new_file_gets_the_umask_mode(cli: Invoke, tmp_path: Path) -> None:
    old = os.umask(0o027)
    try:
        as_json(cli("export", "--all", "-o", str(tmp_path / "new.jsonl"), "--json"))
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new.jsonl").stat().st_mode) == 0o640


def test_export_through_a_symlink_replaces_the_target(cli: Invoke, tmp_path: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    os.chmod(real, 0o644)
    link = tmp_path / "link.jsonl"
    os.symlink("real.jsonl", link)
    as_json(cli("export", "--all", "-o", str(link), "--json"))
    assert link.is_symlink() and os.readlink(link) == "real.jsonl"
    assert real.read_text(encoding="utf-8") == expected_export(cli)
    assert stat.S_IMODE(real.stat().st_mode) == 0o644


def test_export_dash_is_stdout_and_failures_leave_the_old_file(cli: Invoke, tmp_path: Path) -> None:
    dashed = cli("export", "--all", "-o", "-")
    assert dashed.exit_code == 0 and dashed.stdout == expected_export(cli)
    target = tmp_path / "keep.jsonl"
    target.write_text("precious\n")
    failed = cli("export", "nope", "-o", str(target))
    assert failed.exit_code == 3
    assert target.read_text() == "precious\n"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".keep")] == []
    onto_dir = cli("export", "--all", "-o", str(tmp_path))
    assert onto_dir.exit_code == 1 and "is a directory" in onto_dir.stderr
    no_dir = cli("export", "--all", "-o", str(tmp_path / "no" / "x.jsonl"))
    assert no_dir.exit_code == 1 and "no such directory" in no_dir.stderr


def test_standard_streams_are_named_not_reopened() -> None:
    assert standard_stream("-") == 1 and standard_stream("/dev/stdout") == 1
    assert standard_stream("/dev/stderr") == 2
    assert standard_stream("/dev/fd/7") == 7 and standard_stream("/proc/self/fd/5") == 5
    assert standard_stream("/dev/null") is None and standard_stream("out.jsonl") is None


def test_open_output_writes_to_a_descriptor_in_place(tmp_path: Path) -> None:
    """/dev/fd/N writes to the open descriptor (an append stays an append)."""
    path = tmp_path / "appended.txt"
    path.write_text("first\n")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    try:
        with open_output(f"/dev/fd/{fd}") as handle:
            handle.write("second\n")
    finally:
        os.close(fd)
    assert path.read_text() == "first\nsecond\n"


# ── fs: one agent's broken index ──────────────────────────────────────────────


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "agents"
    build.build_tree(root, time.time())
    return root


def files_of(root: Path, agent: str) -> dict[str, bytes]:
    base = root / agent
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in base.rglob("*") if p.is_file()}


@pytest.mark.parametrize("content", ["", "{not json"])
def test_fs_orphans_with_one_empty_index(cli: Invoke, tree: Path, content: str) -> None:
    (tree / "analyst/sessions/sessions.json").write_text(content)
    (tree / "analyst/sessions/stray-1.jsonl").write_text("{}\n")
    before = files_of(tree, "analyst")
    result = cli("fs", "--root", str(tree), "orphans", "--json", db=None)
    assert result.exit_code == 1, result.stderr  # done for the others, but not for all
    data = json.loads(result.stdout)
    assert data["orphan_transcripts"] == ["main/sessions/orphan-1.jsonl"]  # others handled
    assert not (tree / "main/sessions/orphan-1.jsonl").exists()
    assert files_of(tree, "analyst") == before  # nothing archived there
    assert [p["agent"] for p in data["agent_errors"]] == ["analyst"]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: agent analyst:") and "sessions.json" in line

    human = cli("fs", "--root", str(tree), "orphans", db=None)
    assert human.exit_code == 1 and "agent analyst" in human.stderr
    listed = cli("fs", "--root", str(tree), "list", "--json", db=None)
    assert listed.exit_code == 1
    assert {s["agentId"] for s in json.loads(listed.stdout)["sessions"]} == {"main", "aria-talk"}
    refused = cli("fs", "--root", str(tree), "delete", "an-run-1", db=None)
    assert refused.exit_code == 2 and "analyst" in refused.stderr
    assert files_of(tree, "analyst") == before
