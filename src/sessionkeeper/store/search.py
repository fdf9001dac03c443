"""Full-text search over message content: query rules, the listing filter, SQLite search.

PostgreSQL: a generated ``tsv`` column (english configuration) with a GIN index, queried with
``websearch_to_tsquery`` so users can type "quoted phrases", ``or`` and ``-exclusions``.
Message search runs on the fast lane (``lanes.PgLane.search``); only the session-listing
filter is here.

SQLite: an FTS5 external-content table over ``messages`` (porter stemming, so both dialects
stem English), ranked by bm25. FTS5's own query syntax would turn user input such as
``what's up?`` into a syntax error, so user text is reduced to quoted terms (AND-ed) and
quoted phrases.

Snippets mark matches with ``<mark>…</mark>``; the content around them is not HTML-escaped,
so a page must escape the snippet and then restore the two markers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, TextualSelect, bindparam, text
from sqlalchemy.ext.asyncio import AsyncConnection

from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import SearchHit
from sessionkeeper.store.schema import UTCDateTime

MARK_START, MARK_END = "<mark>", "</mark>"
_PHRASE_OR_WORD = re.compile(r'"([^"]*)"|(\w+)', re.UNICODE)
_WORD = re.compile(r"\w+", re.UNICODE)


def fts5_query(query: str) -> str:
    """User text → an FTS5 MATCH expression of quoted terms and phrases, all required."""
    parts: list[str] = []
    for phrase, word in _PHRASE_OR_WORD.findall(query):
        words = _WORD.findall(phrase) if phrase else [word]
        if words:
            parts.append('"' + " ".join(words) + '"')
    if not parts:
        raise InvalidInput(f"search query {query!r} has no words to search for", field="q")
    return " ".join(parts)


def check_query(query: Any) -> str:
    if not isinstance(query, str) or not query.strip():
        raise InvalidInput("search query must be a non-empty string", field="q")
    if len(query) > 1000:
        raise InvalidInput("search query is longer than 1000 characters", field="q")
    fts5_query(query)  # same words rule on both dialects
    return query.strip()


def session_match(dialect: str, query: str) -> ColumnElement[bool]:
    """A WHERE clause on ``sessions``: some message of the session matches ``query``."""
    if dialect == "postgresql":
        clause = text(
            "sessions.session_id IN (SELECT m.session_id FROM messages m "
            "WHERE m.tsv @@ websearch_to_tsquery('english', :sk_fts_q))"
        ).bindparams(sk_fts_q=query)
    else:
        clause = text(
            "sessions.session_id IN (SELECT m.session_id FROM messages_fts "
            "JOIN messages m ON m.rowid = messages_fts.rowid "
            "WHERE messages_fts MATCH :sk_fts_q)"
        ).bindparams(sk_fts_q=fts5_query(query))
    return clause  # type: ignore[return-value]


_SQLITE_SEARCH = """
SELECT m.session_id, m.seq, -bm25(messages_fts) AS rank, m.role, m.agent_id, m.created_at,
       s.title, snippet(messages_fts, 0, '<mark>', '</mark>', '…', 24) AS snippet
FROM messages_fts
JOIN messages m ON m.rowid = messages_fts.rowid
JOIN sessions s ON s.session_id = m.session_id
WHERE messages_fts MATCH :q {filters}
ORDER BY bm25(messages_fts), m.session_id, m.seq
LIMIT :limit
"""


def _statement(session_id: str | None, agent_ids: Sequence[str] | None) -> TextualSelect:
    filters = ""
    if session_id is not None:
        filters += " AND m.session_id = :session_id"
    if agent_ids is not None:
        filters += " AND s.agent_id IN :agent_ids"
    stmt = text(_SQLITE_SEARCH.format(filters=filters))
    if agent_ids is not None:
        stmt = stmt.bindparams(bindparam("agent_ids", expanding=True))
    return stmt.columns(created_at=UTCDateTime())


async def search_sqlite(
    conn: AsyncConnection,
    query: str,
    *,
    limit: int,
    session_id: str | None = None,
    agent_ids: Sequence[str] | None = None,
) -> list[SearchHit]:
    """Ranked FTS5 hits (bm25) with snippets."""
    params: dict[str, Any] = {"q": fts5_query(query), "limit": limit}
    if session_id is not None:
        params["session_id"] = session_id
    if agent_ids is not None:
        if not agent_ids:
            return []
        params["agent_ids"] = list(agent_ids)
    result = await conn.execute(_statement(session_id, agent_ids), params)
    return [
        SearchHit(
            session_id=row.session_id,
            seq=row.seq,
            role=row.role,
            agent_id=row.agent_id,
            snippet=row.snippet,
            rank=float(row.rank),
            created_at=row.created_at,
            session_title=row.title,
        )
        for row in result
    ]
