"""The SQLite WAL stays bounded while a store is busy, and is truncated when idle (issue 7,
item 7: a WAL that was never truncated reached 371 MB for a 3.3 MB database in ``serve``).

50,000 appends (batches of 10, and single appends) into a few sessions while another
thread keeps reading the last 50 messages; the ``-wal`` file is sampled as it goes.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import pytest

from sessionkeeper.models import NewMessage
from sessionkeeper.store.core import Store

TOTAL = 50_000
SINGLES = 2_000  # appended one per commit; the rest in batches of 10
LIMIT = 64 * 1024 * 1024
IDLE_WAIT_S = 3.0  # the writer truncates the WAL after 1 s idle; allow for a busy machine


def _size(path: Path) -> int:
    try:
        return os.path.getsize(path)
    except FileNotFoundError:
        return 0


def test_wal_bounded_under_appends_and_truncated_when_idle(tmp_path: Path) -> None:
    db = tmp_path / "wal.db"
    wal = Path(f"{db}-wal")
    store: Store = asyncio.run(Store.open(f"sqlite:///{db}"))
    stop = threading.Event()
    reads = 0
    reader_errors: list[BaseException] = []
    try:
        sids = [asyncio.run(store.create_session(title=f"wal {i}")).session_id for i in range(4)]

        def reader() -> None:
            nonlocal reads

            async def loop() -> None:
                nonlocal reads
                while not stop.is_set():
                    for sid in sids:
                        await store.get_messages(sid, last=50)
                        reads += 1
                    await asyncio.sleep(0)

            try:
                asyncio.run(loop())
            except BaseException as exc:  # reported in the main thread
                reader_errors.append(exc)

        thread = threading.Thread(target=reader)
        thread.start()
        samples: list[int] = []
        body = "a message of ordinary length, about what a chat turn holds. " * 4

        async def write() -> None:
            written = 0
            n = 0
            while written < TOTAL:
                sid = sids[n % len(sids)]
                n += 1
                if written < SINGLES:
                    await store.add_message(sid, "user", body, token_count=40)
                    written += 1
                else:
                    batch = [NewMessage("assistant", body, token_count=40) for _ in range(10)]
                    await store.add_messages(sid, batch)
                    written += 10
                if n % 50 == 0:
                    samples.append(_size(wal))

        started = time.monotonic()
        asyncio.run(write())
        elapsed = time.monotonic() - started
        stop.set()
        thread.join(60)
        assert reader_errors == []
        assert reads > 0

        peak = max(samples)
        assert peak < LIMIT, f"WAL reached {peak / 2**20:.1f} MB during appends"

        deadline = time.monotonic() + IDLE_WAIT_S
        while _size(wal) > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _size(wal) == 0, f"WAL still {_size(wal)} bytes after {IDLE_WAIT_S} s idle"

        async def check() -> int:
            stats = await store.get_stats()
            return stats.total_messages

        assert asyncio.run(check()) == TOTAL
        print(
            f"\n{TOTAL} appends in {elapsed:.1f} s, {reads} reads, WAL peak "
            f"{peak / 2**20:.1f} MB, database {_size(db) / 2**20:.1f} MB"
        )
    finally:
        stop.set()
        asyncio.run(store.close())


@pytest.mark.parametrize("write_after", [True, pytest.param(False)], ids=["write", "idle"])
def test_wal_truncated_after_a_long_reader_lets_go(tmp_path: Path, write_after: bool) -> None:
    """A reader holding one snapshot (another connection, e.g. a backup or a slow report)
    keeps the WAL from being reset while it grows; once it lets go and the store is idle
    (after one more write, or with none), the WAL is truncated to nothing."""
    import sqlite3

    db = tmp_path / "held.db"
    wal = Path(f"{db}-wal")
    store: Store = asyncio.run(Store.open(f"sqlite:///{db}"))
    try:
        sid = asyncio.run(store.create_session(title="held")).session_id
        held = sqlite3.connect(db, isolation_level=None)
        held.execute("BEGIN")
        assert held.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        body = "x" * 500

        async def write() -> None:
            for _ in range(500):
                await store.add_messages(sid, [NewMessage("user", body)] * 10)

        asyncio.run(write())
        time.sleep(1.5)  # the writer's idle checkpoint runs, but cannot pass the reader
        grown = _size(wal)
        assert grown > 1024 * 1024, f"WAL only {grown} bytes: was the reader's snapshot held?"
        # The held snapshot still sees the database as it was.
        assert held.execute("SELECT count(*) FROM messages").fetchone() == (0,)
        held.execute("COMMIT")
        held.close()

        async def nudge() -> None:  # one more write, so the writer has something to checkpoint
            await store.add_message(sid, "user", "after the reader")

        if write_after:
            asyncio.run(nudge())
        deadline = time.monotonic() + IDLE_WAIT_S
        while _size(wal) > 0 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _size(wal) == 0, f"WAL still {_size(wal)} bytes after the reader let go"
    finally:
        asyncio.run(store.close())
