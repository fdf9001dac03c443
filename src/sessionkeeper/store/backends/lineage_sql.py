"""SQL of forks and rewinds (``Store.fork_session``, ``rewind_session``), both dialects.

A fork is a copy, not a shared prefix: its messages are ``INSERT … SELECT`` of the source's
rows inside the database (one statement, no row leaves the server), so every face reads a
fork as the ordinary session it is (messages, window, export, search, counts) with no
lineage walk on any read. Measured (bench/fork.py): the fork of a 10,000-message session
costs about what the bare ``INSERT … SELECT`` of its rows costs; a shared prefix would make
every read of every fork pay for the walk instead.

- Copies keep everything of a message: seq, role, content, agent, model, token count,
  metadata, time (and on PostgreSQL the search vector, so no text is analysed again).
- The new session's row is written from the source's row and the copied range's totals in
  one ``INSERT … SELECT``, so the counters equal the rows from the start.
- A LangGraph thread forks with its checkpoints, as ``copy_thread`` copies them (the same
  transaction and snapshot as its messages, which its checkpoint writes commit with).
  A Google ADK session forks as an ADK session of its own (same app and user, its session
  id as ADK id) with the state its kept events give by ADK's rewind rule; a rewind
  recomputes the session's state the same way and its branch keeps the state as it was
  (``frameworks/*_adk.py``: ``fork_rows``, ``rewind_rows``; the rule in ``adk_base.state_at``).
- A copy's compactions go with its messages: those of the source that stand for copied
  messages only (``through_seq`` within the range), so a fork's context window is the
  source's as it was at the fork, summary included; a rewind's branch (every message) takes
  them all, and the source drops those that stood for the tail.
- A rewind copies the kept prefix into the branch and *moves* the dropped tail there
  (``UPDATE … SET session_id``): the tail rows are the originals (on SQLite the same rowids,
  so the search index needs no work), and the branch is the whole conversation before the
  rewind.

Placeholders are PostgreSQL's ``$n``; SQLite takes the same numbers as ``?n`` (``for_dialect``).
"""

from __future__ import annotations

from sessionkeeper.store.backends import compaction_sql
from sessionkeeper.store.backends.frameworks import checkpoints_base
from sessionkeeper.store.backends.statements import MESSAGE_COLUMNS, SESSION_COLUMNS

# $1 source, $2 new id, $3 title (NULL: the source's), $4 metadata (NULL: the source's),
# $5 now, $6 fork seq (the range copied is 1..$6).
_FORK_SESSION = f"""
INSERT INTO sessions ({SESSION_COLUMNS}, last_seq)
SELECT $2, s.agent_id, COALESCE($3, s.title), s.session_type, 'active',
       COALESCE($4{{json}}, s.metadata), $5, $5, NULL, agg.last_at, agg.n, agg.tokens,
       s.user_id, s.session_id, $6, $6
FROM sessions s,
     (SELECT count(*) AS n, COALESCE(sum(token_count), 0) AS tokens,
             max(created_at) AS last_at
      FROM messages WHERE session_id = $1 AND seq <= $6) agg
WHERE s.session_id = $1
"""

# $1 source, $2 target, $3 last seq copied.
_COPY_MESSAGES = """
INSERT INTO messages ({columns})
SELECT $2, {rest} FROM messages WHERE session_id = $1 AND seq <= $3
"""

# A rewind's branch: the source's row as it is before the rewind (its counters are the
# branch's: it will hold every message), forked at $4. $1 source, $2 branch id, $3 now.
_BRANCH_SESSION = f"""
INSERT INTO sessions ({SESSION_COLUMNS}, last_seq)
SELECT $2, agent_id, title, session_type, 'active', metadata, $3, $3, NULL, last_message_at,
       message_count, token_count, user_id, session_id, $4, last_seq
FROM sessions WHERE session_id = $1
"""

# $1 source, $2 target, $3 the last seq copied: the compactions standing for copied messages.
_COMPACTION_REST = compaction_sql.COLUMNS.removeprefix("session_id, ")
COPY_COMPACTIONS = (
    f"INSERT INTO compactions ({compaction_sql.COLUMNS}) SELECT $2, {_COMPACTION_REST} "
    "FROM compactions WHERE session_id = $1 AND through_seq <= $3"
)

# $1 source, $2 branch, $3 to_seq.
MOVE_TAIL = "UPDATE messages SET session_id = $2 WHERE session_id = $1 AND seq > $3"

# What stood for the tail in the source goes with it ($1 source, $2 to_seq): a compaction
# summarising moved messages, and the idempotency keys of writes whose messages moved (as
# deleting a message frees its key: a retry of such a write is a new write, not a replay
# answered with messages the session no longer holds).
REWIND_DROPS = (
    "DELETE FROM compactions WHERE session_id = $1 AND through_seq > $2",
    "DELETE FROM idempotency_keys WHERE session_id = $1 AND kind = 'append' "
    "AND first_seq + seq_count - 1 > $2",
)

# The source after its tail left: counters from the rows it keeps. $1 id, $2 to_seq, $3 now.
_REWOUND = f"""
UPDATE sessions SET (message_count, token_count, last_message_at) = (
        SELECT count(*), COALESCE(sum(token_count), 0), max(created_at)
        FROM messages WHERE session_id = $1),
    last_seq = $2, updated_at = $3
WHERE session_id = $1
RETURNING {SESSION_COLUMNS}
"""

TAIL_EXISTS = "SELECT 1 FROM messages WHERE session_id = $1 AND seq > $2 LIMIT 1"

CHILDREN = (
    f"SELECT {SESSION_COLUMNS} FROM sessions WHERE parent_session_id = $1 "
    "ORDER BY created_at, session_id"
)

GET = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"

# The source's checkpoints (LangGraph), each table's rows under the new session id ($2).
COPY_CHECKPOINTS = tuple(
    f"INSERT INTO {table} (session_id, {rest}) SELECT $2, {rest} FROM {table} WHERE session_id = $1"
    for table, rest in checkpoints_base.COPIED
)
# The copy holds checkpoints when the source does: its bit of held_by goes with them.
_HOLD = checkpoints_base.HOLDER_BIT
HELD = (
    f"UPDATE sessions SET held_by = held_by | (SELECT held_by & {_HOLD} FROM sessions "
    "WHERE session_id = $1) WHERE session_id = $2 RETURNING held_by"
)


def for_dialect(stmt: str, dialect: str) -> str:
    """``stmt`` with SQLite's placeholders (``?n``) when ``dialect`` is SQLite."""
    return stmt if dialect == "postgresql" else stmt.replace("$", "?")


def fork_session(dialect: str) -> str:
    return for_dialect(
        _FORK_SESSION.replace("{json}", "::jsonb" if dialect == "postgresql" else ""), dialect
    )


def branch_session(dialect: str) -> str:
    return for_dialect(_BRANCH_SESSION, dialect)


def rewound(dialect: str) -> str:
    return for_dialect(_REWOUND, dialect)


def copy_messages(dialect: str) -> str:
    """INSERT … SELECT of a session's messages up to a seq, under another session id. On
    PostgreSQL the search vector goes too (it was computed from the same content)."""
    # Not the usage: what producing a message cost was paid once, by the session that made
    # it, and totals over agents and users must count it once (a rewind's tail is moved, and
    # keeps it).
    columns = MESSAGE_COLUMNS.split(", ")
    rest = ", ".join(columns[1:])
    if dialect == "postgresql":
        return _COPY_MESSAGES.format(columns=f"{MESSAGE_COLUMNS}, tsv", rest=f"{rest}, tsv")
    return for_dialect(_COPY_MESSAGES.format(columns=MESSAGE_COLUMNS, rest=rest), dialect)
