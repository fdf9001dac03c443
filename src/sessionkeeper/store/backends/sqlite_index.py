"""SQLite's search index, filled in batches so that an append does not pay for it.

An append's trigger only notes the message's rowid in ``messages_unindexed`` (migration
0008: a B-tree insert of one integer). The noted messages go into the FTS5 index together,
in one write transaction (``index_pending``):
- when a search finds noted messages: a search reads the index and, in the same statement,
  the noted messages, matched by their terms in SQL (NOTED_MATCHES); when some match, it
  indexes what is noted (waiting at most INDEX_WAIT_S for the write lock) and reads again,
  so they are ranked with the rest. Read-only, or with another process holding the lock,
  it answers at once with them ranked after the indexed hits. A search-filtered listing
  reads the notes the same way. So a search finds every acknowledged message, any
  process's (the notes are in the database);
- when the writer is idle (a second after the last write), with the WAL checkpoint;
- once a process has appended INDEX_BATCH messages since it last indexed, as a job of its own
  on the writer, so that the notes stay few under a steady stream of appends.
One FTS5 segment per batch instead of one per message also keeps the index smaller and its
merges rarer. PostgreSQL needs none of this: its GIN index keeps a pending list of its own
(``fastupdate``).
"""

from __future__ import annotations

import sqlite3

INDEX_BATCH = 1_000  # appends a process makes before it indexes them
INDEX_WAIT_S = 0.2  # how long a search that found noted messages waits to index them

_INDEX_NOTED = (
    "INSERT INTO messages_fts(rowid, terms) "
    "SELECT m.rowid, sessionkeeper_terms(m.content) "
    "FROM messages_unindexed u CROSS JOIN messages m ON m.rowid = u.message_rowid"
)


# Noted messages a query finds without the index (``statements.Params.noted_match``: each
# part of the query, a phrase of terms, is a run of the message's terms). Same columns as
# the backend's search; rank 0 (after every indexed hit).
NOTED_MATCHES = """
SELECT m.session_id, m.seq, 0.0 AS rank, m.role, m.agent_id, m.created_at, s.title, m.content,
       1 AS noted
FROM messages_unindexed u
CROSS JOIN messages m ON m.rowid = u.message_rowid  -- CROSS: the notes drive the join
JOIN sessions s ON s.session_id = m.session_id
WHERE {match} {filters}
"""


def index_pending(conn: sqlite3.Connection) -> int:
    """Index the noted messages (inside the caller's write transaction); how many."""
    done = conn.execute(_INDEX_NOTED).rowcount
    conn.execute("DELETE FROM messages_unindexed")
    return max(done, 0)


def forget_notes(conn: sqlite3.Connection) -> None:
    """After a full rebuild of the index (which read every message), nothing is pending."""
    conn.execute("DELETE FROM messages_unindexed")
