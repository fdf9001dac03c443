"""Replacing a session's newest messages in one transaction (``Store._replace_tail``).

What the OpenAI Agents SDK's compaction wrappers need of a session backend
(``integrations/openai_agents.py``): "if the newest messages are still these, delete them
(and, optionally, the oldest messages a predicate accepts) and append these instead",
atomically. Seqs identify messages (never reused, a message never changes), so "still these"
is a comparison of seqs. The counters follow; a compaction standing for a deleted message is
dropped (as by a delete). Statements for both dialects, numbered placeholders (``{p}1``).
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionkeeper.store.backends.statements import MESSAGE_COLUMNS


@dataclass(frozen=True, slots=True)
class Statements:
    newest_seqs: str  # (session_id, n) → the newest n seqs, newest first
    oldest: str  # (session_id, before, n) → messages before a seq, oldest first
    delete_from: str  # (session_id, seq) → delete seq and after, RETURNING token_count
    delete_through: str  # (session_id, seq) → delete seq and before, RETURNING token_count
    uncount: str  # (session_id, messages, tokens, now)
    drop_compactions: str  # (session_id, lowest seq deleted)


def statements(dialect: str) -> Statements:
    p = "$" if dialect == "postgresql" else "?"
    return Statements(
        newest_seqs=(
            f"SELECT seq FROM messages WHERE session_id = {p}1 ORDER BY seq DESC LIMIT {p}2"
        ),
        oldest=(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE session_id = {p}1 AND seq < {p}2 "
            f"ORDER BY seq LIMIT {p}3"
        ),
        delete_from=(
            f"DELETE FROM messages WHERE session_id = {p}1 AND seq >= {p}2 RETURNING token_count"
        ),
        delete_through=(
            f"DELETE FROM messages WHERE session_id = {p}1 AND seq <= {p}2 RETURNING token_count"
        ),
        uncount=(
            f"UPDATE sessions SET message_count = message_count - {p}2, "
            f"token_count = token_count - {p}3, updated_at = {p}4 WHERE session_id = {p}1"
        ),
        drop_compactions=(
            f"DELETE FROM compactions WHERE session_id = {p}1 AND through_seq >= {p}2"
        ),
    )


PRUNE_CHUNK = 500  # messages read per step of a prefix prune
