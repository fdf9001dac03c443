"""The skill-runner surface (compat/skill.py): dispatch, argument checks, the two-layer delete.

``sessionkeeper skill session_manager FUNCTION 'JSON'`` must print exactly what the
filesystem library returns (the seed's shapes), and ``{"error": "..."}`` with a non-zero
exit code on any failure.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import Result

from clitools import Invoke, as_json, isolate_user, load_openclaw_builder, make_invoke
from sessionkeeper import Store
from sessionkeeper.compat.skill import DatabaseMarker, run_skill
from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.openclaw.directory import OpenClawStore

build = load_openclaw_builder()


@pytest.fixture
def cli(file_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    # Every invocation opens its own Store: the database must outlive one (no in-memory).
    isolate_user(tmp_path, monkeypatch)
    return make_invoke(file_db_url)


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "agents"
    build.build_tree(root, time.time())
    yield root


def test_skill_runner(cli: Invoke, tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENCLAW_WORKSPACE", str(tree))
    lib = OpenClawStore(tree)

    def skill(function: str, args: str = "{}", db: str | None = None) -> Result:
        return cli("skill", "session_manager", function, args, db=db)

    assert as_json(skill("list_sessions")) == lib.list_sessions()
    assert as_json(skill("list_sessions", '{"agent": "main"}')) == lib.list_sessions("main")
    assert as_json(skill("get_session_stats", '{"stale_minutes": 30}')) == (
        lib.get_session_stats(30)
    )
    dry = as_json(skill("prune_sessions", '{"max_age_minutes": 60, "dry_run": true}'))
    assert dry == lib.prune_sessions(60, dry_run=True)
    deleted = as_json(skill("delete_session", '{"session_id": "cron-old-1"}'))
    assert deleted["deleted"] == "cron-old-1" and deleted["pg_status_updated"] is False
    cleaned = as_json(skill("cleanup_after_delegation", '{"session_id": "sub-fresh-1"}'))
    assert cleaned["deleted"] == "sub-fresh-1"
    pruned = as_json(skill("prune_sessions", '{"max_age_minutes": 60}'))
    assert pruned["dry_run"] is False and "run-old-1" in pruned["deleted_ids"]

    for function, args, code in (
        ("delete_session", '{"session_id": "../../etc/passwd"}', 2),
        ("delete_session", '{"session_id": "no-such"}', 3),
        ("delete_session", "{}", 2),
        ("frobnicate", "{}", 2),
        ("list_sessions", "not json", 2),
        ("list_sessions", '{"agnet": "main"}', 2),
        ("prune_sessions", '{"max_age_minutes": "soon"}', 2),
    ):
        result = skill(function, args)
        assert result.exit_code == code, (function, args, result.stdout)
        error = json.loads(result.stdout)
        assert list(error) == ["error"] and isinstance(error["error"], str)
    unknown = cli("skill", "other_skill", "list_sessions", "{}", db=None)
    assert unknown.exit_code == 3 and "error" in json.loads(unknown.stdout)


async def test_database_marker_ends_by_id_or_aria_session_id(file_db_url: str) -> None:
    # Three Stores on one URL (ours, the marker's, ours again): a shared database.
    store = await Store.open(file_db_url)
    try:
        direct = await store.create_session(session_id="fs-direct-1")
        mapped = await store.create_session(metadata={"aria_session_id": "fs-uuid-2"})
        untouched = await store.create_session(metadata={"aria_session_id": "other"})
    finally:
        await store.close()
    with DatabaseMarker(file_db_url) as marker:
        assert marker("fs-direct-1") is True
        assert marker("fs-uuid-2") is True
        assert marker("never-heard-of") is False
        assert marker("../weird id") is False
    store = await Store.open(file_db_url)
    try:
        assert (await store.get_session(direct.session_id)).status == "ended"
        assert (await store.get_session(mapped.session_id)).status == "ended"
        assert (await store.get_session(untouched.session_id)).status == "active"
    finally:
        await store.close()


def test_run_skill_directly(tree: Path) -> None:
    lib = OpenClawStore(tree)
    assert run_skill("session_manager", "list_sessions", "", root=tree) == lib.list_sessions()
    assert run_skill("session_manager", "get_session_stats", None, root=tree) == (
        lib.get_session_stats()
    )
    with pytest.raises(NotFound):
        run_skill("nope", "list_sessions", "{}", root=tree)
    with pytest.raises(InvalidInput, match="unknown argument"):
        run_skill("session_manager", "delete_session", '{"id": "x"}', root=tree)
    with pytest.raises(InvalidInput, match="true or false"):
        run_skill("session_manager", "prune_sessions", '{"dry_run": "yes"}', root=tree)
    with pytest.raises(InvalidInput, match="JSON object"):
        run_skill("session_manager", "list_sessions", "[1, 2]", root=tree)


async def test_run_skill_with_database_marks_ended(tree: Path, file_db_url: str) -> None:
    # run_skill opens its own Store on the URL: a shared database.
    store = await Store.open(file_db_url)
    try:
        await store.create_session(session_id="cron-old-1", agent_id="main")
        other = await store.create_session(metadata={"aria_session_id": "run-old-1"})
    finally:
        await store.close()
    result = run_skill(
        "session_manager",
        "delete_session",
        '{"session_id": "cron-old-1"}',
        root=tree,
        database_url=file_db_url,
    )
    assert result["pg_status_updated"] is True
    assert result["message"].endswith("DB marked ended")
    pruned = run_skill(
        "session_manager",
        "prune_sessions",
        '{"max_age_minutes": 100}',
        root=tree,
        database_url=file_db_url,
    )
    assert "run-old-1" in pruned["deleted_ids"] and pruned["errors"] == []
    store = await Store.open(file_db_url)
    try:
        assert (await store.get_session("cron-old-1")).status == "ended"
        assert (await store.get_session(other.session_id)).status == "ended"
    finally:
        await store.close()


def test_skill_cli_with_database(cli: Invoke, tree: Path) -> None:
    as_json(cli("new", "--json"))  # the database exists and has an unrelated session
    result = cli(
        "skill",
        "session_manager",
        "cleanup_after_delegation",
        '{"session_id": "sub-fresh-1"}',
        "--root",
        str(tree),
    )
    data = as_json(result)
    assert data["deleted"] == "sub-fresh-1" and data["pg_status_updated"] is False
