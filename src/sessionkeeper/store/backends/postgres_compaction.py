"""Compactions on PostgreSQL (``store/compaction.py``; statements in ``compaction_sql.py``).

The insert is one bounded transaction that takes the session row's lock first (as every
writer of the session does), then re-checks that the compaction it replaces is still in
force and that the messages it summarises are all still there. An append waits for that
lock only as long as the check and the insert take; the summary was written before.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sessionkeeper.models import Compaction
from sessionkeeper.store import window
from sessionkeeper.store.backends.base import CompactionSource
from sessionkeeper.store.backends.compaction_sql import insert_values, statements
from sessionkeeper.store.backends.postgres_conn import Connections
from sessionkeeper.store.backends.postgres_sql import message

SQL = statements("postgresql")
_EXISTS = "SELECT 1 FROM sessions WHERE session_id = $1"


def params(c: Compaction) -> tuple[Any, ...]:
    """SQL.insert's values for ``c``."""
    return insert_values(c, lambda m: m or None, lambda t: t)


async def insert_all(conn: Any, compactions: Iterable[Compaction]) -> None:
    """Write ``compactions`` as they are (an import's, checked by ``verbatim``)."""
    rows = [params(c) for c in compactions]
    if rows:
        await conn.executemany(SQL.insert, rows)


def compaction(r: Any) -> Compaction:
    """A Compaction from a row of ``compaction_sql.COLUMNS``."""
    return Compaction(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], dict(r[8] or {}), r[9])


class PostgresCompactions:
    def __init__(self, connections: Connections) -> None:
        self.b = connections

    async def source(self, session_id: str) -> CompactionSource | None:
        # REPEATABLE READ: the pinned prompt, the compaction in force and the messages after
        # it from one snapshot (the insert re-checks what matters anyway).
        async with self.b._transaction() as conn:
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            if await conn.fetchval(_EXISTS, session_id) is None:
                return None
            first = await conn.fetch(SQL.first, session_id, window.PINNED_SCAN)
            pinned = window.pinned_prefix(message(r) for r in first)
            through = pinned[-1].seq if pinned else 0
            row = await conn.fetchrow(SQL.latest, session_id)
            current = None if row is None else compaction(row)
            after = max(through, current.through_seq if current else 0)
            rows = await conn.fetch(SQL.after, session_id, after)
        return CompactionSource(through, current, [message(r) for r in rows])

    async def insert(
        self, compaction: Compaction, *, previous: int, after: int, count: int, tokens: int
    ) -> bool | None:
        c = compaction
        async with self.b._transaction() as conn:
            if await conn.fetchval(f"{_EXISTS} FOR UPDATE", c.session_id) is None:
                return None
            current = await conn.fetchval(
                "SELECT max(through_seq) FROM compactions WHERE session_id = $1", c.session_id
            )
            if (current or 0) != previous:
                return False  # another compaction (or a delete that dropped one) came first
            found = await conn.fetchrow(SQL.range_totals, c.session_id, after, c.through_seq)
            if (found[0], found[1]) != (count, tokens):
                return False  # a message it summarises was deleted meanwhile
            await conn.execute(SQL.insert, *params(c))
        return True

    async def every(self, session_id: str) -> list[Compaction] | None:
        async with self.b._conn() as conn:
            rows = await conn.fetch(SQL.every, session_id)
            if not rows and await conn.fetchval(_EXISTS, session_id) is None:
                return None
        return [compaction(r) for r in rows]

    async def latest(self, session_id: str) -> tuple[bool, Compaction | None]:
        async with self.b._conn() as conn:
            row = await conn.fetchrow(SQL.latest, session_id)
            if row is not None:
                return True, compaction(row)
            return await conn.fetchval(_EXISTS, session_id) is not None, None
