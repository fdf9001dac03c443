"""SQLite's search index is filled in batches (backends/sqlite_index.py): an append only
notes its message, and every search still finds every acknowledged message."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

import rawdb
from sessionkeeper.store.backends import sqlite_index
from sessionkeeper.store.core import Store


@pytest.fixture(params=["file", "memory"])
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'index.db'}" if request.param == "file" else "sqlite://"


async def _noted(store: Store) -> int:
    return int((await rawdb.fetch(store, "SELECT count(*) FROM messages_unindexed"))[0][0])


async def _integrity(store: Store) -> None:
    # FTS5 compares its index with the terms of every message (through the view): raises
    # "database disk image is malformed" if they disagree. Only once nothing is noted.
    assert await _noted(store) == 0
    await rawdb.execute(
        store, "INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)"
    )


async def test_appends_are_noted_and_a_search_indexes_them(sqlite_url: str) -> None:
    async with await Store.open(sqlite_url) as store:
        s = await store.create_session()
        for i in range(5):
            await store.add_message(s.session_id, "user", f"message {i} about zebras")
        assert await _noted(store) == 5
        assert len(await store.search_messages("zebra")) == 5
        assert await _noted(store) == 0
        # A listing filtered by search finds a noted message too (without indexing it).
        await store.add_message(s.session_id, "user", "a lonely okapi")
        assert [x.session_id for x in (await store.list_sessions(search="okapi")).items] == [
            s.session_id
        ]
        assert await _noted(store) == 1
        await store.search_messages("okapi")
        await _integrity(store)


async def test_deleting_noted_and_indexed_messages_keeps_the_index_whole(sqlite_url: str) -> None:
    async with await Store.open(sqlite_url) as store:
        a = await store.create_session()
        b = await store.create_session()
        await store.add_message(a.session_id, "user", "indexed walrus")
        await store.search_messages("walrus")  # indexes it
        await store.add_message(a.session_id, "user", "noted walrus")
        await store.add_message(b.session_id, "user", "another walrus")
        assert await _noted(store) == 2
        await store.delete_session(a.session_id)  # one indexed, one noted message
        assert await _noted(store) == 1
        hits = await store.search_messages("walrus")
        assert [(h.session_id, h.seq) for h in hits] == [(b.session_id, 1)]
        await _integrity(store)


async def test_a_batch_is_indexed_without_a_search(sqlite_url: str) -> None:
    async with await Store.open(sqlite_url) as store:
        s = await store.create_session()
        n = sqlite_index.INDEX_BATCH
        for start in range(0, n - 1, 100):
            await store.add_messages(
                s.session_id, [{"role": "user", "content": "heron"}] * min(100, n - 1 - start)
            )
        assert await _noted(store) == n - 1
        await store.add_message(s.session_id, "user", "heron")  # the batch's last append
        for _ in range(100):  # the batch is a job queued behind the append
            if await _noted(store) == 0:
                break
            await asyncio.sleep(0.02)
        assert await _noted(store) == 0
        await _integrity(store)


async def test_an_idle_writer_indexes_what_is_noted(tmp_path: Path) -> None:
    path = tmp_path / "idle.db"
    async with await Store.open(f"sqlite:///{path}") as store:
        s = await store.create_session()
        await store.add_message(s.session_id, "user", "a quiet puffin")
        # Counted on a connection of its own: the store's would be a write, never idle.
        look = sqlite3.connect(path)
        try:

            def noted() -> int:
                return int(look.execute("SELECT count(*) FROM messages_unindexed").fetchone()[0])

            assert noted() == 1
            for _ in range(60):  # the writer indexes after a second without writes
                await asyncio.sleep(0.05)
                if noted() == 0:
                    break
            assert noted() == 0
        finally:
            look.close()


async def test_another_process_finds_what_this_one_noted(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    async with await Store.open(url) as writer, await Store.open(url) as reader:
        s = await writer.create_session()
        await writer.add_message(s.session_id, "user", "shared narwhal")
        assert await _noted(writer) == 1
        assert [h.seq for h in await reader.search_messages("narwhal")] == [1]


async def test_noted_messages_are_found_without_the_index(tmp_path: Path) -> None:
    """A store that cannot index (read-only here; another process holding the write lock is
    the same) finds the noted messages by their terms, and ranks them after indexed hits; a
    search-filtered listing finds them without indexing anything."""
    url = f"sqlite:///{tmp_path / 'noted.db'}"
    async with await Store.open(url) as rw:
        s = await rw.create_session(session_id="s1")
        await rw.add_message("s1", "user", "an indexed capybara")
        await rw.search_messages("capybara")  # indexes it
        await rw.add_message("s1", "user", "a noted capybara, running")
        await rw.add_message("s1", "user", "nothing to see")
        assert await _noted(rw) == 2
        listed = await rw.list_sessions(search="runs")  # stem of "running"
        assert [x.session_id for x in listed.items] == [s.session_id]
        assert await _noted(rw) == 2  # a listing indexes nothing
        async with await Store.open(f"{url}?mode=ro") as ro:
            hits = await ro.search_messages("capybara")
            assert [h.seq for h in hits] == [1, 2]  # the indexed hit first
            assert "<mark>capybara</mark>" in hits[1].snippet
            assert [h.seq for h in await ro.search_messages('"noted capybara"')] == [2]
            assert await ro.search_messages('"capybara noted"') == []
            assert [h.seq for h in await ro.search_messages("capybara", limit=1)] == [1]
