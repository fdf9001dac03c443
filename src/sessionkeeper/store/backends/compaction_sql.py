"""Statements of compaction (``store/compaction.py``), written once for both dialects.

Each is a template whose placeholders are numbered (``{p}1``): ``$1`` on PostgreSQL, ``?1``
on SQLite; ``statements(dialect)`` fills them in. The compaction in force for a session is
its ``compactions`` row with the highest ``through_seq`` (the primary key's order).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sessionkeeper.models import Compaction
from sessionkeeper.store.backends.statements import MESSAGE_COLUMNS

# In the order of Compaction's fields: backends build one from a row positionally.
COLUMNS = ", ".join(f.name for f in fields(Compaction))
_C_COLUMNS = ", ".join(f"c.{f.name}" for f in fields(Compaction))


@dataclass(frozen=True, slots=True)
class Statements:
    latest: str  # (session_id) → the compaction in force
    every: str  # (session_id) → every compaction, oldest first
    tail_head: str  # (session_id) → counters and the compaction in force, one row
    first: str  # (session_id, n) → the first n messages (to find the pinned prompt)
    after: str  # (session_id, seq) → every message after seq, oldest first
    range_totals: str  # (session_id, after, through) → count, token sum of that range
    insert: str
    drop_covering: str  # (session_id, seq) → delete the compactions that stand for seq
    drop_all: str  # (session_id)


def insert_values(
    c: Compaction,
    metadata: Callable[[dict[str, Any]], Any],
    time: Callable[[datetime], Any],
) -> tuple[Any, ...]:
    """``Statements.insert``'s values for ``c``, its metadata and time as the dialect
    stores them."""
    return (
        c.session_id,
        c.from_seq,
        c.through_seq,
        c.message_count,
        c.compacted_tokens,
        c.summary,
        c.token_count,
        c.model,
        metadata(c.metadata),
        time(c.created_at),
    )


def statements(dialect: str) -> Statements:
    p = "$" if dialect == "postgresql" else "?"
    values = ", ".join(f"{p}{i}" for i in range(1, len(fields(Compaction)) + 1))
    return Statements(
        latest=(
            f"SELECT {COLUMNS} FROM compactions WHERE session_id = {p}1 "
            "ORDER BY through_seq DESC LIMIT 1"
        ),
        every=f"SELECT {COLUMNS} FROM compactions WHERE session_id = {p}1 ORDER BY through_seq",
        # One statement for the window's first read: a session with no compaction costs an
        # empty index probe, not another round trip (bench/compact.py).
        tail_head=(
            f"SELECT s.message_count, s.token_count, {_C_COLUMNS} FROM sessions s "
            "LEFT JOIN compactions c ON c.session_id = s.session_id "
            f"WHERE s.session_id = {p}1 ORDER BY c.through_seq DESC LIMIT 1"
        ),
        first=(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = {p}1 "
            f"ORDER BY seq LIMIT {p}2"
        ),
        after=(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = {p}1 AND seq > {p}2 "
            "ORDER BY seq"
        ),
        range_totals=(
            "SELECT count(*), COALESCE(sum(token_count), 0) FROM messages "
            f"WHERE session_id = {p}1 AND seq > {p}2 AND seq <= {p}3"
        ),
        insert=f"INSERT INTO compactions ({COLUMNS}) VALUES ({values})",
        drop_covering=(
            f"DELETE FROM compactions WHERE session_id = {p}1 "
            f"AND from_seq <= {p}2 AND through_seq >= {p}2"
        ),
        drop_all=f"DELETE FROM compactions WHERE session_id = {p}1",
    )
