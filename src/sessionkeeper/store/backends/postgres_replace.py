"""``Backend.replace_tail`` on PostgreSQL (see ``replace_sql.py``): one bounded transaction
that takes the session row's lock first, as every writer of the session does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sessionkeeper.models import Message
from sessionkeeper.store.backends import postgres_sql as q
from sessionkeeper.store.backends.replace_sql import PRUNE_CHUNK, statements

SQL = statements("postgresql")


async def replace_tail(
    conn: Any,
    session_id: str,
    expected: Sequence[int] | None,
    rows: Sequence[dict[str, Any]],
    now: datetime,
    prune: Callable[[Message], bool] | None,
) -> bool | None:
    found = await conn.fetchval(
        "SELECT 1 FROM sessions WHERE session_id = $1 FOR UPDATE", session_id
    )
    if found is None:
        return None
    start = 0  # expected None: the whole history
    if expected is not None:
        newest = await conn.fetch(SQL.newest_seqs, session_id, len(expected))
        if [r[0] for r in reversed(newest)] != list(expected):
            return False
        start = expected[0] if expected else 2**31 - 1
    deleted: list[int] = []
    lowest: int | None = None
    if prune is not None and start > 1:
        while True:  # the oldest messages the predicate accepts, a chunk at a time
            chunk = await conn.fetch(SQL.oldest, session_id, start, PRUNE_CHUNK)
            messages = [q.message(r) for r in chunk]
            accepted = await asyncio.to_thread(_accepted, messages, prune)
            through = messages[accepted - 1].seq if accepted else None
            if through is not None:
                deleted += [r[0] for r in await conn.fetch(SQL.delete_through, session_id, through)]
                lowest = 0
            if accepted < len(messages) or len(messages) < PRUNE_CHUNK or not accepted:
                break
    if expected is None or expected:
        gone = [r[0] for r in await conn.fetch(SQL.delete_from, session_id, start)]
        if gone:
            deleted += gone
            lowest = start if lowest is None else lowest
    if deleted:
        await conn.execute(SQL.uncount, session_id, len(deleted), sum(deleted), now)
        await conn.execute(SQL.drop_compactions, session_id, lowest)
    if rows:
        used = any(r.get("usage") is not None for r in rows)
        stmt = q.APPEND_MANY_USAGE if used else q.APPEND_MANY
        await conn.fetch(stmt, *q.append_many_args(session_id, rows, now, used))
    return True


def _accepted(messages: list[Message], prune: Callable[[Message], bool]) -> int:
    """How many of ``messages``, from the first, ``prune`` accepts."""
    for i, m in enumerate(messages):
        if not prune(m):
            return i
    return len(messages)
