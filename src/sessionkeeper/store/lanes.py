"""Fast lanes: the store's hot paths, one driver call each, beside SQLAlchemy.

SQLAlchemy builds and runs everything with a shape that varies (listings, maintenance,
migrations, imports). The few operations an agent runs on every turn — append, read the
newest messages, read a session, search — are fixed statements; running them through
SQLAlchemy's execution layer cost 2–5× the bare driver here (bench/). So:

- PostgreSQL: a few asyncpg connections owned by the store. Each hot operation is ONE
  statement in autocommit (a lone statement is its own transaction: an explicit BEGIN/COMMIT
  would be two more round trips). The connections are kept by ``Connections``, a minimal
  LIFO pool, rather than ``asyncpg.Pool``: its acquire/release machinery (proxy objects, a
  reset query per release) cost ~0.11 ms per call here, 18 % of a whole append.
- SQLite: aiosqlite hands every call over to its thread (~12 hand-overs per append through
  SQLAlchemy, ~0.1-0.3 ms each here). Here a whole write transaction (BEGIN IMMEDIATE, bump
  counters, insert, COMMIT) runs in one go: first on the event loop's own thread, when the
  write lock is free at once (busy_timeout 0, so it never waits there), else handed to a
  writer thread that waits for the lock (busy_timeout) without blocking the loop. The inline
  path blocks the loop for one uncontended commit (~0.5 ms here, the fsync included), which
  is less than the two hand-overs it saves. It never checkpoints the WAL itself
  (wal_autocheckpoint=0): the writer thread does that every CHECKPOINT_EVERY inline commits.

Both write exactly what the SQLAlchemy path writes (same columns, same value encodings:
SQLite timestamps as SQLAlchemy stores them), and the suite runs every test through them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sessionkeeper.models import Message, SearchHit, Session

_MESSAGE_COLUMNS = (
    "session_id, seq, role, content, agent_id, model, token_count, metadata, created_at"
)
# Session's fields, in order (also read by quick.py).
SESSION_COLUMNS = (
    "session_id, agent_id, title, session_type, status, metadata, created_at, updated_at, "
    "ended_at, last_message_at, message_count, token_count"
)

# The UPDATE takes the session row lock and hands the new seq to the INSERT; no session, no
# row from `bump`, nothing inserted (the caller reports NotFound).
_PG_APPEND = """
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + 1, message_count = message_count + 1,
        token_count = token_count + $6, updated_at = $9, last_message_at = $9
    WHERE session_id = $1
    RETURNING last_seq
)
INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, metadata,
                      created_at)
SELECT $1, last_seq, $2, $3, $4, $5, $6, $7, $8 FROM bump
RETURNING seq
"""

_PG_APPEND_MANY = """
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + $2, message_count = message_count + $2,
        token_count = token_count + $3, updated_at = $4, last_message_at = $4
    WHERE session_id = $1
    RETURNING last_seq
)
INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, metadata,
                      created_at)
SELECT $1, bump.last_seq - $2 + t.n, t.role, t.content, t.agent_id, t.model, t.token_count,
       t.metadata, t.created_at
FROM bump, unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::jsonb[],
                  $11::timestamptz[])
     WITH ORDINALITY AS t(role, content, agent_id, model, token_count, metadata, created_at, n)
RETURNING seq
"""

# Ranked by ts_rank, which no index provides, so the planner must find the matches through the
# GIN index and sort them. The session's title (and agent, to filter) are looked up per hit
# by primary key: joining sessions in FROM let the planner start from the sessions table
# (3.8 ms instead of 0.6 ms for a rare word among 115,000 messages, bench/search).
# ts_headline runs for the LIMIT rows only.
_PG_SEARCH = """
SELECT m.session_id, m.seq, ts_rank(m.tsv, q) AS rank, m.role, m.agent_id, m.created_at,
       (SELECT s.title FROM sessions s WHERE s.session_id = m.session_id) AS title,
       ts_headline('english', m.content, q,
                   'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, MaxFragments=2')
           AS snippet
FROM messages m, websearch_to_tsquery('english', $1) AS q
WHERE m.tsv @@ q {filters}
ORDER BY rank DESC, m.session_id, m.seq
LIMIT $2
"""


def _message(r: Any) -> Message:
    # Positional: the columns of _MESSAGE_COLUMNS are Message's fields, in order.
    return Message(r[0], r[1], r[2], r[3], r[4], r[5], r[6], dict(r[7] or {}), r[8])


class Connections:
    """At most ``size`` asyncpg connections, reused newest-first, one statement per use.

    Only single statements in autocommit run here, so a connection needs no reset between
    uses. A statement that fails inside PostgreSQL leaves its connection usable; any other
    failure (network, or the caller cancelled mid-statement) discards the connection, since
    its protocol state is unknown.
    """

    def __init__(self, dsn: str, size: int) -> None:
        self.dsn = dsn
        self.size = size
        self._idle: list[Any] = []
        self._opened = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def _connect(self) -> Any:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        return conn

    async def _acquire(self) -> Any:
        while True:
            if self._closed:
                raise RuntimeError("the store is closed")
            if self._idle:
                return self._idle.pop()
            if self._opened < self.size:
                self._opened += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._opened -= 1
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)

    def _release(self, conn: Any, reusable: bool) -> None:
        if reusable and not self._closed:
            self._idle.append(conn)
        else:
            conn.terminate()
            self._opened -= 1
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def run(self, method: str, sql: str, *args: Any) -> Any:
        import asyncpg

        conn = await self._acquire()
        reusable = False
        try:
            result = await getattr(conn, method)(sql, *args)
            reusable = True
            return result
        except asyncpg.PostgresError:
            reusable = True  # the server refused the statement; the connection is fine
            raise
        finally:
            self._release(conn, reusable)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            conn = self._idle.pop()
            self._opened -= 1
            await conn.close()


class PgLane:
    """Hot-path statements, each one round trip in autocommit."""

    def __init__(self, conns: Connections) -> None:
        self.conns = conns

    @classmethod
    async def open(cls, dsn: str, *, max_size: int = 10) -> PgLane:
        conns = Connections(dsn, max_size)
        await conns.run("execute", "SELECT 1")  # fail now, not on the first append
        return cls(conns)

    async def close(self) -> None:
        await self.conns.close()

    async def append(self, session_id: str, row: dict[str, Any], now: datetime) -> int | None:
        seq: int | None = await self.conns.run(
            "fetchval",
            _PG_APPEND,
            session_id,
            row["role"],
            row["content"],
            row["agent_id"],
            row["model"],
            row["token_count"],
            row["metadata"],
            row["created_at"],
            now,
        )
        return seq

    async def append_many(
        self, session_id: str, rows: Sequence[dict[str, Any]], now: datetime
    ) -> list[int] | None:
        seqs = await self.conns.run(
            "fetch",
            _PG_APPEND_MANY,
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
        )
        return sorted(r[0] for r in seqs) if seqs else None

    async def get_session(self, session_id: str) -> Session | None:
        r = await self.conns.run(
            "fetchrow", f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1", session_id
        )
        if r is None:
            return None
        return Session(
            session_id=r[0],
            agent_id=r[1],
            title=r[2],
            session_type=r[3],
            status=r[4],
            metadata=dict(r[5] or {}),
            created_at=r[6],
            updated_at=r[7],
            ended_at=r[8],
            last_message_at=r[9],
            message_count=r[10],
            token_count=r[11],
        )

    async def session_exists(self, session_id: str) -> bool:
        found = await self.conns.run(
            "fetchval", "SELECT 1 FROM sessions WHERE session_id = $1", session_id
        )
        return found is not None

    async def messages(
        self,
        session_id: str,
        *,
        limit: int,
        offset: int,
        since: datetime | None,
        after_seq: int | None,
        newest_first: bool,
    ) -> list[Message]:
        args: list[Any] = [session_id, limit, offset]
        where = "session_id = $1"
        if since is not None:
            args.append(since)
            where += f" AND created_at > ${len(args)}"
        if after_seq is not None:
            args.append(after_seq)
            where += f" AND seq > ${len(args)}"
        order = "DESC" if newest_first else "ASC"
        rows = await self.conns.run(
            "fetch",
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE {where} "
            f"ORDER BY seq {order} LIMIT $2 OFFSET $3",
            *args,
        )
        return [_message(r) for r in rows]

    async def search(
        self,
        query: str,
        *,
        limit: int,
        session_id: str | None,
        agent_ids: Sequence[str] | None,
    ) -> list[SearchHit]:
        args: list[Any] = [query, limit]
        filters = ""
        if session_id is not None:
            args.append(session_id)
            filters += f" AND m.session_id = ${len(args)}"
        if agent_ids is not None:
            args.append(list(agent_ids))
            filters += (
                " AND (SELECT s.agent_id FROM sessions s WHERE s.session_id = m.session_id)"
                f" = ANY(${len(args)}::text[])"
            )
        rows = await self.conns.run("fetch", _PG_SEARCH.format(filters=filters), *args)
        return [
            SearchHit(
                session_id=r["session_id"],
                seq=r["seq"],
                role=r["role"],
                agent_id=r["agent_id"],
                snippet=r["snippet"],
                rank=float(r["rank"]),
                created_at=r["created_at"],
                session_title=r["title"],
            )
            for r in rows
        ]


_SQLITE_BUMP = (
    "UPDATE sessions SET last_seq = last_seq + ?, message_count = message_count + ?, "
    "token_count = token_count + ?, updated_at = ?, last_message_at = ? "
    "WHERE session_id = ? RETURNING last_seq"
)
_SQLITE_INSERT = f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy stores for a datetime on SQLite (naive UTC, microseconds)."""
    return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")


CHECKPOINT_EVERY = 500


def _connect(path: str, busy_ms: int, *, autocheckpoint: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, timeout=busy_ms / 1000, check_same_thread=False
    )
    pragmas = ["journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", f"busy_timeout={busy_ms}"]
    if not autocheckpoint:
        pragmas.append("wal_autocheckpoint=0")
    for pragma in pragmas:
        conn.execute(f"PRAGMA {pragma}")
    return conn


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "busy" in text


class SqliteWriter:
    """Appends in one go: inline when the write lock is free, else on a writer thread."""

    def __init__(self, path: str, busy_timeout_s: float) -> None:
        self.path = path
        self.busy_timeout_s = busy_timeout_s
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sk-sqlite-writer")
        self._thread_conn: sqlite3.Connection | None = None  # used on the writer thread only
        self._inline_conn: sqlite3.Connection | None = None
        self._inline_lock = threading.Lock()  # one loop at a time may use the inline path
        self._inline_commits = 0
        self._checkpoint: asyncio.Future[Any] | None = None

    def _thread_write(self, session_id: str, rows: list[dict[str, Any]], now: str) -> int | None:
        if self._thread_conn is None:
            self._thread_conn = _connect(
                self.path, int(self.busy_timeout_s * 1000), autocheckpoint=True
            )
        return self._write(self._thread_conn, session_id, rows, now)

    def _try_inline(self, session_id: str, rows: list[dict[str, Any]], now: str) -> int | None:
        """Write on the calling thread; raises sqlite3.OperationalError (busy) if locked."""
        if self._inline_conn is None:
            self._inline_conn = _connect(self.path, 0, autocheckpoint=False)
        result = self._write(self._inline_conn, session_id, rows, now)
        self._inline_commits += 1
        return result

    @staticmethod
    def _write(
        conn: sqlite3.Connection, session_id: str, rows: list[dict[str, Any]], now: str
    ) -> int | None:
        # IMMEDIATE: take the write lock first, so concurrent writers queue on busy_timeout
        # instead of deadlocking on a read-to-write upgrade.
        conn.execute("BEGIN IMMEDIATE")
        try:
            n = len(rows)
            tokens = sum(r["token_count"] for r in rows)
            bumped = conn.execute(_SQLITE_BUMP, (n, n, tokens, now, now, session_id)).fetchone()
            if bumped is None:
                conn.execute("ROLLBACK")
                return None
            first = bumped[0] - n + 1
            params = [
                (
                    session_id,
                    first + i,
                    r["role"],
                    r["content"],
                    r["agent_id"],
                    r["model"],
                    r["token_count"],
                    json.dumps(r["metadata"]) if r["metadata"] is not None else None,
                    sqlite_time(r["created_at"]),
                )
                for i, r in enumerate(rows)
            ]
            if n == 1:
                conn.execute(_SQLITE_INSERT, params[0])
            else:
                conn.executemany(_SQLITE_INSERT, params)
            conn.execute("COMMIT")
            return int(bumped[0])
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    async def append(
        self, session_id: str, rows: list[dict[str, Any]], now: datetime
    ) -> int | None:
        """Append rows; returns the session's new last seq, or None if it does not exist."""
        stamp = sqlite_time(now)
        loop = asyncio.get_running_loop()
        if self._inline_lock.acquire(blocking=False):
            try:
                result = self._try_inline(session_id, rows, stamp)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
            else:
                if self._inline_commits % CHECKPOINT_EVERY == 0:
                    self._start_checkpoint(loop)
                return result
            finally:
                self._inline_lock.release()
        return await loop.run_in_executor(self._pool, self._thread_write, session_id, rows, stamp)

    def _start_checkpoint(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._checkpoint is not None and not self._checkpoint.done():
            return

        def checkpoint() -> None:
            if self._thread_conn is None:
                self._thread_conn = _connect(
                    self.path, int(self.busy_timeout_s * 1000), autocheckpoint=True
                )
            self._thread_conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

        self._checkpoint = loop.run_in_executor(self._pool, checkpoint)

    def close(self) -> None:
        def shut() -> None:
            if self._thread_conn is not None:
                self._thread_conn.close()

        self._pool.submit(shut).result()
        self._pool.shutdown()
        if self._inline_conn is not None:
            self._inline_conn.close()
