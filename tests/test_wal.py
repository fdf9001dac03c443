"""The SQLite WAL stays bounded while a store is busy, and is truncated when idle (issue 7,
item 7: a WAL that was never truncated reached 371 MB for a 3.3 MB database in ``serve``;
issue 16: with a reader holding a snapshot, 50,000 appends grew it to 383 MB).

- 50,000 appends (batches of 10, and single appends) into a few sessions while another
  thread keeps reading (messages, windows, listings, stats); the ``-wal`` file is sampled as
  it goes, and stays under the writer's checkpoint threshold plus a second of writes.
- No read of the store leaves a snapshot open: after each one, a TRUNCATE checkpoint from
  another connection passes (it would wait on any reader still holding one).
- A reader outside the store (another connection inside BEGIN) pins the WAL: it grows, the
  writer says so in a warning, and once the reader ends the WAL is emptied between writes,
  without waiting for the writer to be idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from sessionkeeper.models import NewMessage
from sessionkeeper.store.backends.sqlite_threads import WAL_CHECKPOINT_BYTES, WAL_WARN_BYTES
from sessionkeeper.store.core import Store

TOTAL = 50_000
SINGLES = 2_000  # appended one per commit; the rest in batches of 10
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
                    for sid in sids:  # each kind in turn: inline, budgeted, on a thread
                        kind = reads % 4
                        if kind == 0:
                            await store.get_messages(sid, last=50)
                        elif kind == 1:
                            await store.context_window(sid, max_tokens=2000)
                        elif kind == 2:
                            await store.list_sessions(limit=20)
                        else:
                            await store.get_stats()
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
        # The writer checkpoints past WAL_CHECKPOINT_BYTES, checking once a second.
        bound = WAL_CHECKPOINT_BYTES + 16 * 1024 * 1024
        assert peak < bound, f"WAL reached {peak / 2**20:.1f} MB during appends"

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


def test_no_store_read_leaves_a_snapshot_open(tmp_path: Path) -> None:
    db = tmp_path / "snap.db"
    store: Store = asyncio.run(Store.open(f"sqlite:///{db}"))
    outside = sqlite3.connect(db, isolation_level=None, timeout=0)
    try:

        async def run() -> None:
            s = await store.create_session(title="snap")
            await store.add_message(s.session_id, "system", "be brief")
            await store.keys.create(admin=True)
            reads = {
                "get_session": lambda: store.get_session(s.session_id),
                "session_exists": lambda: store.session_exists(s.session_id),
                "get_session (missing)": lambda: store.get_session("missing"),
                "list_sessions": lambda: store.list_sessions(),
                "list_sessions (search)": lambda: store.list_sessions(search="hello"),
                "get_messages": lambda: store.get_messages(s.session_id, last=5),
                "get_messages (after_seq)": lambda: store.get_messages(s.session_id, after_seq=1),
                "context_window": lambda: store.context_window(s.session_id, max_tokens=500),
                "search_messages": lambda: store.search_messages("hello"),
                "get_stats": lambda: store.get_stats(),
                "keys.list": lambda: store.keys.list(),
                "keys.any_active": lambda: store.keys.any_active(),
                "ping": lambda: store.ping(),
                "schema_revision": lambda: store.schema_revision(),
            }
            for name, read in reads.items():
                await store.add_message(s.session_id, "user", f"hello before {name}")
                with contextlib.suppress(Exception):  # a failed read must let go too
                    await read()
                # (busy, frames, copied): busy if any connection still reads an old snapshot.
                busy = outside.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
                assert busy == 0, f"{name} left a read snapshot open"

        asyncio.run(run())
    finally:
        outside.close()
        asyncio.run(store.close())


def test_an_outside_reader_pins_the_wal_until_it_ends(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The store cannot end another connection's snapshot: the WAL grows past the warning
    threshold (and says so); once the reader ends, the writer empties it between writes."""
    db = tmp_path / "pinned.db"
    wal = Path(f"{db}-wal")
    store: Store = asyncio.run(Store.open(f"sqlite:///{db}"))
    held = sqlite3.connect(db, isolation_level=None)
    caplog.set_level(logging.WARNING, logger="sessionkeeper")
    try:
        sid = asyncio.run(store.create_session(title="pinned")).session_id
        held.execute("BEGIN")
        held.execute("SELECT count(*) FROM messages").fetchone()
        body = "lorem ipsum dolor sit amet " * 150

        def warned() -> list[str]:
            return [r.getMessage() for r in caplog.records if "WAL" in r.getMessage()]

        async def grow() -> None:  # until the writer's next look (once a second) warns
            while not warned() and _size(wal) < 4 * WAL_WARN_BYTES:
                await store.add_messages(sid, [NewMessage("user", body, token_count=9)] * 10)

        asyncio.run(grow())
        pinned = _size(wal)
        assert pinned > WAL_WARN_BYTES
        assert warned() and "holds a read transaction open" in warned()[0], caplog.text
        assert len(warned()) == 1  # once per doubling, not once a second
        held.execute("COMMIT")

        async def keep_writing() -> float:
            started = time.monotonic()
            while time.monotonic() - started < 2 * IDLE_WAIT_S:
                await store.add_message(sid, "user", "after the reader")
                if _size(wal) < WAL_CHECKPOINT_BYTES:
                    return time.monotonic() - started
            return float("inf")

        took = asyncio.run(keep_writing())
        print(f"\nWAL pinned at {pinned / 2**20:.0f} MB; emptied {took:.2f} s after the reader")
        assert took < 2 * IDLE_WAIT_S, f"WAL still {_size(wal)} bytes while writing"
    finally:
        held.close()
        asyncio.run(store.close())
