"""OpenClawStore over a built agents tree: seed JSON shapes, safety, lock protocol, concurrency."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import re
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from sessionkeeper.errors import Conflict, Forbidden, InvalidInput, NotFound
from sessionkeeper.openclaw.directory import OpenClawStore, default_root, session_type_for_key
from sessionkeeper.openclaw.locking import IndexLock, atomic_write_json

_spec = importlib.util.spec_from_file_location(
    "openclaw_fixture_build", Path(__file__).parent / "fixtures" / "openclaw" / "build.py"
)
assert _spec is not None and _spec.loader is not None
build = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(build)

NOW = float(int(time.time()))  # whole seconds: updatedAt values render without a fraction
ARCHIVE_RE = r"\.jsonl\.deleted\.\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}Z$"


def iso_ago(minutes: float) -> str:
    return datetime.fromtimestamp(NOW - minutes * 60, UTC).isoformat()


def snapshot(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def index(root: Path, agent: str = "main") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / agent / "sessions" / "sessions.json").read_text())
    return data


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    root = tmp_path / "agents"
    return root, build.build_tree(root, NOW)


def make_store(root: Path, **kwargs: Any) -> OpenClawStore:
    kwargs.setdefault("protected_ids", set())
    return OpenClawStore(root, clock=lambda: NOW, **kwargs)


def row(sid: str, key: str, agent: str, kind: str, age: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "sessionId": sid,
        "key": key,
        "agentId": agent,
        "session_type": kind,
        "label": extra.get("label"),
        "updatedAt": iso_ago(age),
        "contextTokens": extra.get("contextTokens"),
        "model": extra.get("model"),
    }


def test_list_sessions_shape_and_order(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    before = snapshot(root)
    result = make_store(root).list_sessions()
    assert result == {
        "session_count": 11,
        "sessions": [
            row("talk-direct-1", "agent:aria-talk:direct:u1", "aria-talk", "direct", 1),
            row(
                "main-0001",
                "agent:main:main",
                "main",
                "direct",
                2,
                label="main",
                model="gpt-4o",
                contextTokens=12000,
            ),
            row("sub-fresh-1", "agent:main:subagent:s1", "main", "subagent", 5, label="research"),
            row(
                "shared-01", "agent:main:discord:channel:123", "main", "direct", 10, label="discord"
            ),
            row("an-direct-1", "agent:analyst:main", "analyst", "direct", 30, model="claude"),
            row("missing-tx-1", "agent:main:cron:job2", "main", "cron", 90, label="nightly"),
            row(
                "talk-sub-1",
                "agent:aria-talk:subagent:x",
                "aria-talk",
                "subagent",
                120,
                label="talk",
            ),
            row(
                "run-old-1", "agent:main:cron:job1:run:r1", "main", "cron", 120, model="gpt-4o-mini"
            ),
            row(
                "cron-old-1",
                "agent:main:cron:job1",
                "main",
                "cron",
                180,
                label="heartbeat",
                model="gpt-4o",
                contextTokens=500,
            ),
            row("shared-01", "agent:main:telegram:dm:9", "main", "direct", 240),
            row("an-run-1", "agent:analyst:run:abc", "analyst", "run", 2880, contextTokens=42),
        ],
    }
    analyst = make_store(root).list_sessions("analyst")
    assert analyst["session_count"] == 2
    assert [s["id"] for s in analyst["sessions"]] == ["an-direct-1", "an-run-1"]
    assert make_store(root).list_sessions("idle") == {"session_count": 0, "sessions": []}
    with pytest.raises(NotFound):
        make_store(root).list_sessions("nobody")
    with pytest.raises(InvalidInput):
        make_store(root).list_sessions("../agents")
    assert snapshot(root) == before


def test_list_of_missing_root_is_empty(tmp_path: Path) -> None:
    assert make_store(tmp_path / "nope").list_sessions() == {"session_count": 0, "sessions": []}


def test_session_type_for_key() -> None:
    assert session_type_for_key("agent:main:cron:j") == "cron"
    assert session_type_for_key("agent:main:cron:j:run:r") == "cron"
    assert session_type_for_key("agent:main:subagent:x") == "subagent"
    assert session_type_for_key("agent:main:run:x") == "run"
    assert session_type_for_key("agent:main:main") == "direct"


def test_stats(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    assert make_store(root).get_session_stats() == {
        "total_sessions": 11,
        "stale_sessions": 6,
        "active_sessions": 5,
        "by_agent": {"analyst": 2, "aria-talk": 2, "idle": 0, "main": 7},
        "stale_threshold_minutes": 60,
    }
    assert make_store(root).get_session_stats(stale_minutes=1.5)["stale_sessions"] == 10
    with pytest.raises(InvalidInput):
        make_store(root).get_session_stats(stale_minutes=-1)


STALE_IDS = ["missing-tx-1", "run-old-1", "talk-sub-1", "cron-old-1", "an-run-1"]


def test_prune_dry_run_changes_nothing(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    before = snapshot(root)
    calls: list[str] = []
    store = make_store(root, on_deleted=lambda sid: calls.append(sid) is None)
    assert store.prune_sessions(60, dry_run=True) == {
        "total_sessions": 10,
        "pruned_count": 5,
        "kept_count": 5,
        "dry_run": True,
        "deleted_ids": STALE_IDS,
        "errors": [],
        "threshold_minutes": 60,
    }
    assert snapshot(root) == before
    assert calls == []


def test_prune(tree: tuple[Path, dict[str, Any]]) -> None:
    root, info = tree
    calls: list[str] = []
    store = make_store(root, on_deleted=lambda sid: calls.append(sid) is None)
    assert store.prune_sessions(60) == {
        "total_sessions": 10,
        "pruned_count": 5,
        "kept_count": 5,
        "dry_run": False,
        "deleted_ids": STALE_IDS,
        "errors": [],
        "threshold_minutes": 60,
    }
    assert calls == STALE_IDS
    main = index(root)
    expected = {k: v for k, v in info["entries"]["main"].items()}
    for key in ("agent:main:cron:job1", "agent:main:cron:job1:run:r1", "agent:main:cron:job2"):
        del expected[key]
    assert main == expected  # unknown fields, the stale key of the fresh shared session, meta
    assert list(main) == list(expected)
    assert index(root, "analyst") == {
        "agent:analyst:main": info["entries"]["analyst"]["agent:analyst:main"]
    }
    assert list(index(root, "aria-talk")) == ["agent:aria-talk:direct:u1"]
    for rel in ("main/sessions/cron-old-1", "main/sessions/run-old-1", "analyst/sessions/an-run-1"):
        assert not (root / f"{rel}.jsonl").exists()
        archives = list((root / rel).parent.glob(Path(rel).name + ".jsonl.deleted.*"))
        assert len(archives) == 1 and re.search(ARCHIVE_RE, archives[0].name)
    assert (root / "main/sessions/shared-01.jsonl").exists()
    again = store.prune_sessions(60)
    assert again["pruned_count"] == 0 and again["total_sessions"] == 5


def test_prune_keeps_protected(tree: tuple[Path, dict[str, Any]], monkeypatch: Any) -> None:
    root, _ = tree
    monkeypatch.setenv("ARIA_SESSION_ID", "talk-sub-1")
    store = OpenClawStore(root, clock=lambda: NOW + 3600)  # main session now stale too
    result = store.prune_sessions(60)
    assert "talk-sub-1" not in result["deleted_ids"]
    assert "main-0001" not in result["deleted_ids"]  # agent main's main session
    assert "an-direct-1" not in result["deleted_ids"]  # agent analyst's main session
    assert result["kept_count"] == 3
    assert "agent:aria-talk:subagent:x" in index(root, "aria-talk")
    assert "agent:main:main" in index(root)
    assert "agent:analyst:main" in index(root, "analyst")


def test_delete_two_keys(tree: tuple[Path, dict[str, Any]]) -> None:
    root, info = tree
    seen: list[str] = []
    store = make_store(root, on_deleted=lambda sid: seen.append(sid) is None)
    result = store.delete_session("shared-01")
    assert result == {
        "deleted": "shared-01",
        "removed_keys": ["agent:main:discord:channel:123", "agent:main:telegram:dm:9"],
        "transcript_archived": True,
        "pg_status_updated": True,
        "message": "Session shared-01 removed (2 keys, transcript=archived), DB marked ended",
    }
    assert seen == ["shared-01"]
    expected = dict(info["entries"]["main"])
    del expected["agent:main:discord:channel:123"], expected["agent:main:telegram:dm:9"]
    assert index(root) == expected and list(index(root)) == list(expected)
    names = [p.name for p in (root / "main/sessions").glob("shared-01*")]
    assert len(names) == 1 and re.fullmatch(r"shared-01" + ARCHIVE_RE, names[0])
    assert not (root / "main/sessions/sessions.json.lock").exists()
    assert [p.name for p in (root / "main/sessions").glob("*.tmp")] == []
    with pytest.raises(NotFound):
        store.delete_session("shared-01")


def test_delete_without_callback_and_failing_callback(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    result = make_store(root).delete_session("missing-tx-1")
    assert result == {
        "deleted": "missing-tx-1",
        "removed_keys": ["agent:main:cron:job2"],
        "transcript_archived": False,
        "pg_status_updated": False,
        "message": "Session missing-tx-1 removed (1 key, transcript=missing), DB not updated",
    }

    def boom(sid: str) -> bool:
        raise RuntimeError("db down")

    result = make_store(root, on_deleted=boom).cleanup_after_delegation("talk-sub-1")
    assert result["pg_status_updated"] is False
    assert result["removed_keys"] == ["agent:aria-talk:subagent:x"]
    assert result["message"] == (
        "Session talk-sub-1 removed (1 key, transcript=archived), "
        "DB not updated (callback failed: RuntimeError: db down)"
    )
    # A transcript no index points at can still be deleted (archived).
    orphan = make_store(root).delete_session("orphan-1")
    assert orphan["removed_keys"] == [] and orphan["transcript_archived"] is True


def test_unknown_id_changes_nothing(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    before = snapshot(root)
    with pytest.raises(NotFound):
        make_store(root).delete_session("no-such-session")
    assert snapshot(root) == before


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "a/b", "..", ".", "x\x00y", "/etc/passwd", "a\\b", "", 7, None]
)
def test_path_escape_ids_refused(tree: tuple[Path, dict[str, Any]], bad: Any) -> None:
    root, _ = tree
    before = snapshot(root)
    store = make_store(root)
    for call in (store.delete_session, store.cleanup_after_delegation):
        with pytest.raises(InvalidInput):
            call(bad)
    with pytest.raises(InvalidInput):
        store.read_transcript("main", bad)
    with pytest.raises(InvalidInput):
        store.read_transcript(bad, "main-0001")
    assert snapshot(root) == before


def test_protected_refused(tree: tuple[Path, dict[str, Any]], monkeypatch: Any) -> None:
    root, _ = tree
    before = snapshot(root)
    monkeypatch.setenv("ARIA_SESSION_ID", "an-direct-1")
    store = OpenClawStore(root, clock=lambda: NOW)
    assert store.protected() == {"an-direct-1", "main-0001"}
    for sid in ("an-direct-1", "main-0001"):
        with pytest.raises(Forbidden):
            store.delete_session(sid)
        with pytest.raises(Forbidden):
            store.cleanup_after_delegation(sid)
    with pytest.raises(Forbidden):
        make_store(root, protected_ids={"sub-fresh-1"}).delete_session("sub-fresh-1")
    assert snapshot(root) == before
    # OpenClaw's session.mainKey, normalised as OpenClaw does; agent:<id>:main stays an alias.
    rule = make_store(root, main_key=" Work ").main_rule
    assert rule.keys("Analyst") == {"agent:analyst:work", "agent:analyst:main", "main", "work"}
    assert rule.is_main("analyst", "AGENT:analyst:Work") and not rule.is_main("analyst", "x")


def test_orphans(tree: tuple[Path, dict[str, Any]]) -> None:
    root, info = tree
    before = snapshot(root)
    expected = {
        "missing_transcripts": ["agent:main:cron:job2"],
        "orphan_transcripts": ["main/sessions/orphan-1.jsonl"],
        "expired_archives": [info["odd_archive"], info["old_archive"]],
    }
    store = make_store(root)
    assert store.orphans(dry_run=True) == {**expected, "dry_run": True}
    assert snapshot(root) == before
    assert store.orphans() == {**expected, "dry_run": False}
    assert "agent:main:cron:job2" not in index(root)
    assert index(root)["__meta__"] == build.META_VALUE
    assert not (root / "main/sessions/orphan-1.jsonl").exists()
    archived = list((root / "main/sessions").glob("orphan-1.jsonl.deleted.*"))
    assert len(archived) == 1 and re.search(ARCHIVE_RE, archived[0].name)
    assert not (root / info["old_archive"]).exists() and not (root / info["odd_archive"]).exists()
    assert (root / info["recent_archive"]).exists()
    assert store.orphans() == {
        "missing_transcripts": [],
        "orphan_transcripts": [],
        "expired_archives": [],
        "dry_run": False,
    }


def test_read_transcript_and_iter_entries(tree: tuple[Path, dict[str, Any]]) -> None:
    root, info = tree
    store = make_store(root)
    records = store.read_transcript("main", "main-0001")
    assert [r["type"] for r in records] == ["session", "message", "message"]
    with pytest.raises(NotFound):
        store.read_transcript("main", "missing-tx-1")
    path = root / "analyst/sessions/an-direct-1.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(InvalidInput, match="line 5"):
        store.read_transcript("analyst", "an-direct-1")
    entries = list(store.iter_entries())
    assert len(entries) == 11
    assert (
        "analyst",
        "agent:analyst:main",
        info["entries"]["analyst"]["agent:analyst:main"],
    ) in entries
    assert all(key != "__meta__" for _a, key, _e in entries)


def files_of(root: Path, agent: str) -> dict[str, bytes]:
    return {k: v for k, v in snapshot(root).items() if k.startswith(f"{agent}/")}


@pytest.mark.parametrize("content", ["{oops", "", "   \n", "[1, 2]", "\xff\xfe"])
def test_unreadable_index_stops_that_agent_only(
    tree: tuple[Path, dict[str, Any]], content: str
) -> None:
    root, _ = tree
    bad = root / "analyst/sessions/sessions.json"
    bad.write_bytes(content.encode("latin-1"))
    before = files_of(root, "analyst")
    store = make_store(root)

    listed = store.list_sessions()
    assert {s["agentId"] for s in listed["sessions"]} == {"main", "aria-talk"}
    (problem,) = listed["agent_errors"]
    assert problem["agent"] == "analyst" and "sessions.json" in problem["error"]
    assert "left unchanged" in problem["error"]
    if not content.strip():
        assert "is empty" in problem["error"]
    with pytest.raises(InvalidInput, match="sessions.json"):
        store.list_sessions("analyst")  # asked for by name: refused outright
    stats = store.get_session_stats()
    assert "analyst" not in stats["by_agent"] and stats["agent_errors"] == [problem]

    # delete: the session may be in the unreadable agent, so not "not found", and no change
    with pytest.raises(InvalidInput, match="analyst"):
        store.delete_session("an-run-1")
    # … while a session of another agent is deleted, the skipped agent reported
    deleted = store.delete_session("talk-sub-1")
    assert deleted["removed_keys"] == ["agent:aria-talk:subagent:x"]
    assert deleted["agent_errors"] == [problem]

    pruned = store.prune_sessions(60)
    assert "an-run-1" not in pruned["deleted_ids"] and "cron-old-1" in pruned["deleted_ids"]
    assert pruned["agent_errors"] == [problem]

    repaired = store.orphans()
    assert repaired["orphan_transcripts"] == ["main/sessions/orphan-1.jsonl"]
    assert not any(p.startswith("analyst/") for p in repaired["expired_archives"])
    assert repaired["agent_errors"] == [problem]
    assert files_of(root, "analyst") == before  # nothing of that agent touched
    assert bad.read_bytes() == content.encode("latin-1")


def test_healthy_tree_has_the_seed_shapes_exactly(tree: tuple[Path, dict[str, Any]]) -> None:
    store = make_store(tree[0])
    assert "agent_errors" not in store.list_sessions()
    assert "agent_errors" not in store.get_session_stats()
    assert "agent_errors" not in store.prune_sessions(60, dry_run=True)
    assert "agent_errors" not in store.orphans(dry_run=True)


def test_symlinked_agent_dir_out_of_the_root_is_not_followed(
    tree: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _ = tree
    outside = tmp_path / "elsewhere"
    build.build_tree(outside, NOW)
    outside_before = snapshot(outside)
    os.symlink(outside / "main", root / "intruder")
    store = make_store(root)
    assert "intruder" not in store.agents()
    listed = store.list_sessions()
    assert [p["agent"] for p in listed["agent_errors"]] == ["intruder"]
    assert "leads out of" in listed["agent_errors"][0]["error"]
    with pytest.raises(InvalidInput, match="leads out of"):
        store.list_sessions("intruder")
    store.prune_sessions(60)
    store.orphans()
    with pytest.raises(InvalidInput, match="leads out of"):
        store.read_transcript("intruder", "cron-old-1")
    assert snapshot(outside) == outside_before


def test_symlinked_agent_dir_inside_the_root_is_followed(
    tree: tuple[Path, dict[str, Any]],
) -> None:
    root, _ = tree
    os.rename(root / "aria-talk", root / ".aria-talk-real")
    os.symlink(".aria-talk-real", root / "aria-talk")
    store = make_store(root)
    assert "aria-talk" in store.agents()
    assert store.delete_session("talk-sub-1")["removed_keys"] == ["agent:aria-talk:subagent:x"]
    assert "agent:aria-talk:subagent:x" not in index(root, "aria-talk")


def test_symlinked_index_inside_the_root_is_written_through(
    tree: tuple[Path, dict[str, Any]],
) -> None:
    root, _ = tree
    sessions = root / "main/sessions"
    os.rename(sessions / "sessions.json", sessions / "index.real.json")
    os.chmod(sessions / "index.real.json", 0o640)
    os.symlink("index.real.json", sessions / "sessions.json")
    store = make_store(root)
    store.delete_session("cron-old-1")
    assert (sessions / "sessions.json").is_symlink()  # still a link …
    assert os.readlink(sessions / "sessions.json") == "index.real.json"
    real = json.loads((sessions / "index.real.json").read_text())
    assert "agent:main:cron:job1" not in real  # … to the file that was rewritten
    assert (sessions / "index.real.json").stat().st_mode & 0o777 == 0o640
    assert not (sessions / "sessions.json.lock").exists()


def test_symlinked_index_out_of_the_root_is_refused(
    tree: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _ = tree
    outside = tmp_path / "outside.json"
    outside.write_text((root / "analyst/sessions/sessions.json").read_text())
    before = outside.read_bytes()
    link = root / "analyst/sessions/sessions.json"
    link.unlink()
    os.symlink(outside, link)
    store = make_store(root)
    listed = store.list_sessions()
    assert [p["agent"] for p in listed["agent_errors"]] == ["analyst"]
    assert "outside" in listed["agent_errors"][0]["error"]
    with pytest.raises(InvalidInput, match="outside"):
        store.delete_session("an-run-1")
    store.prune_sessions(0)
    store.orphans()
    assert outside.read_bytes() == before and link.is_symlink()
    assert (root / "analyst/sessions/an-run-1.jsonl").exists()


def test_dangling_index_symlink_is_refused(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    link = root / "analyst/sessions/sessions.json"
    link.unlink()
    os.symlink("gone.json", link)
    store = make_store(root)
    assert store.orphans()["agent_errors"][0]["agent"] == "analyst"
    assert (root / "analyst/sessions/an-run-1.jsonl").exists()  # not archived as an orphan


def test_transcript_symlink_out_of_the_root(
    tree: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    root, _ = tree
    secret = tmp_path / "secret.jsonl"
    secret.write_text('{"type": "message", "message": {"role": "user", "content": "x"}}\n')
    transcript = root / "main/sessions/cron-old-1.jsonl"
    transcript.unlink()
    os.symlink(secret, transcript)
    store = make_store(root)
    with pytest.raises(InvalidInput, match="outside"):
        store.read_transcript("main", "cron-old-1")
    store.delete_session("cron-old-1")  # archives the link itself, never its target
    assert secret.read_text().startswith('{"type"')
    archived = list((root / "main/sessions").glob("cron-old-1.jsonl.deleted.*"))
    assert len(archived) == 1 and archived[0].is_symlink()


@pytest.mark.parametrize("mode", [0o644, 0o600, 0o664])
def test_index_rewrite_keeps_the_file_mode(tree: tuple[Path, dict[str, Any]], mode: int) -> None:
    root, _ = tree
    path = root / "main/sessions/sessions.json"
    os.chmod(path, mode)
    make_store(root).delete_session("cron-old-1")
    assert path.stat().st_mode & 0o777 == mode
    assert not path.is_symlink()


def test_default_root(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("OPENCLAW_WORKSPACE", raising=False)
    monkeypatch.delenv("ARIA_WORKSPACE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_root() == tmp_path / ".openclaw" / "agents"
    monkeypatch.setenv("ARIA_WORKSPACE", str(tmp_path))
    assert default_root() == tmp_path
    (tmp_path / "agents").mkdir()
    assert default_root() == tmp_path / "agents"
    monkeypatch.setenv("OPENCLAW_WORKSPACE", str(tmp_path / "agents"))
    assert default_root() == tmp_path / "agents"


def test_stale_lock_is_broken(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    lock = root / "main/sessions/sessions.json.lock"
    lock.write_text(json.dumps({"pid": 999999, "createdAt": "2020-01-01T00:00:00+00:00"}))
    old = time.time() - 60
    os.utime(lock, (old, old))
    started = time.monotonic()
    result = make_store(root, lock_timeout=5).delete_session("cron-old-1")
    assert time.monotonic() - started < 2
    assert result["removed_keys"] == ["agent:main:cron:job1"]
    assert not lock.exists()
    assert [p.name for p in lock.parent.glob("sessions.json.lock*")] == []


def test_fresh_lock_times_out_with_conflict(tree: tuple[Path, dict[str, Any]]) -> None:
    root, _ = tree
    lock = root / "main/sessions/sessions.json.lock"
    lock.write_text(json.dumps({"pid": 4242, "createdAt": "2026-02-15T18:00:00+00:00"}))
    before = snapshot(root)
    started = time.monotonic()
    with pytest.raises(Conflict) as caught:
        make_store(root, lock_timeout=0.3).delete_session("cron-old-1")
    assert 0.3 <= time.monotonic() - started < 3
    assert str(lock) in caught.value.message and "pid 4242" in caught.value.message
    assert snapshot(root) == before  # nothing written, the holder's lock left alone
    # prune reports the blocked agent as errors instead of failing as a whole
    result = make_store(root, lock_timeout=0.1).prune_sessions(60)
    assert sorted(result["deleted_ids"]) == ["an-run-1", "talk-sub-1"]
    assert {e["id"] for e in result["errors"]} == {"cron-old-1", "run-old-1", "missing-tx-1"}
    assert lock.exists()


def test_lock_release_keeps_a_lock_that_is_not_ours(tmp_path: Path) -> None:
    path = tmp_path / "sessions.json"
    lock = IndexLock(path, timeout=1)
    with lock:
        # Someone broke our lock and took it: our release must not delete theirs.
        lock.lock_path.unlink()
        lock.lock_path.write_text('{"pid": 1}')
    assert lock.lock_path.exists()


# -- concurrency: 8 OS processes ---------------------------------------------------------------

N_DELETERS, PER_DELETER, N_STALE, N_KEEP, N_ADDERS, PER_ADDER = 4, 10, 20, 30, 2, 10


def _deleter(root: str, worker: int, barrier: Any, out: str) -> None:
    store = OpenClawStore(Path(root), protected_ids=set())
    barrier.wait(60)
    deleted = [store.delete_session(f"del-{worker}-{i}")["deleted"] for i in range(PER_DELETER)]
    Path(out).write_text(json.dumps(deleted))


def _pruner(root: str, worker: int, barrier: Any, out: str) -> None:
    store = OpenClawStore(Path(root), protected_ids=set())
    barrier.wait(60)
    deleted: list[str] = []
    errors: list[Any] = []
    for _ in range(3):
        result = store.prune_sessions(60)
        deleted += result["deleted_ids"]
        errors += result["errors"]
    Path(out).write_text(json.dumps({"deleted": deleted, "errors": errors}))


def _adder(root: str, worker: int, barrier: Any, out: str) -> None:
    """Plays the OpenClaw gateway: adds entries by the same lock protocol."""
    path = Path(root) / "main" / "sessions" / "sessions.json"
    barrier.wait(60)
    for i in range(PER_ADDER):
        with IndexLock(path):
            data = json.loads(path.read_text(encoding="utf-8"))
            data[f"agent:main:added:{worker}-{i}"] = {
                "sessionId": f"added-{worker}-{i}",
                "updatedAt": int(time.time() * 1000),
            }
            atomic_write_json(path, data)
    Path(out).write_text("[]")


def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    root = tmp_path / "agents"
    sessions = root / "main" / "sessions"
    sessions.mkdir(parents=True)
    now_ms = int(time.time() * 1000)
    data: dict[str, Any] = {}
    keep: dict[str, Any] = {}
    for i in range(N_KEEP):
        keep[f"agent:main:keep:{i}"] = {
            "sessionId": f"keep-{i}",
            "updatedAt": now_ms,
            "label": f"keep {i}",
            "custom": {"nested": [i, "ü"], "flag": True},
        }
    for w in range(N_DELETERS):
        for i in range(PER_DELETER):
            data[f"agent:main:subagent:del-{w}-{i}"] = {
                "sessionId": f"del-{w}-{i}",
                "updatedAt": now_ms,
            }
    for i in range(N_STALE):
        data[f"agent:main:cron:stale-{i}"] = {
            "sessionId": f"stale-{i}",
            "updatedAt": now_ms - 3 * 3_600_000,
        }
    data.update(keep)
    (sessions / "sessions.json").write_text(json.dumps(data, indent=2))
    for entry in data.values():
        (sessions / f"{entry['sessionId']}.jsonl").write_text('{"type":"session"}\n')

    ctx = multiprocessing.get_context("spawn")
    workers = [(_deleter, w) for w in range(N_DELETERS)]
    workers += [(_pruner, w) for w in range(2)] + [(_adder, w) for w in range(N_ADDERS)]
    barrier = ctx.Barrier(len(workers))
    procs = []
    for n, (target, w) in enumerate(workers):
        out = str(tmp_path / f"out-{n}.json")
        procs.append((ctx.Process(target=target, args=(str(root), w, barrier, out)), out, target))
    for proc, _, _ in procs:
        proc.start()
    for proc, _, _ in procs:
        proc.join(120)
    assert [proc.exitcode for proc, _, _ in procs] == [0] * len(procs)

    final = json.loads((sessions / "sessions.json").read_text(encoding="utf-8"))
    for key, entry in keep.items():
        assert final[key] == entry
    assert not any(
        k.startswith(("agent:main:subagent:del-", "agent:main:cron:stale-")) for k in final
    )
    added = {f"agent:main:added:{w}-{i}" for w in range(N_ADDERS) for i in range(PER_ADDER)}
    assert added <= set(final)
    assert len(final) == N_KEEP + len(added)

    pruned: list[str] = []
    for _proc, out, target in procs:
        result = json.loads(Path(out).read_text())
        if target is _pruner:
            assert result["errors"] == []
            pruned += result["deleted"]
    assert sorted(pruned) == sorted(f"stale-{i}" for i in range(N_STALE))  # each exactly once
    left = {p.name for p in sessions.glob("*.jsonl")}
    assert left == {f"keep-{i}.jsonl" for i in range(N_KEEP)}
    assert len(list(sessions.glob("*.jsonl.deleted.*"))) == N_DELETERS * PER_DELETER + N_STALE
    assert not (sessions / "sessions.json.lock").exists()
    assert list(sessions.glob("*.tmp")) == []


def test_transcript_keeps_records_with_unicode_line_separators(tmp_path: Path) -> None:
    # Node's JSON.stringify leaves U+2028/U+2029/U+0085 raw inside strings.
    sessions = tmp_path / "main" / "sessions"
    sessions.mkdir(parents=True)
    (sessions / "sessions.json").write_text("{}", encoding="utf-8")
    text = "a\u2028b\u2029c\u0085d\x0ce"
    (sessions / "s1.jsonl").write_text(
        json.dumps({"type": "message", "text": text}, ensure_ascii=False) + "\r\n\n",
        encoding="utf-8",
    )
    records = OpenClawStore(tmp_path).read_transcript("main", "s1")
    assert records == [{"type": "message", "text": text}]
