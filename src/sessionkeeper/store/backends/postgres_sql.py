"""PostgreSQL-only statements of the backend (shared shapes live in ``statements.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sessionkeeper.models import Message
from sessionkeeper.store.backends.statements import GHOST, MESSAGE_COLUMNS, SESSION_COLUMNS


def message(r: Any) -> Message:
    """A Message from a row of ``MESSAGE_COLUMNS`` (positional: Message's fields, in order)."""
    return Message(r[0], r[1], r[2], r[3], r[4], r[5], r[6], dict(r[7] or {}), r[8])


APPEND = """
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + 1, message_count = message_count + 1,
        token_count = token_count + $6, updated_at = $9, last_message_at = $9
    WHERE session_id = $1
    RETURNING last_seq
)
INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, metadata,
                      created_at, tsv)
SELECT $1, last_seq, $2, $3, $4, $5, $6, $7, $8, $10::tsvector FROM bump
RETURNING seq
"""

APPEND_MANY = """
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + $2, message_count = message_count + $2,
        token_count = token_count + $3, updated_at = $4, last_message_at = $4
    WHERE session_id = $1
    RETURNING last_seq
)
INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, metadata,
                      created_at, tsv)
SELECT $1, bump.last_seq - $2 + t.n, t.role, t.content, t.agent_id, t.model, t.token_count,
       t.metadata, t.created_at, t.tsv::tsvector
FROM bump, unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::jsonb[],
                  $11::timestamptz[], $12::text[])
     WITH ORDINALITY AS t(role, content, agent_id, model, token_count, metadata, created_at,
                          tsv, n)
RETURNING seq
"""

MESSAGE_METADATA = (
    "SELECT seq, metadata FROM messages WHERE session_id = $1 ORDER BY seq DESC LIMIT $2"
)

# Ranked by ts_rank, which no index provides, so the planner must find the matches through the
# GIN index and sort them. The session's title (and agent, to filter) are looked up per hit
# by primary key: joining sessions in FROM let the planner start from the sessions table
# (3.8 ms instead of 0.6 ms for a rare word among 115,000 messages, bench/search).
# The snippet is cut from the content by search.snippet(), as on SQLite. $1 is
# search.pg_query's tsquery literal.
SEARCH = """
SELECT m.session_id, m.seq, ts_rank(m.tsv, q) AS rank, m.role, m.agent_id, m.created_at,
       (SELECT s.title FROM sessions s WHERE s.session_id = m.session_id) AS title,
       m.content
FROM messages m, CAST($1 AS tsquery) AS q
WHERE m.tsv @@ q {filters}
ORDER BY rank DESC, m.session_id, m.seq
LIMIT $2
"""


# A purge batch is a plain DELETE of a range of the partial index ix_sessions_ghosts
# (exactly the ghosts, by created_at): the ghost rule reads the row alone and no foreign key
# fires (migration 0007), so a purge costs about what deleting the rows costs (bench/ghosts).
# - The range starts where the last batch stopped ($3) and stops before the created_at of
#   the ($2 + 1)-th ghost from there (or at the cutoff $1; after all ghosts created at $3
#   when there are more of those than $2): the index entries of rows just
#   deleted stay until VACUUM, and starting over at the front walked them in every batch.
#   Deleting by row address instead (``ctid = ANY(ARRAY(…))``) cost twice the plain DELETE.
# - Each row is re-checked on its latest version, so a session that got a message or
#   framework state meanwhile stays.
# - The rows a ghost may still have (``ghost_tables``: an ADK session's key row) go in the
#   same statement: they were committed with their session, so its snapshot sees them.
# Returns (rows deleted, where the range stopped: $1 when the purge is done).
def ghosts(tables: Sequence[str]) -> str:
    return f"""
WITH bound AS MATERIALIZED (
    SELECT CASE
        WHEN o.at IS NULL THEN $1  -- no more than $2 left: up to the cutoff
        WHEN o.at > $3 THEN o.at
        -- more than $2 ghosts created at $3 itself: all of them, up to the next time
        ELSE COALESCE((SELECT min(created_at) FROM sessions
                       WHERE {GHOST} AND created_at > $3 AND created_at < $1), $1)
    END AS stop
    FROM (SELECT (SELECT created_at FROM sessions
                  WHERE {GHOST} AND created_at >= $3 AND created_at < $1
                  ORDER BY created_at OFFSET $2 LIMIT 1) AS at) o
), gone AS (
    DELETE FROM sessions
    WHERE {GHOST} AND created_at >= $3 AND created_at < (SELECT stop FROM bound)
    RETURNING session_id
){_deleting(tables, "gone")}
SELECT (SELECT count(*) FROM gone), (SELECT stop FROM bound)
"""


def delete_rows(tables: Sequence[str]) -> str:
    """DELETE of the rows of sessions $1 (text[]) in ``tables``, one statement."""
    return (
        f"WITH ids AS (SELECT unnest($1::text[]) AS session_id){_deleting(tables, 'ids')} SELECT 1"
    )


def _deleting(tables: Sequence[str], ids: str) -> str:
    """Data-modifying CTEs deleting, from each of ``tables``, the rows of the sessions in
    CTE ``ids`` (a column ``session_id``): each a primary-key probe per session."""
    return "".join(
        f", d_{table} AS (DELETE FROM {table} "
        f"WHERE session_id = ANY(ARRAY(SELECT session_id FROM {ids})))"
        for table in tables
    )


PRUNE = """
DELETE FROM sessions
WHERE session_id = ANY(ARRAY(
        SELECT session_id FROM sessions WHERE updated_at < $1
        ORDER BY updated_at LIMIT $2 FOR UPDATE SKIP LOCKED))
  AND updated_at < $1
RETURNING session_id, message_count
"""

SEARCH_INDEX = "SELECT analyser FROM search_index"
# Rebuilding the search terms (``reindex_search``): pages of messages in key order.
REINDEX_PAGE = """
SELECT session_id, seq, content FROM messages WHERE (session_id, seq) > ($1, $2)
ORDER BY session_id, seq LIMIT $3
"""
REINDEX_SET = """
UPDATE messages m SET tsv = v.tsv::tsvector
FROM unnest($1::text[], $2::int[], $3::text[]) AS v(session_id, seq, tsv)
WHERE m.session_id = v.session_id AND m.seq = v.seq
"""

INSERT_SESSION = f"""
INSERT INTO sessions ({SESSION_COLUMNS}, last_seq)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
"""
INSERT_MESSAGE = f"""
INSERT INTO messages ({MESSAGE_COLUMNS}, tsv)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::tsvector)
"""
