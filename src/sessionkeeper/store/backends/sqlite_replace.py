"""``Backend.replace_tail`` on SQLite (see ``replace_sql.py``): one BEGIN IMMEDIATE
transaction on the writer; the prune predicate runs there too."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from sessionkeeper.models import Message
from sessionkeeper.store.backends.replace_sql import PRUNE_CHUNK, statements
from sessionkeeper.store.backends.sqlite_rows import (
    INSERT_MESSAGE,
    message,
    message_params,
    session_exists,
)

SQL = statements("sqlite")
_BUMP = (
    "UPDATE sessions SET last_seq = last_seq + ?, message_count = message_count + ?, "
    "token_count = token_count + ?, updated_at = ?, last_message_at = ? "
    "WHERE session_id = ? RETURNING last_seq"
)


def replace_tail(
    conn: sqlite3.Connection,
    session_id: str,
    expected: Sequence[int] | None,
    rows: Sequence[dict[str, Any]],
    stamp: str,
    prune: Callable[[Message], bool] | None,
) -> bool | None:
    if not session_exists(conn, session_id):
        return None
    start = 0  # expected None: the whole history
    if expected is not None:
        newest = conn.execute(SQL.newest_seqs, (session_id, len(expected))).fetchall()
        if [r[0] for r in reversed(newest)] != list(expected):
            return False
        start = expected[0] if expected else 2**62
    deleted: list[int] = []
    lowest: int | None = None
    if prune is not None and start > 1:
        while True:  # the oldest messages the predicate accepts, a chunk at a time
            chunk = conn.execute(SQL.oldest, (session_id, start, PRUNE_CHUNK)).fetchall()
            through = None
            for r in chunk:
                if not prune(message(r)):
                    break
                through = r[1]
            if through is not None:
                deleted += [r[0] for r in conn.execute(SQL.delete_through, (session_id, through))]
                lowest = 0
            if through is None or through != chunk[-1][1] or len(chunk) < PRUNE_CHUNK:
                break
    if expected is None or expected:
        gone = [r[0] for r in conn.execute(SQL.delete_from, (session_id, start))]
        if gone:
            deleted += gone
            lowest = start if lowest is None else lowest
    if deleted:
        conn.execute(SQL.uncount, (session_id, len(deleted), sum(deleted), stamp))
        conn.execute(SQL.drop_compactions, (session_id, lowest))
    if rows:
        n = len(rows)
        tokens = sum(r["token_count"] for r in rows)
        last = conn.execute(_BUMP, (n, n, tokens, stamp, stamp, session_id)).fetchone()[0]
        first = last - n + 1
        conn.executemany(
            INSERT_MESSAGE, [message_params(session_id, first + i, r) for i, r in enumerate(rows)]
        )
    return True
