"""The bare-driver baselines: asyncpg and stdlib sqlite3 doing the store's work by hand.

"Same work" (issue 7): the baseline runs on the same tables as the store (created by
``Store.open``, so the same indexes, keys, FTS index and foreign keys), and an append bumps
the counters on the session row (message_count, token_count, last_seq, updated_at,
last_message_at) in the same commit as the INSERT. On PostgreSQL that is one statement (a
data-modifying CTE, one round trip in autocommit); on SQLite one ``BEGIN IMMEDIATE …
COMMIT`` with the UPDATE … RETURNING and the INSERT, on the calling thread.

What the baselines do NOT do, because the driver alone does not: count tokens (the count is
computed once, outside the timed loop), validate input, build ``Message`` / ``Session``
objects, parse timestamps or JSON. Those are the store's cost, and part of the ratio.

SQLite calls are synchronous: they run on the event loop inside ``async def`` wrappers, so
the same harness times both sides. That is the driver at its fastest for one caller
(no thread hand-over), which is the point of a baseline.
"""

from __future__ import annotations

import functools
import sqlite3
from datetime import UTC, datetime
from typing import Any

import datagen

# ── SQL, PostgreSQL ─────────────────────────────────────────────────────────

PG_APPEND = """
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + 1, message_count = message_count + 1,
        token_count = token_count + $4, updated_at = $5, last_message_at = $5
    WHERE session_id = $1
    RETURNING last_seq
)
INSERT INTO messages (session_id, seq, role, content, token_count, created_at, tsv)
SELECT $1, last_seq, $2, $3, $4, $5, $6::tsvector FROM bump
RETURNING seq
"""
PG_PLAIN_INSERT = (
    "INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, "
    "metadata, created_at, tsv) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::tsvector)"
)
PG_LAST50 = (
    "SELECT session_id, seq, role, content, agent_id, model, token_count, metadata, created_at "
    "FROM messages WHERE session_id = $1 ORDER BY seq DESC LIMIT 50"
)
PG_LIST = (
    "SELECT * FROM sessions WHERE agent_id = $1 ORDER BY updated_at DESC, session_id DESC LIMIT 21"
)
PG_COUNT = "SELECT count(*) FROM sessions WHERE agent_id = $1"
# The same rows as the store's search: rank, the content its snippet is cut from, the
# session's title. $1 is one word's term as a tsquery literal (``tsquery_of``).
PG_SEARCH = """
SELECT m.session_id, m.seq, ts_rank(m.tsv, q) AS rank, m.role, m.agent_id, m.created_at,
       (SELECT title FROM sessions s WHERE s.session_id = m.session_id) AS title, m.content
FROM messages m, CAST($1 AS tsquery) q
WHERE m.tsv @@ q
ORDER BY rank DESC
LIMIT 20
"""
# The least a search can be: keys and rank of the first 20 hits.
PG_SEARCH_MIN = """
SELECT session_id, seq, ts_rank(tsv, q) AS rank
FROM messages, CAST($1 AS tsquery) q
WHERE tsv @@ q
ORDER BY rank DESC
LIMIT 20
"""
# The ghost purge's floor (issue: framework storage behind the backend seam): the same rows in
# a copy of ``sessions`` that nothing references, deleted by one plain statement.
UNREFERENCED = "bare_sessions"
PG_GHOSTS = f"DELETE FROM {UNREFERENCED} WHERE message_count = 0 AND created_at < now()"

# ── SQL, SQLite ─────────────────────────────────────────────────────────────

SQ_BUMP = (
    "UPDATE sessions SET last_seq = last_seq + 1, message_count = message_count + 1, "
    "token_count = token_count + ?, updated_at = ?, last_message_at = ? "
    "WHERE session_id = ? RETURNING last_seq"
)
SQ_INSERT = (
    "INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, "
    "metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
SQ_LAST50 = (
    "SELECT session_id, seq, role, content, agent_id, model, token_count, metadata, created_at "
    "FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT 50"
)
SQ_LIST = (
    "SELECT * FROM sessions WHERE agent_id = ? ORDER BY updated_at DESC, session_id DESC LIMIT 21"
)
SQ_COUNT = "SELECT count(*) FROM sessions WHERE agent_id = ?"
SQ_SEARCH = """
SELECT m.session_id, m.seq, bm25(messages_fts) AS rank, m.role, m.agent_id, m.created_at,
       s.title, m.content
FROM messages_fts
JOIN messages m ON m.rowid = messages_fts.rowid
JOIN sessions s ON s.session_id = m.session_id
WHERE messages_fts MATCH ?
ORDER BY bm25(messages_fts)
LIMIT 20
"""
SQ_SEARCH_MIN = """
SELECT m.session_id, m.seq, bm25(messages_fts) AS rank
FROM messages_fts JOIN messages m ON m.rowid = messages_fts.rowid
WHERE messages_fts MATCH ?
ORDER BY bm25(messages_fts)
LIMIT 20
"""
SQ_GHOSTS = f"DELETE FROM {UNREFERENCED} WHERE message_count = 0 AND created_at < ?"


def term_of(word: str) -> str:
    """The index's term for one word (its Porter stem, folded): what a bare query looks up."""
    from sessionkeeper.store import terms

    return terms.terms(word)[0]


def tsquery_of(word: str) -> str:
    return f"'{term_of(word)}'"


def append_tokens() -> int:
    """The token count the store computes for ``datagen.APPEND_TEXT`` (computed once here)."""
    from sessionkeeper import tokens

    return tokens.get_tokenizer("cl100k_base").count(datagen.APPEND_TEXT)


@functools.cache
def append_tsvector() -> str:
    """The ``tsv`` the store writes for ``datagen.APPEND_TEXT`` (computed once here: the
    baseline does the database's share of the work, the store's analysis is the store's)."""
    from sessionkeeper.store import terms

    return terms.tsvector(datagen.APPEND_TEXT)


class PgBare:
    """One bare asyncpg connection (driver defaults unless ``custom_plans``)."""

    dialect = "postgresql"

    def __init__(self, conn: Any):
        self.conn = conn

    @classmethod
    async def connect(cls, dsn: str, *, custom_plans: bool = False) -> PgBare:
        import asyncpg

        settings = {"plan_cache_mode": "force_custom_plan"} if custom_plans else {}
        return cls(await asyncpg.connect(dsn, server_settings=settings))

    async def close(self) -> None:
        await self.conn.close()

    async def append(self, sid: str, tokens: int) -> int:
        return int(
            await self.conn.fetchval(
                PG_APPEND,
                sid,
                "user",
                datagen.APPEND_TEXT,
                tokens,
                datetime.now(UTC),
                append_tsvector(),
            )
        )

    async def append_plain(self, sid: str, seq: int, tokens: int) -> None:
        await self.conn.execute(
            PG_PLAIN_INSERT,
            sid,
            seq,
            "user",
            datagen.APPEND_TEXT,
            None,
            None,
            tokens,
            None,
            datetime.now(UTC),
            append_tsvector(),
        )

    async def fix_counters(self, sid: str) -> None:
        await self.conn.execute(datagen.FIX_COUNTERS_PG, sid)

    async def last50(self, sid: str) -> list[Any]:
        return list(await self.conn.fetch(PG_LAST50, sid))

    async def list_page(self, agent: str, *, total: bool = True) -> Any:
        rows = await self.conn.fetch(PG_LIST, agent)
        count = await self.conn.fetchval(PG_COUNT, agent) if total else None
        return rows, count

    async def search(self, word: str) -> list[Any]:
        return list(await self.conn.fetch(PG_SEARCH, tsquery_of(word)))

    async def search_min(self, word: str) -> list[Any]:
        return list(await self.conn.fetch(PG_SEARCH_MIN, tsquery_of(word)))

    async def unreferenced_copy(self) -> None:
        """``bare_sessions``: the sessions table's rows, columns and indexes; no foreign key
        refers to it."""
        c = self.conn
        await c.execute(f"DROP TABLE IF EXISTS {UNREFERENCED}")
        await c.execute(f"CREATE TABLE {UNREFERENCED} (LIKE sessions INCLUDING ALL)")
        await c.execute(f"INSERT INTO {UNREFERENCED} SELECT * FROM sessions")
        await c.execute(f"VACUUM ANALYZE {UNREFERENCED}")

    async def ghosts(self) -> int:
        status = await self.conn.execute(PG_GHOSTS)
        return int(status.split()[-1])


class SqliteBare:
    """One bare sqlite3 connection with the store's pragmas, used synchronously."""

    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    @classmethod
    async def connect(cls, path: str, *, custom_plans: bool = False) -> SqliteBare:
        return cls(datagen.sqlite_connect(path))

    async def close(self) -> None:
        self.conn.close()

    async def append(self, sid: str, tokens: int) -> int:
        now = datagen.sqlite_time()
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            seq = c.execute(SQ_BUMP, (tokens, now, now, sid)).fetchone()[0]
            c.execute(
                SQ_INSERT, (sid, seq, "user", datagen.APPEND_TEXT, None, None, tokens, None, now)
            )
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return int(seq)

    async def append_plain(self, sid: str, seq: int, tokens: int) -> None:
        # Autocommit (isolation_level=None): the INSERT is its own transaction, one commit.
        row = (sid, seq, "user", datagen.APPEND_TEXT, None, None, tokens, None)
        self.conn.execute(SQ_INSERT, (*row, datagen.sqlite_time()))

    async def fix_counters(self, sid: str) -> None:
        self.conn.execute(datagen.FIX_COUNTERS_SQLITE, (sid,))

    async def last50(self, sid: str) -> list[Any]:
        return self.conn.execute(SQ_LAST50, (sid,)).fetchall()

    async def list_page(self, agent: str, *, total: bool = True) -> Any:
        # One snapshot for page and total, as the store reads them.
        c = self.conn
        c.execute("BEGIN")
        try:
            rows = c.execute(SQ_LIST, (agent,)).fetchall()
            count = c.execute(SQ_COUNT, (agent,)).fetchone()[0] if total else None
        finally:
            c.execute("COMMIT")
        return rows, count

    async def search(self, word: str) -> list[Any]:
        return self.conn.execute(SQ_SEARCH, (f'"{term_of(word)}"',)).fetchall()

    async def search_min(self, word: str) -> list[Any]:
        return self.conn.execute(SQ_SEARCH_MIN, (f'"{term_of(word)}"',)).fetchall()

    async def unreferenced_copy(self) -> None:
        """``bare_sessions``: the sessions table's rows, columns and indexes; no foreign key
        refers to it."""
        c = self.conn
        c.execute(f"DROP TABLE IF EXISTS {UNREFERENCED}")
        made = c.execute(
            "SELECT sql FROM sqlite_master WHERE tbl_name = 'sessions' AND sql IS NOT NULL "
            "ORDER BY type = 'index'"
        ).fetchall()
        for (ddl,) in made:  # CREATE TABLE sessions …, CREATE INDEX ix_sessions_… ON sessions …
            c.execute(ddl.replace("sessions", UNREFERENCED))
        c.execute(f"INSERT INTO {UNREFERENCED} SELECT * FROM sessions")

    async def ghosts(self) -> int:
        c = self.conn
        c.execute("BEGIN IMMEDIATE")
        try:
            n = c.execute(SQ_GHOSTS, (datagen.sqlite_time(),)).rowcount
        except BaseException:
            c.execute("ROLLBACK")
            raise
        c.execute("COMMIT")
        return int(n)


