"""SQLite backend details that the conformance suite cannot see from outside."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

import rawdb
from sessionkeeper.errors import Unavailable
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


# ── hand-overs: work run on the writer thread, answered on the caller's loop ─────────────


def _hold_the_writer(store: Store, seconds: float) -> None:
    """Queue work that keeps the writer thread busy (as a long write would)."""
    backend = store._backend
    assert isinstance(backend, sqlite_threads.Runner)
    backend._writer.submit(lambda conn: time.sleep(seconds))


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_work_still_queued_past_the_timeout_is_cancelled_and_refused(
    tmp_path: Path, where: str
) -> None:
    url = "sqlite://" if where == "memory" else f"sqlite:///{tmp_path / 'queued.db'}"
    store = await Store.open(url, timeout=0.2)
    try:
        s = await store.create_session(session_id="q")
        _hold_the_writer(store, 2.0)
        started = time.monotonic()
        with pytest.raises(Unavailable, match=r"did not answer within 0\.2 s"):
            await store.add_message(s.session_id, "user", "queued too long")
        assert 1.1 <= time.monotonic() - started < 1.9  # timeout + 1 s, not the 2 s hold
        await asyncio.sleep(1.0)  # the hold ends: the refused write must not run after it
        assert (await store.get_session(s.session_id)).message_count == 0
    finally:
        await store.close()


async def test_a_cancelled_caller_does_not_stop_its_queued_write(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path / 'cancel.db'}")
    try:
        s = await store.create_session(session_id="c")
        _hold_the_writer(store, 0.3)
        task = asyncio.create_task(store.add_message(s.session_id, "user", "sent"))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(0.5)
        # The write ran: a caller that gave up may not know, but it is not half-done.
        assert [m.content for m in await store.get_messages(s.session_id)] == ["sent"]
    finally:
        await store.close()


def test_a_write_that_ends_after_its_loop_closed_is_kept_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The writer answers a loop that has closed meanwhile: nothing is raised or logged
    on its thread, and the store goes on serving other loops."""
    url = f"sqlite:///{tmp_path / 'closed.db'}"
    store = asyncio.run(Store.open(url))

    async def give_up() -> None:
        await store.create_session(session_id="l")
        _hold_the_writer(store, 0.3)
        task = asyncio.create_task(store.add_message("l", "user", "after the loop"))
        await asyncio.sleep(0.05)
        task.cancel()

    asyncio.run(give_up())  # the loop closes while the append waits in the queue
    time.sleep(0.5)

    async def check() -> list[str]:
        try:
            return [m.content for m in await store.get_messages("l")]
        finally:
            await store.close()

    assert asyncio.run(check()) == ["after the loop"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
