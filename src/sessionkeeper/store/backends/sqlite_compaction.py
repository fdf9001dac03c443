"""Compactions on SQLite (``store/compaction.py``; statements in ``compaction_sql.py``).

The source is read in one read transaction (one snapshot); the insert is one ``BEGIN
IMMEDIATE`` transaction, which holds the database's write lock: no append, delete or other
compaction runs between its checks and its insert.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from sessionkeeper.models import Compaction
from sessionkeeper.store import window
from sessionkeeper.store.backends.base import CompactionSource
from sessionkeeper.store.backends.compaction_sql import insert_values, statements
from sessionkeeper.store.backends.sqlite_rows import message, session_exists, utc
from sessionkeeper.store.backends.sqlite_threads import Runner, read_txn
from sessionkeeper.store.backends.statements import sqlite_time
from sessionkeeper.store.validate import json_text

SQL = statements("sqlite")


def compaction(r: Sequence[Any]) -> Compaction:
    """A Compaction from a row of ``compaction_sql.COLUMNS`` (or None columns: no row)."""
    return Compaction(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], json.loads(r[8]) if r[8] else {}, utc(r[9])
    )


def params(c: Compaction) -> tuple[Any, ...]:
    """SQL.insert's values for ``c``."""
    return insert_values(c, lambda m: json_text(m) if m else None, sqlite_time)


def insert_all(conn: sqlite3.Connection, compactions: Iterable[Compaction]) -> None:
    """Write ``compactions`` as they are (an import's, checked by ``verbatim``)."""
    conn.executemany(SQL.insert, (params(c) for c in compactions))


def latest(conn: sqlite3.Connection, session_id: str) -> Compaction | None:
    row = conn.execute(SQL.latest, (session_id,)).fetchone()
    return None if row is None else compaction(row)


def drop_covering(conn: sqlite3.Connection, session_id: str, seq: int) -> None:
    conn.execute(SQL.drop_covering, (session_id, seq))


class SqliteCompactions:
    def __init__(self, runner: Runner) -> None:
        self.b = runner

    async def source(self, session_id: str) -> CompactionSource | None:
        def read(conn: sqlite3.Connection) -> CompactionSource | None:
            if not session_exists(conn, session_id):
                return None
            first = conn.execute(SQL.first, (session_id, window.PINNED_SCAN)).fetchall()
            pinned = window.pinned_prefix(message(r) for r in first)
            through = pinned[-1].seq if pinned else 0
            current = latest(conn, session_id)
            after = max(through, current.through_seq if current else 0)
            rows = conn.execute(SQL.after, (session_id, after)).fetchall()
            return CompactionSource(through, current, [message(r) for r in rows])

        return await self.b._read(read_txn(read))

    async def insert(
        self, compaction: Compaction, *, previous: int, after: int, count: int, tokens: int
    ) -> bool | None:
        c = compaction
        values = params(c)

        def write(conn: sqlite3.Connection) -> bool | None:
            if not session_exists(conn, c.session_id):
                return None
            current = latest(conn, c.session_id)
            if (current.through_seq if current else 0) != previous:
                return False  # another compaction (or a delete that dropped one) came first
            found = conn.execute(SQL.range_totals, (c.session_id, after, c.through_seq)).fetchone()
            if (found[0], found[1]) != (count, tokens):
                return False  # a message it summarises was deleted meanwhile
            conn.execute(SQL.insert, values)
            return True

        return await self.b._write(write)

    async def latest(self, session_id: str) -> tuple[bool, Compaction | None]:
        def read(conn: sqlite3.Connection) -> tuple[bool, Compaction | None]:
            found = latest(conn, session_id)
            if found is not None:
                return True, found
            return session_exists(conn, session_id), None

        return await self.b._read(read_txn(read), inline=True)

    async def every(self, session_id: str) -> list[Compaction] | None:
        def read(conn: sqlite3.Connection) -> list[Compaction] | None:
            rows = conn.execute(SQL.every, (session_id,)).fetchall()
            if not rows and not session_exists(conn, session_id):
                return None
            return [compaction(r) for r in rows]

        return await self.b._read(read_txn(read), inline=True)
