"""Many OS processes appending to ONE session: no lost message, no gap, no reordering."""

from __future__ import annotations

import asyncio
import multiprocessing as mp

import rawdb
from sessionkeeper.store.core import Store

WRITERS = 4
PER_WRITER = 250


def _writer(url: str, session_id: str, writer: int) -> None:
    async def run() -> None:
        store = await Store.open(url)
        try:
            for i in range(PER_WRITER):
                await store.add_message(
                    session_id, "user", f"writer {writer} message {i}", agent_id=f"w{writer}"
                )
        finally:
            await store.close()

    asyncio.run(run())


async def test_four_processes_append_to_one_session(file_db_url: str) -> None:
    db_url = file_db_url
    store = await Store.open(db_url)
    try:
        session = await store.create_session(title="contended")
        ctx = mp.get_context("spawn")
        procs = [
            ctx.Process(target=_writer, args=(db_url, session.session_id, w))
            for w in range(WRITERS)
        ]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=300)
        assert [p.exitcode for p in procs] == [0] * WRITERS

        rows = []
        after = 0
        while True:
            page = await store.get_messages(session.session_id, limit=500, after_seq=after)
            if not page:
                break
            rows += page
            after = page[-1].seq
        total = WRITERS * PER_WRITER
        assert len(rows) == total
        assert [m.seq for m in rows] == list(range(1, total + 1))
        for w in range(WRITERS):
            mine = [m.content for m in rows if m.agent_id == f"w{w}"]
            assert mine == [f"writer {w} message {i}" for i in range(PER_WRITER)]
        got = await store.get_session(session.session_id)
        [(token_sum,)] = await rawdb.fetch(
            store,
            "SELECT sum(token_count) FROM messages WHERE session_id = ?",
            session.session_id,
        )
        assert got.message_count == total
        assert got.token_count == token_sum == sum(m.token_count for m in rows)
    finally:
        await store.close()
