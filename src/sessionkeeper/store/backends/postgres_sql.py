"""PostgreSQL-only statements of the backend (shared shapes live in ``statements.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sessionkeeper.models import Message
from sessionkeeper.store.backends.statements import (
    GHOST,
    MESSAGE_COLUMNS,
    MESSAGE_READ,
    SESSION_COLUMNS,
    USAGE_COLUMN_NAMES,
    USAGE_COLUMNS,
    usage_of,
    usage_values,
)
from sessionkeeper.store.terms import tsvector

# Which node this is and how far replication is behind (models.DatabaseRole). A standby
# measures its own replay (0 once it has replayed all it received: an idle primary sends
# nothing, and now() - last replay would grow without any lag); a primary reports the
# slowest of its standbys. pg_stat_replication's LSNs and lags are NULL to a user without
# pg_read_all_stats: unknown, never 0. The primary's branch is not evaluated on a standby
# (pg_current_wal_lsn() refuses to run during recovery).
ROLE = """
SELECT pg_is_in_recovery(),
       CASE WHEN pg_is_in_recovery() THEN
            CASE WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()
                 THEN 0
                 ELSE extract(epoch FROM now() - pg_last_xact_replay_timestamp()) END
       ELSE (SELECT extract(epoch FROM max(replay_lag)) FROM pg_stat_replication) END,
       CASE WHEN pg_is_in_recovery() THEN
            pg_wal_lsn_diff(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
       ELSE (SELECT max(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn))
             FROM pg_stat_replication) END,
       CASE WHEN pg_is_in_recovery() THEN NULL
       ELSE (SELECT count(*) FROM pg_stat_replication) END
"""


def message(r: Any) -> Message:
    """A Message from a row of ``MESSAGE_READ`` (positional: Message's fields, in order; the
    usage its six columns), or of ``MESSAGE_COLUMNS`` (no usage)."""
    return Message(r[0], r[1], r[2], r[3], r[4], r[5], r[6], dict(r[7] or {}), r[8], usage_of(r))


def append_args(session_id: str, r: dict[str, Any], now: datetime, usage: bool) -> list[Any]:
    """APPEND's parameters for one message (APPEND_USAGE's with ``usage``)."""
    values = [
        session_id,
        r["role"],
        r["content"],
        r["agent_id"],
        r["model"],
        r["token_count"],
        r["metadata"],
        r["created_at"],
        now,
        tsvector(r["content"]),
    ]
    if usage:
        values += usage_values(r.get("usage"))
    return values


def append_many_args(
    session_id: str, rows: Sequence[dict[str, Any]], now: datetime, usage: bool
) -> list[Any]:
    """APPEND_MANY's parameters: one array per column (APPEND_MANY_USAGE's with ``usage``)."""
    values: list[Any] = [
        session_id,
        len(rows),
        sum(r["token_count"] for r in rows),
        now,
        [r["role"] for r in rows],
        [r["content"] for r in rows],
        [r["agent_id"] for r in rows],
        [r["model"] for r in rows],
        [r["token_count"] for r in rows],
        [r["metadata"] for r in rows],
        [r["created_at"] for r in rows],
        [tsvector(r["content"]) for r in rows],
    ]
    if usage:
        columns = [usage_values(r.get("usage")) for r in rows]
        values += [[c[i] for c in columns] for i in range(len(columns[0]))]
    return values


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

# The same appends for messages carrying usage (its six columns after the others'
# parameters): messages without usage keep the statements above, with no NULLs to send.
APPEND_USAGE = APPEND.replace("created_at, tsv)", f"created_at, tsv, {USAGE_COLUMNS})").replace(
    "$10::tsvector FROM bump", "$10::tsvector, $11, $12, $13, $14, $15, $16 FROM bump"
)
APPEND_MANY_USAGE = (
    APPEND_MANY.replace("created_at, tsv)", f"created_at, tsv, {USAGE_COLUMNS})")
    .replace(
        "t.metadata, t.created_at, t.tsv::tsvector",
        "t.metadata, t.created_at, t.tsv::tsvector, "
        + ", ".join(f"t.{c}" for c in USAGE_COLUMN_NAMES),
    )
    .replace(
        "$11::timestamptz[], $12::text[])",
        "$11::timestamptz[], $12::text[], $13::int[], $14::int[], $15::int[], $16::int[], "
        "$17::int[], $18::text[])",
    )
    .replace(
        "created_at,\n                          tsv, n)",
        "created_at,\n                          tsv, " + USAGE_COLUMNS + ", n)",
    )
)
assert APPEND_USAGE != APPEND and APPEND_MANY_USAGE.count("usage_model") == 3

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

# The search's hits (fenced: computed as the search alone computes them), each with the
# messages up to {k} positions around it, read by the primary key; hits in the search's order.
SEARCH_AROUND = (
    """
WITH h AS MATERIALIZED ({search})
SELECT h.session_id, h.seq, h.rank, h.role, h.agent_id, h.created_at, h.title, h.content,
       n.*
FROM h LEFT JOIN LATERAL (
    SELECT """
    + MESSAGE_READ
    + """ FROM messages
    WHERE session_id = h.session_id AND seq BETWEEN h.seq - {k} AND h.seq + {k}
) n ON true
ORDER BY h.rank DESC, h.session_id, h.seq, n.seq
"""
)


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
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
"""
INSERT_MESSAGE = f"""
INSERT INTO messages ({MESSAGE_COLUMNS}, tsv, {USAGE_COLUMNS})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::tsvector, $11, $12, $13, $14, $15, $16)
"""

# ── idempotency keys (store/idempotency.py) ─────────────────────────────────
# A keyed append is still one statement: the bump skips a session whose key row exists (the
# common retry: nothing is written, the caller looks the key up), and the key row is
# inserted in the same statement as the message. Two sends of one key at once: the second
# waits for the session row's lock, and when the first commits its key insert meets the
# first's key row: a unique violation aborts the whole statement (message included), and the
# caller looks the key up. ($11: the key, $12: the fingerprint.)
_NOT_KEYED = """
      AND NOT EXISTS (SELECT 1 FROM idempotency_keys
                      WHERE session_id = $1 AND kind = 'append' AND idem_key = $17)"""

# APPEND_USAGE's sixteen parameters (usage always: NULLs when none), then $17 the key and $18
# the fingerprint.
APPEND_KEYED = f"""
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + 1, message_count = message_count + 1,
        token_count = token_count + $6, updated_at = $9, last_message_at = $9
    WHERE session_id = $1{_NOT_KEYED}
    RETURNING last_seq
), msg AS (
    INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count,
                          metadata, created_at, tsv, {USAGE_COLUMNS})
    SELECT $1, last_seq, $2, $3, $4, $5, $6, $7, $8, $10::tsvector, $11, $12, $13, $14, $15,
           $16 FROM bump
    RETURNING seq
), k AS (
    INSERT INTO idempotency_keys (session_id, kind, idem_key, fingerprint, first_seq,
                                  seq_count, created_at)
    SELECT $1, 'append', $17, $18, last_seq, 1, $9 FROM bump
)
SELECT seq FROM msg
"""

# APPEND_MANY_USAGE's eighteen parameters, then $19 the key and $20 the fingerprint.
APPEND_MANY_KEYED = f"""
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + $2, message_count = message_count + $2,
        token_count = token_count + $3, updated_at = $4, last_message_at = $4
    WHERE session_id = $1{_NOT_KEYED.replace("$17", "$19")}
    RETURNING last_seq
), msg AS (
    INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count,
                          metadata, created_at, tsv, {USAGE_COLUMNS})
    SELECT $1, bump.last_seq - $2 + t.n, t.role, t.content, t.agent_id, t.model,
           t.token_count, t.metadata, t.created_at, t.tsv::tsvector,
           {", ".join(f"t.{c}" for c in USAGE_COLUMN_NAMES)}
    FROM bump, unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::int[],
                      $10::jsonb[], $11::timestamptz[], $12::text[], $13::int[], $14::int[],
                      $15::int[], $16::int[], $17::int[], $18::text[])
         WITH ORDINALITY AS t(role, content, agent_id, model, token_count, metadata,
                              created_at, tsv, {USAGE_COLUMNS}, n)
    RETURNING seq
), k AS (
    INSERT INTO idempotency_keys (session_id, kind, idem_key, fingerprint, first_seq,
                                  seq_count, created_at)
    SELECT $1, 'append', $19, $20, last_seq - $2 + 1, $2, $4 FROM bump
)
SELECT seq FROM msg
"""

RECORDED_APPEND = """
SELECT session_id, fingerprint, first_seq, seq_count FROM idempotency_keys
WHERE session_id = $1 AND kind = 'append' AND idem_key = $2
"""

# A keyed create: the key row first (ON CONFLICT waits for a create of the same key in
# flight, then does nothing), the session only if the key row was written. The key and the
# fingerprint come after INSERT_SESSION's parameters ($2 is the agent, $7 created_at).
_SESSION_PARAMS = len(SESSION_COLUMNS.split(", ")) + 1  # and last_seq
_KEY, _PRINT = f"${_SESSION_PARAMS + 1}", f"${_SESSION_PARAMS + 2}"
INSERT_SESSION_KEYED = f"""
WITH k AS (
    INSERT INTO idempotency_keys (session_id, kind, idem_key, agent_id, fingerprint,
                                  seq_count, created_at)
    VALUES ($1, 'create', {_KEY}, $2, {_PRINT}, 0, $7)
    ON CONFLICT (agent_id, idem_key) WHERE kind = 'create' DO NOTHING
    RETURNING 1
)
INSERT INTO sessions ({SESSION_COLUMNS}, last_seq)
SELECT {", ".join(f"${i}" for i in range(1, _SESSION_PARAMS + 1))} WHERE EXISTS (SELECT 1 FROM k)
RETURNING 1
"""

RECORDED_CREATE = """
SELECT session_id, fingerprint, first_seq, seq_count FROM idempotency_keys
WHERE agent_id = $1 AND idem_key = $2 AND kind = 'create'
"""

# Keys past their TTL, a bounded batch per statement (by ix_idempotency_keys_created_at).
EXPIRE_KEYS = """
DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE created_at < $1 LIMIT $2))
"""

# A key stands for its messages while they exist: deleting one of them (FREE_KEY_OF_SEQ: $2
# the seq) or clearing the session (FREE_KEYS) frees the key, so a later write with it is a
# new write. (A session's deletion takes its keys with its other rows: delete_rows.)
FREE_KEY_OF_SEQ = """
DELETE FROM idempotency_keys
WHERE session_id = $1 AND kind = 'append' AND first_seq <= $2 AND first_seq + seq_count > $2
"""
FREE_KEYS = "DELETE FROM idempotency_keys WHERE session_id = $1 AND kind = 'append'"
