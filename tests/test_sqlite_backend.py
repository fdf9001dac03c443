"""SQLite backend details that the conformance suite cannot see from outside."""

from __future__ import annotations

from pathlib import Path

import pytest

import rawdb
from sessionkeeper.store.backends import sqlite_threads
from sessionkeeper.store.core import Store


async def test_reads_past_their_inline_budget_run_again_on_a_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'budget.db'}")
    try:
        for i in range(30):
            s = await store.create_session(agent_id="a", title=f"t{i}")
            await store.add_message(s.session_id, "user", f"needle number {i}")
        fast_page = await store.list_sessions(agent_id="a", search="needle")
        fast_hits = await store.search_messages("needle")
        # No budget at all: every listing and search is interrupted inline and re-run.
        monkeypatch.setattr(sqlite_threads, "INLINE_BUDGET_S", 0.0)
        assert await store.list_sessions(agent_id="a", search="needle") == fast_page
        assert await store.search_messages("needle") == fast_hits
        assert fast_page.total == 30 and len(fast_hits) == 20
    finally:
        await store.close()


async def test_ghost_purge_leaves_foreign_keys_on(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'fk.db'}")
    try:
        await store.create_session(session_id="ghost")
        keep = await store.create_session(session_id="keep")
        await store.add_message(keep.session_id, "user", "x")
        assert await store.delete_ghost_sessions(0) == 1
        # The cascade still works afterwards: deleting a session takes its messages.
        await store.delete_session("keep")
        assert await rawdb.fetch(store, "SELECT count(*) FROM messages") == [(0,)]
    finally:
        await store.close()
