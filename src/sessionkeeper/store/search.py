"""Full-text search over message content, one implementation per dialect.

PostgreSQL: a generated ``tsv`` column (english configuration) with a GIN index, queried with
``websearch_to_tsquery`` so users can type "quoted phrases", ``or`` and ``-exclusions``.
The match set is fenced in ``WITH hits AS MATERIALIZED``: without the fence the planner,
misjudging how many rows match, walks the primary key in rank order instead of using the
GIN index, and a rare word among 1M messages takes seconds instead of a millisecond.

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


_PG_SEARCH = """
WITH q AS (SELECT websearch_to_tsquery('english', :q) AS query),
hits AS MATERIALIZED (
    SELECT m.session_id, m.seq, ts_rank(m.tsv, q.query) AS rank
    FROM messages m JOIN sessions s ON s.session_id = m.session_id, q
    WHERE m.tsv @@ q.query {filters}
),
top AS (SELECT * FROM hits ORDER BY rank DESC, session_id, seq LIMIT :limit)
SELECT top.session_id, top.seq, top.rank, m.role, m.agent_id, m.created_at, s.title,
       ts_headline('english', m.content, q.query,
                   'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, MaxFragments=2')
           AS snippet
FROM top
JOIN messages m ON m.session_id = top.session_id AND m.seq = top.seq
JOIN sessions s ON s.session_id = top.session_id, q
ORDER BY top.rank DESC, top.session_id, top.seq
"""

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


def _statement(
    dialect: str, session_id: str | None, agent_ids: Sequence[str] | None
) -> TextualSelect:
    filters = ""
    if session_id is not None:
        filters += " AND m.session_id = :session_id"
    if agent_ids is not None:
        filters += " AND s.agent_id IN :agent_ids"
    sql = (_PG_SEARCH if dialect == "postgresql" else _SQLITE_SEARCH).format(filters=filters)
    stmt = text(sql)
    if agent_ids is not None:
        stmt = stmt.bindparams(bindparam("agent_ids", expanding=True))
    return stmt.columns(created_at=UTCDateTime())


async def search_messages(
    conn: AsyncConnection,
    query: str,
    *,
    limit: int,
    session_id: str | None = None,
    agent_ids: Sequence[str] | None = None,
) -> list[SearchHit]:
    dialect = conn.dialect.name
    params: dict[str, Any] = {
        "q": query if dialect == "postgresql" else fts5_query(query),
        "limit": limit,
    }
    if session_id is not None:
        params["session_id"] = session_id
    if agent_ids is not None:
        if not agent_ids:
            return []
        params["agent_ids"] = list(agent_ids)
    result = await conn.execute(_statement(dialect, session_id, agent_ids), params)
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
