"""The SQLite backend: stdlib sqlite3, one writer thread, readers that never block the loop.

How the threads are used, and why:
- **Writes** run on one writer thread, each a ``BEGIN IMMEDIATE … COMMIT`` (taking the write
  lock first, so writers in other processes queue on ``busy_timeout`` instead of
  deadlocking on a read-to-write upgrade). Commits fsync (``synchronous=FULL``: a committed
  message survives power loss), so they never run on the event loop.
- **Hot reads** (a session, a page of messages, a context window) run inline on the calling
  thread with ``busy_timeout=0``: in WAL mode a reader waits for no one, so the inline path
  costs only the query (no thread hand-over, which would cost as much as the query). If
  SQLite ever answers busy (WAL recovery after a crash), the read goes to a reader thread
  that waits properly. Listings and search try the calling thread too, under a time budget
  (INLINE_BUDGET_S: a progress handler interrupts them, and they run again on a reader
  thread); stats go to the reader threads directly.
- **In memory** there is one connection, the writer's; every operation runs on its thread.
- **Errors translated once**: connecting, the PRAGMAs and every statement (on the writer,
  the reader threads and the calling thread alike) run inside ``sqlite_threads.translating``;
  ``sqlite_threads.translate`` is the one mapping. No sqlite3 exception leaves the backend,
  also when the file or its directory is removed under an open store.
- **The WAL stays bounded**: every read ends its snapshot before it returns; the writer
  checkpoints as it goes (``wal_autocheckpoint``, and between writes once the WAL passes
  16 MB), ``journal_size_limit`` truncates the file after a checkpoint, and when the writer
  has been idle for a moment it runs ``wal_checkpoint(TRUNCATE)`` with a short busy wait.
  Only a reader outside the store can pin the WAL (``sqlite_threads`` says how).

Timestamps are stored as naive UTC ISO text with microseconds (what SQLAlchemy wrote for
earlier versions); JSON as text. Work done on the threads is answered on the caller's own
loop (``Runner._wait``), so any event loop in any thread can use one backend.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sessionkeeper.errors import Conflict, Unavailable
from sessionkeeper.models import (
    Compaction,
    DatabaseRole,
    ForgetCounts,
    Message,
    Policy,
    SearchHit,
    Session,
    Usage,
)
from sessionkeeper.store import validate, window
from sessionkeeper.store.backends import (
    lineage_sql,
    retention_sql,
    sqlite_compaction,
    sqlite_forget,
    sqlite_index,
    sqlite_replace,
)
from sessionkeeper.store.backends import statements as sql
from sessionkeeper.store.backends.base import (
    Forked,
    ForkSpec,
    KeyRow,
    Listed,
    ListQuery,
    RuleScope,
    StatsRow,
    Tail,
    UsageRows,
    stats_row,
)
from sessionkeeper.store.backends.forgetting import ForgetPlan, Forgotten, batches
from sessionkeeper.store.backends.frameworks import sqlite_adk
from sessionkeeper.store.backends.frameworks.sqlite_adk import SqliteAdk
from sessionkeeper.store.backends.frameworks.sqlite_checkpoints import SqliteCheckpoints
from sessionkeeper.store.backends.sqlite_compaction import SqliteCompactions
from sessionkeeper.store.backends.sqlite_rows import (
    INSERT_MESSAGE,
    message_params,
    session_exists,
)
from sessionkeeper.store.backends.sqlite_rows import message as _message
from sessionkeeper.store.backends.sqlite_rows import utc as _utc
from sessionkeeper.store.backends.sqlite_threads import (
    Runner,
    read_txn,
    translating,
    write_txn,
)
from sessionkeeper.store.backends.statements import (
    KEY_COLUMNS,
    SESSION_COLUMNS,
    SQLITE_MESSAGE_READ,
    sqlite_time,
)
from sessionkeeper.store.idempotency import Claim, Recorded
from sessionkeeper.store.search import fts5_query, query_terms, snippet, wanted
from sessionkeeper.store.url import DatabaseConfig

if TYPE_CHECKING:
    from sessionkeeper.store.verbatim import Totals

T = TypeVar("T")

logger = logging.getLogger(__name__)

_process_locks: dict[tuple[str, str], threading.Lock] = {}
_process_locks_guard = threading.Lock()

_APPEND_BUMP = (
    "UPDATE sessions SET last_seq = last_seq + ?, message_count = message_count + ?, "
    "token_count = token_count + ?, updated_at = ?, last_message_at = ? "
    "WHERE session_id = ? RETURNING last_seq"
)
_MESSAGE_METADATA = (
    "SELECT seq, metadata FROM messages WHERE session_id = ? ORDER BY seq DESC LIMIT ?"
)
_INSERT_SESSION = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}, last_seq) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_LAST_SEQ = "SELECT last_seq FROM sessions WHERE session_id = ?"
_METADATA = "SELECT metadata FROM sessions WHERE session_id = ?"
_FORK_SESSION = lineage_sql.fork_session("sqlite")
_BRANCH_SESSION = lineage_sql.branch_session("sqlite")
_COPY_MESSAGES = lineage_sql.copy_messages("sqlite")
_MOVE_TAIL = lineage_sql.for_dialect(lineage_sql.MOVE_TAIL, "sqlite")
_COPY_COMPACTIONS = lineage_sql.for_dialect(lineage_sql.COPY_COMPACTIONS, "sqlite")
_REWIND_DROPS = [lineage_sql.for_dialect(s, "sqlite") for s in lineage_sql.REWIND_DROPS]
_REWOUND = lineage_sql.rewound("sqlite")
_HELD = lineage_sql.for_dialect(lineage_sql.HELD, "sqlite")
_COPY_CHECKPOINTS = [lineage_sql.for_dialect(c, "sqlite") for c in lineage_sql.COPY_CHECKPOINTS]
_TAIL_EXISTS = lineage_sql.for_dialect(lineage_sql.TAIL_EXISTS, "sqlite")
_CHILDREN = lineage_sql.for_dialect(lineage_sql.CHILDREN, "sqlite")
_GET = lineage_sql.for_dialect(lineage_sql.GET, "sqlite")
# Idempotency keys (store/idempotency.py): looked up and written inside the write's own
# transaction, under the write lock.
_RECORDED_APPEND = (
    "SELECT session_id, fingerprint, first_seq, seq_count FROM idempotency_keys "
    "WHERE session_id = ? AND kind = 'append' AND idem_key = ?"
)
_RECORDED_CREATE = (
    "SELECT session_id, fingerprint, first_seq, seq_count FROM idempotency_keys "
    "WHERE agent_id = ? AND idem_key = ? AND kind = 'create'"
)
_CLAIM = (
    "INSERT INTO idempotency_keys (session_id, kind, idem_key, agent_id, fingerprint, "
    "first_seq, seq_count, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
# A key stands for its messages while they exist (postgres_sql.FREE_KEY_OF_SEQ says why);
# a session's deletion takes its keys by the foreign key.
_FREE_KEY_OF_SEQ = (
    "DELETE FROM idempotency_keys WHERE session_id = ?1 AND kind = 'append' "
    "AND first_seq <= ?2 AND first_seq + seq_count > ?2"
)
_FREE_KEYS = "DELETE FROM idempotency_keys WHERE session_id = ? AND kind = 'append'"
_EXPIRE_KEYS = (
    "DELETE FROM idempotency_keys WHERE rowid IN "
    "(SELECT rowid FROM idempotency_keys WHERE created_at < ? LIMIT ?)"
)
# The index's best hits, then the noted messages not indexed yet that match (their terms
# compared in SQL: sqlite_index.NOTED_MATCHES), in one statement: one snapshot, in which a
# message is either indexed or noted, never both. The last column says which.
_SEARCH = """
SELECT * FROM (
    SELECT m.session_id, m.seq, -bm25(messages_fts) AS rank, m.role, m.agent_id,
           m.created_at, s.title, m.content, 0 AS noted
    FROM messages_fts
    JOIN messages m ON m.rowid = messages_fts.rowid
    JOIN sessions s ON s.session_id = m.session_id
    WHERE messages_fts MATCH ?1 {filters}
    ORDER BY bm25(messages_fts), m.session_id, m.seq
    LIMIT ?2
)
UNION ALL
{noted}
"""


@functools.lru_cache(maxsize=256)
def _search_statement(filters: str, match: str) -> str:
    """``_SEARCH`` for one shape of query and filters (the SQL of a repeated shape is made
    once: it was a tenth of a search's time)."""
    noted = sqlite_index.NOTED_MATCHES.format(match=match, filters=filters)
    return _SEARCH.format(filters=filters, noted=noted)


# ── values ──────────────────────────────────────────────────────────────────


def _log_failure(job: concurrent.futures.Future[Any]) -> None:
    if not job.cancelled() and job.exception() is not None:
        # Nothing is lost: the notes stay, and the next batch, idle moment or search
        # indexes them.
        logger.warning("indexing noted messages failed: %r", job.exception())


def _time(value: str | None) -> datetime | None:
    return None if value is None else _utc(value)


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _session(r: Sequence[Any]) -> Session:
    # Positional: SESSION_COLUMNS are Session's fields, in order.
    return Session(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        json.loads(r[5]) if r[5] else {},
        _utc(r[6]),
        _utc(r[7]),
        _time(r[8]),
        _time(r[9]),
        r[10],
        r[11],
        r[12],
        r[13],
        r[14],
    )


def _key(r: Sequence[Any]) -> KeyRow:
    # Positional: KEY_COLUMNS are KeyRow's fields, in order.
    return KeyRow(
        r[0],
        r[1],
        bool(r[2]),
        list(json.loads(r[3]) or []) if r[3] else [],
        _utc(r[4]),
        _time(r[5]),
        _time(r[6]),
        r[8],
        user_ids=None if r[7] is None else list(json.loads(r[7])),
    )


class SqliteBackend(Runner):
    dialect = "sqlite"

    def __init__(self, cfg: DatabaseConfig) -> None:
        super().__init__(cfg, sqlite_index.index_pending)
        self._appended = 0  # messages appended since this process last indexed them
        self._indexing: concurrent.futures.Future[int] | None = None  # the job under way
        self.checkpoints = SqliteCheckpoints(self)
        self.adk = SqliteAdk(self)
        self.compactions = SqliteCompactions(self)
        # Rows keyed by session go with it by the foreign keys (ON DELETE CASCADE); a purge
        # runs without them and deletes what a ghost may still have (``_purge``).
        self._ghost_tables = (*self.checkpoints.ghost_tables, *self.adk.ghost_tables)

    @classmethod
    async def open(cls, cfg: DatabaseConfig) -> SqliteBackend:
        # The directory, the connections and their PRAGMAs: failures translated like any.
        with translating(OSError):
            if cfg.path is not None and cfg.sqlite_params.get("mode") not in ("ro", "rw"):
                cfg.path.parent.mkdir(parents=True, exist_ok=True)
            return cls(cfg)

    # ── the database itself ────────────────────────────────────────────────

    async def ping(self) -> None:
        await self._read(lambda c: c.execute("SELECT 1").fetchone(), inline=True)

    async def role(self) -> DatabaseRole:
        return DatabaseRole("primary")  # one file, no replication

    def reads_served(self) -> dict[str, int] | None:
        return None

    async def schema_revision(self) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            has = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'"
            ).fetchone()
            if has is None:
                return None
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
            return str(row[0]) if row else None

        return await self._read(read)

    async def migrate(self, target: str) -> tuple[str | None, str]:
        """Alembic on the writer's own connection (an in-memory database has no other)."""
        from sessionkeeper.store import migrate

        return await self._wait(self._writer.submit(lambda c: migrate.on_sqlite(c, target)))

    @asynccontextmanager
    async def job_lock(self, name: str) -> AsyncIterator[bool]:
        key = (str(self.cfg.path or id(self)), name)
        with _process_locks_guard:
            lock = _process_locks.setdefault(key, threading.Lock())
        if not lock.acquire(blocking=False):
            yield False
            return
        try:
            yield True
        finally:
            lock.release()

    async def vacuum(self, full: bool = False) -> None:
        def run(conn: sqlite3.Connection) -> None:
            # VACUUM may renumber the rowids the FTS5 index is keyed by: rebuild it after.
            conn.execute("VACUUM")
            conn.execute("INSERT INTO messages_fts(messages_fts) VALUES('rebuild')")
            sqlite_index.forget_notes(conn)
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

        await self._wait(self._writer.submit(run))

    async def reindex_search(self, analyser: str) -> int | None:
        def built_by(conn: sqlite3.Connection) -> str | None:
            row = conn.execute("SELECT analyser FROM search_index").fetchone()
            return None if row is None else str(row[0])

        if await self._read(built_by) == analyser or self.cfg.sqlite_params.get("mode") == "ro":
            return None

        def rebuild(conn: sqlite3.Connection) -> int | None:
            if built_by(conn) == analyser:  # another process did it meanwhile
                return None
            # The FTS5 index reads every message's terms through the view (migration 0008).
            conn.execute("INSERT INTO messages_fts(messages_fts) VALUES ('rebuild')")
            sqlite_index.forget_notes(conn)
            conn.execute("DELETE FROM search_index")
            conn.execute("INSERT INTO search_index (analyser) VALUES (?)", (analyser,))
            return int(conn.execute("SELECT count(*) FROM messages").fetchone()[0])

        return await self._write(rebuild, bounded=False)

    async def _index_now(self) -> bool:
        """Index what is noted, waiting at most INDEX_WAIT_S for the write lock; whether it
        was done (never on a read-only store; another process may hold the lock)."""
        if self.cfg.sqlite_params.get("mode") == "ro":
            return False
        deadline = time.monotonic() + sqlite_index.INDEX_WAIT_S
        try:
            await self._wait(self._writer.submit(write_txn(sqlite_index.index_pending), deadline))
        except Unavailable:
            return False
        return True

    def _index_soon(self) -> None:
        """Index what is noted, as a job of its own on the writer (one at a time; never on
        a read-only store). Nothing waits for it: until it lands, searches find the noted
        messages by their terms."""
        if self.cfg.sqlite_params.get("mode") == "ro":
            return
        if self._indexing is not None and not self._indexing.done():
            return
        self._indexing = self._writer.submit(write_txn(sqlite_index.index_pending))
        self._indexing.add_done_callback(_log_failure)

    def _count_appended(self, n: int) -> None:
        """Every INDEX_BATCH appends, index them: a job of its own on the writer, queued
        behind the append, so no append's transaction carries the batch."""
        self._appended += n
        if self._appended < sqlite_index.INDEX_BATCH:
            return
        self._appended = 0
        self._index_soon()

    # ── sessions ────────────────────────────────────────────────────────────

    async def insert_session(self, s: Session, claim: Claim | None = None) -> Recorded | None:
        params = _session_row(s, 0, 0, 0)
        stamp = params[6]

        def write(conn: sqlite3.Connection) -> Recorded | None:
            if claim is not None:
                # Under the write lock: a create of the same key in flight has committed.
                found = conn.execute(_RECORDED_CREATE, (s.agent_id, claim.key)).fetchone()
                if found is not None:
                    return Recorded(*found)
            conn.execute(_INSERT_SESSION, params)
            if claim is not None:  # after its session: the foreign key
                claimed = (s.session_id, "create", claim.key, s.agent_id, claim.fingerprint)
                conn.execute(_CLAIM, (*claimed, None, 0, stamp))
            return None

        try:
            return await self._write(write)
        except Conflict:
            raise Conflict(f"session {s.session_id!r} already exists") from None

    async def get_session(self, session_id: str) -> Session | None:
        def read(conn: sqlite3.Connection) -> Session | None:
            row = conn.execute(
                f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = ?", (session_id,)
            ).fetchone()
            return None if row is None else _session(row)

        return await self._read(read, inline=True)

    async def list_sessions(self, query: ListQuery) -> Listed:
        page_sql, count_sql, params, count_params = sql.listing(self.dialect, query)

        def read(conn: sqlite3.Connection) -> Listed:
            rows = conn.execute(page_sql, params).fetchall()
            total = None
            if count_sql is not None:
                total = int(conn.execute(count_sql, count_params).fetchone()[0])
            keys = [r[-1] if query.sort == "title" else _time(r[-1]) for r in rows]
            return Listed([_session(r) for r in rows], keys, total)

        return await self._read(read_txn(read), budget=True)

    async def update_session(
        self,
        session_id: str,
        values: dict[str, Any],
        *,
        end_at: datetime | None = None,
        expected_metadata: dict[str, Any] | None = None,
    ) -> Session | None:
        sets: list[str] = []
        params: list[Any] = []
        for column, value in values.items():
            sets.append(f"{column} = ?")
            if column == "metadata":
                params.append(_json(value))
            elif isinstance(value, datetime):
                params.append(sqlite_time(value))
            else:
                params.append(value)
        if end_at is not None:
            sets.append("ended_at = COALESCE(ended_at, ?)")
            params.append(sqlite_time(end_at))
        stmt = (
            f"UPDATE sessions SET {', '.join(sets)} WHERE session_id = ? "
            f"RETURNING {SESSION_COLUMNS}"
        )

        def write(conn: sqlite3.Connection) -> Session | None:
            if expected_metadata is not None:  # under the write lock: nobody writes between
                found = conn.execute(_METADATA, (session_id,)).fetchone()
                if found is None:
                    return None
                if not validate.same_metadata(json.loads(found[0] or "{}"), expected_metadata):
                    raise validate.metadata_changed(session_id)
            row = conn.execute(stmt, [*params, session_id]).fetchone()
            return None if row is None else _session(row)

        return await self._write(write)

    async def delete_session(self, session_id: str) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            cur = conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
            return cur.rowcount > 0

        return await self._write(write)

    async def sessions_by_metadata(self, key: str, value: str) -> list[Session]:
        expr = sql.METADATA_KEY_SQL[self.dialect]
        stmt = (
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE {expr} = ? "
            "ORDER BY created_at, session_id"
        )
        return await self._read(lambda c: [_session(r) for r in c.execute(stmt, (value,))])

    # ── messages ────────────────────────────────────────────────────────────

    async def append(
        self,
        session_id: str,
        rows: Sequence[dict[str, Any]],
        now: datetime,
        claim: Claim | None = None,
    ) -> list[int] | Recorded | None:
        stamp = sqlite_time(now)
        n = len(rows)
        tokens = sum(r["token_count"] for r in rows)

        def write(conn: sqlite3.Connection) -> list[int] | Recorded | None:
            if claim is not None:
                # Under the write lock, so a send of the same key in flight has committed.
                found = conn.execute(_RECORDED_APPEND, (session_id, claim.key)).fetchone()
                if found is not None:
                    return Recorded(*found)
            bumped = conn.execute(_APPEND_BUMP, (n, n, tokens, stamp, stamp, session_id)).fetchone()
            if bumped is None:
                return None
            first = bumped[0] - n + 1
            params = [message_params(session_id, first + i, r) for i, r in enumerate(rows)]
            if n == 1:
                conn.execute(INSERT_MESSAGE, params[0])
            else:
                conn.executemany(INSERT_MESSAGE, params)
            if claim is not None:
                conn.execute(
                    _CLAIM,
                    (session_id, "append", claim.key, None, claim.fingerprint, first, n, stamp),
                )
            return list(range(first, first + n))

        seqs = await self._write(write)
        if isinstance(seqs, list):
            self._count_appended(n)
        return seqs

    async def expire_idempotency_keys(self, cutoff: datetime, batch: int) -> int:
        stamp = sqlite_time(cutoff)
        deleted = 0
        while True:  # one short write transaction per batch: appends interleave
            count = await self._write(lambda c: c.execute(_EXPIRE_KEYS, (stamp, batch)).rowcount)
            deleted += count
            if count < batch:
                return deleted

    async def get_messages(
        self,
        session_id: str,
        *,
        limit: int,
        offset: int,
        since: datetime | None,
        after_seq: int | None,
        newest_first: bool,
    ) -> list[Message] | None:
        stmt, params = sql.messages_page(
            self.dialect,
            session_id,
            limit=limit,
            offset=offset,
            since=since,
            after_seq=after_seq,
            newest_first=newest_first,
        )

        def read(conn: sqlite3.Connection) -> list[Message] | None:
            rows = conn.execute(stmt, params).fetchall()
            # Only an empty answer needs the lookup that tells "no such session".
            if not rows and not session_exists(conn, session_id):
                return None
            return [_message(r) for r in rows]

        return await self._read(read, inline=True)

    async def message_metadata(
        self, session_id: str, last: int
    ) -> list[tuple[int, dict[str, Any]]] | None:
        def read(conn: sqlite3.Connection) -> list[tuple[int, dict[str, Any]]] | None:
            rows = conn.execute(_MESSAGE_METADATA, (session_id, last)).fetchall()
            if not rows and not session_exists(conn, session_id):
                return None
            loads = json.loads
            return [(r[0], loads(r[1]) if r[1] else {}) for r in rows]

        return await self._read(read, inline=True)

    async def delete_message(
        self,
        session_id: str,
        seq: int | None,
        now: datetime,
        *,
        newest_only: bool = False,
        check: Callable[[Message], object] | None = None,
    ) -> tuple[bool, Message | None]:
        stamp = sqlite_time(now)

        def write(conn: sqlite3.Connection) -> tuple[bool, Message | None]:
            # One BEGIN IMMEDIATE transaction: nothing is appended between reading the
            # newest seq and deleting it.
            target = seq
            if seq is None or newest_only:
                target = conn.execute(
                    "SELECT max(seq) FROM messages WHERE session_id = ?", (session_id,)
                ).fetchone()[0]
                if seq is not None and target != seq:
                    target = None
            row = None
            if target is not None:
                row = conn.execute(
                    f"DELETE FROM messages WHERE session_id = ? AND seq = ? "
                    f"RETURNING {SQLITE_MESSAGE_READ}",
                    (session_id, target),
                ).fetchone()
            if row is None:
                return session_exists(conn, session_id), None
            conn.execute(
                "UPDATE sessions SET message_count = message_count - 1, "
                "token_count = token_count - ?, updated_at = ? WHERE session_id = ?",
                (row[6], stamp, session_id),
            )
            conn.execute(_FREE_KEY_OF_SEQ, (session_id, target))
            sqlite_compaction.drop_covering(conn, session_id, row[1])
            message = _message(row)
            if check is not None:
                check(message)  # on the writer, in the transaction: raising rolls it back
            return True, message

        return await self._write(write)

    async def set_usage(
        self,
        session_id: str,
        seq: int,
        usage: Usage | None,
        details: dict[str, Any] | None = None,
    ) -> tuple[bool, Message | None]:
        stmt, params = sql.set_usage(self.dialect, session_id, seq, usage, details)

        def write(conn: sqlite3.Connection) -> tuple[bool, Message | None]:
            row = conn.execute(stmt, params).fetchone()
            if row is None:
                return session_exists(conn, session_id), None
            return True, _message(row)

        return await self._write(write)

    async def usage_totals(
        self,
        session_id: str | None,
        agent_ids: list[str] | None,
        user_ids: list[str] | None,
    ) -> UsageRows | None:
        stmt, params = sql.usage_totals(self.dialect, session_id, agent_ids, user_ids)

        def read(conn: sqlite3.Connection) -> UsageRows | None:
            rows = conn.execute(stmt, params).fetchall()
            if not rows and session_id is not None and not session_exists(conn, session_id):
                return None
            return [tuple(r) for r in rows]

        return await self._read(read_txn(read))

    async def replace_tail(
        self,
        session_id: str,
        expected: Sequence[int] | None,
        rows: Sequence[dict[str, Any]],
        now: datetime,
        prune: Callable[[Message], bool] | None = None,
    ) -> bool | None:
        stamp = sqlite_time(now)
        done = await self._write(
            lambda c: sqlite_replace.replace_tail(c, session_id, expected, rows, stamp, prune)
        )
        if done:
            self._count_appended(len(rows))
        return done

    async def clear_messages(self, session_id: str, now: datetime) -> int | None:
        stamp = sqlite_time(now)

        def write(conn: sqlite3.Connection) -> int | None:
            if not session_exists(conn, session_id):
                return None
            gone = conn.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            conn.execute(_FREE_KEYS, (session_id,))
            conn.execute(sqlite_compaction.SQL.drop_all, (session_id,))
            conn.execute(
                "UPDATE sessions SET message_count = 0, token_count = 0, updated_at = ? "
                "WHERE session_id = ?",
                (stamp, session_id),
            )
            return int(gone.rowcount)

        return await self._write(write)

    async def read_tail(self, session_id: str, budget: int) -> Tail | None:
        base = f"SELECT {SQLITE_MESSAGE_READ} FROM messages WHERE session_id = ?"

        def read(conn: sqlite3.Connection) -> Tail | None:
            counts = conn.execute(sqlite_compaction.SQL.tail_head, (session_id,)).fetchone()
            if counts is None:
                return None
            head = conn.execute(
                f"{base} ORDER BY seq LIMIT ?", (session_id, window.PINNED_SCAN)
            ).fetchall()
            pinned = window.pinned_prefix(_message(r) for r in head)
            summary = None if counts[2] is None else sqlite_compaction.compaction(counts[2:])
            tail = Tail(counts[0], counts[1], pinned, [], summary)
            room = budget - sum(window.cost(m) for m in pinned)
            before: int | None = None
            floor = pinned[-1].seq if pinned else 0
            if summary is not None:
                room -= window.cost(summary.as_message())
                floor = max(floor, summary.through_seq)
            spent = 0
            while room >= 0 and spent <= room:
                chunk = conn.execute(
                    f"{base} AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
                    (session_id, floor, before if before is not None else 2**62, window.CHUNK),
                ).fetchall()
                for r in chunk:
                    message = _message(r)
                    tail.newest.append(message)
                    spent += window.cost(message)
                if len(chunk) < window.CHUNK:
                    break
                before = chunk[-1][1]
            return tail

        return await self._read(read_txn(read), inline=True)

    async def search(
        self,
        query: str,
        *,
        limit: int,
        session_id: str | None,
        agent_ids: list[str] | None,
        user_ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[SearchHit]:
        hits, _ = await self._search(
            query,
            limit,
            None,
            session_id,
            agent_ids,
            user_ids,
            metadata,
            created_after,
            created_before,
        )
        return hits

    async def _search(
        self,
        query: str,
        limit: int,
        around: int | None,
        session_id: str | None,
        agent_ids: list[str] | None,
        user_ids: list[str] | None,
        metadata: dict[str, Any] | None,
        created_after: datetime | None,
        created_before: datetime | None,
        snippets: bool = True,
    ) -> tuple[list[SearchHit], list[Message]]:
        """The hits, and with ``around`` the messages up to that many positions around each,
        read in the same call on the same connection (one snapshot, no second hand-over)."""
        marks = wanted(query)

        def filtered(p: sql.Params) -> str:
            where = ""
            if session_id is not None:
                where += f" AND m.session_id = {p(session_id)}"
            if agent_ids is not None:
                where += " AND " + p.one_of("s.agent_id", agent_ids)
            for term in p.session_filters(user_ids, metadata, "s."):
                where += f" AND {term}"
            if created_after is not None:
                where += f" AND m.created_at > {p.time(created_after)}"
            if created_before is not None:
                where += f" AND m.created_at < {p.time(created_before)}"
            return where

        p = sql.Params(self.dialect)
        p(fts5_query(query))
        p(limit)
        match = p.noted_match(query_terms(query))
        stmt = _search_statement(filtered(p), match)  # both parts share the filters' values

        def hit(r: Sequence[Any]) -> SearchHit:
            # Positional, in SearchHit's field order: session_id, seq, role, agent_id,
            # snippet, rank, created_at, session_title.
            cut = snippet(r[7], marks) if snippets else ""
            return SearchHit(r[0], r[1], r[3], r[4], cut, r[2], _utc(r[5]), r[6])

        def neighbours(conn: sqlite3.Connection, hits: list[SearchHit]) -> list[Message]:
            if around is None or not hits:
                return []
            values: list[Any] = []
            for h in hits:
                values += (h.session_id, max(1, h.seq - around), h.seq + around)
            found = {}
            for r in conn.execute(sql.message_ranges(len(hits)), values).fetchall():
                found[(r[0], r[1])] = r
            return [_message(r) for r in found.values()]

        def read(conn: sqlite3.Connection) -> tuple[list[SearchHit], list[Message], bool]:
            found = conn.execute(stmt, p.values).fetchall()
            rows = [r for r in found if not r[8]]
            late = [r for r in found if r[8]]
            if late:  # not indexed yet: ranked after the indexed hits, newest first
                rows = (rows + sorted(late, key=lambda r: r[5], reverse=True))[:limit]
            hits = [hit(r) for r in rows]
            return hits, neighbours(conn, hits), bool(late)

        hits, messages, late = await self._read(read, budget=True)
        if late and await self._index_now():
            # Noted messages matched: indexed now, so that they are ranked with the rest
            # (and this search answers as the next one will).
            hits, messages, late = await self._read(read, budget=True)
        return hits, messages

    async def search_around(
        self,
        query: str,
        *,
        context: int,
        limit: int,
        agent_ids: list[str] | None,
        user_ids: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        snippets: bool = True,
    ) -> tuple[list[SearchHit], list[Message]]:
        return await self._search(
            query,
            limit,
            context,
            None,
            agent_ids,
            user_ids,
            metadata,
            created_after,
            created_before,
            snippets,
        )

    # ── lineage (lineage_sql.py) ───────────────────────────────────────────

    async def fork_session(self, spec: ForkSpec) -> Forked | None:
        stamp = sqlite_time(spec.now)
        meta = _json(spec.metadata)

        def write(conn: sqlite3.Connection) -> Forked | None:
            # BEGIN IMMEDIATE: no other writer between reading last_seq and the copy.
            found = conn.execute(_LAST_SEQ, (spec.source_id,)).fetchone()
            if found is None:
                return None
            last = int(found[0])
            at = last if spec.at_seq is None else spec.at_seq
            if at > last:
                return Forked(last)
            values = (spec.source_id, spec.new_id, spec.title, meta, stamp, at)
            conn.execute(_FORK_SESSION, values)
            conn.execute(_COPY_MESSAGES, (spec.source_id, spec.new_id, at))
            conn.execute(_COPY_COMPACTIONS, (spec.source_id, spec.new_id, at))
            _copy_framework_rows(conn, spec.source_id, spec.new_id)
            sqlite_adk.fork_rows(
                conn,
                spec.source_id,
                spec.new_id,
                at,
                spec.now.timestamp(),
                rename=spec.metadata is None,
            )
            return Forked(last, _session(conn.execute(_GET, (spec.new_id,)).fetchone()))

        try:
            forked = await self._write(write, bounded=False)
        except Conflict:
            raise Conflict(f"session {spec.new_id!r} already exists") from None
        if forked is not None and forked.session is not None:
            self._count_appended(forked.session.message_count)  # the copies are noted
        return forked

    async def rewind_session(
        self, session_id: str, to_seq: int, branch_id: str, now: datetime
    ) -> Forked | None:
        stamp = sqlite_time(now)

        def write(conn: sqlite3.Connection) -> Forked | None:
            found = conn.execute(_LAST_SEQ, (session_id,)).fetchone()
            if found is None:
                return None
            last = int(found[0])
            if to_seq > last:
                return Forked(last)
            branch, dropped = None, 0
            if conn.execute(_TAIL_EXISTS, (session_id, to_seq)).fetchone() is not None:
                conn.execute(_BRANCH_SESSION, (session_id, branch_id, stamp, to_seq))
                conn.execute(_COPY_MESSAGES, (session_id, branch_id, to_seq))
                conn.execute(_COPY_COMPACTIONS, (session_id, branch_id, last))  # all of them
                _copy_framework_rows(conn, session_id, branch_id)
                # ADK state: read from the events before the tail leaves.
                sqlite_adk.rewind_rows(conn, session_id, branch_id, to_seq, now.timestamp())
                # The tail's rows move (same rowids: the search index is still right).
                dropped = conn.execute(_MOVE_TAIL, (session_id, branch_id, to_seq)).rowcount
                for stmt in _REWIND_DROPS:
                    conn.execute(stmt, (session_id, to_seq))
                branch = _session(conn.execute(_GET, (branch_id,)).fetchone())
            row = conn.execute(_REWOUND, (session_id, to_seq, stamp)).fetchone()
            return Forked(last, _session(row), branch, dropped)

        try:
            forked = await self._write(write, bounded=False)
        except Conflict:
            raise Conflict(f"session {branch_id!r} already exists") from None
        if forked is not None and forked.branch is not None:
            self._count_appended(to_seq)
        return forked

    async def children(self, session_id: str) -> list[Session] | None:
        def read(conn: sqlite3.Connection) -> list[Session] | None:
            rows = conn.execute(_CHILDREN, (session_id,)).fetchall()
            if not rows and not session_exists(conn, session_id):
                return None
            return [_session(r) for r in rows]

        return await self._read(read_txn(read))

    # ── set-wide work ──────────────────────────────────────────────────────

    async def delete_ghosts(self, cutoff: datetime, batch: int) -> int:
        stamp = sqlite_time(cutoff)
        stmt = (
            "DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM sessions "
            f"WHERE {sql.GHOST} AND created_at < ?1 LIMIT ?2) "
            f"AND {sql.GHOST} AND created_at < ?1"
        )
        deleted = 0
        while True:  # one short transaction per batch: appends interleave
            # Without foreign keys: the DELETE itself re-checks the ghost rule under the write
            # lock, so there is nothing to cascade but a ghost ADK session's key row
            # (``_purge`` deletes such rows by id), and the per-row cascade probe was most of
            # the purge's time (bench/: 0.99x → ~0.7x a bare DELETE … NOT EXISTS).
            count = await self._write(
                lambda c: _purge(c, stmt, (stamp, batch), self._ghost_tables),
                foreign_keys=False,
            )
            deleted += count
            if count < batch:
                return deleted

    async def list_ghosts(self, cutoff: datetime, limit: int | None) -> list[Session]:
        stmt, params = sql.ghosts(self.dialect, cutoff, limit)
        return await self._read(lambda c: [_session(r) for r in c.execute(stmt, params)])

    async def delete_ghost_ids(self, cutoff: datetime, ids: Sequence[str]) -> int:
        stmt, params = sql.ghosts_by_id(self.dialect, cutoff, ids)
        return await self._write(
            lambda c: _purge(c, stmt, tuple(params), self._ghost_tables), foreign_keys=False
        )

    async def prune(
        self, cutoff: datetime, *, dry_run: bool, batch: int
    ) -> tuple[int, int, list[str]]:
        stamp = sqlite_time(cutoff)
        if dry_run:

            def read(conn: sqlite3.Connection) -> tuple[int, int, list[str]]:
                rows = conn.execute(
                    "SELECT session_id, message_count FROM sessions WHERE updated_at < ? "
                    "ORDER BY updated_at, session_id",
                    (stamp,),
                ).fetchall()
                return len(rows), sum(r[1] for r in rows), [r[0] for r in rows]

            return await self._read(read)
        stmt = (
            "DELETE FROM sessions WHERE session_id IN (SELECT session_id FROM sessions "
            "WHERE updated_at < ?1 LIMIT ?2) AND updated_at < ?1 "
            "RETURNING session_id, message_count"
        )
        ids: list[str] = []
        messages = 0
        while True:
            rows = await self._write(lambda c: c.execute(stmt, (stamp, batch)).fetchall())
            ids += [r[0] for r in rows]
            messages += sum(r[1] for r in rows)
            if len(rows) < batch:
                return len(ids), messages, ids

    async def stats(
        self,
        ghost_cutoff: datetime,
        stale_cutoff: datetime,
        agent_ids: list[str] | None,
        user_ids: list[str] | None = None,
    ) -> StatsRow:
        totals, by_agent, by_type, params, group_params = sql.stats(
            self.dialect, ghost_cutoff, stale_cutoff, agent_ids, user_ids
        )

        def read(conn: sqlite3.Connection) -> StatsRow:
            t = conn.execute(totals, params).fetchone()
            agents = {str(a): int(n) for a, n in conn.execute(by_agent, group_params)}
            types = {str(a): int(n) for a, n in conn.execute(by_type, group_params)}
            return stats_row(t, _time(t[8]), _time(t[9]), agents, types)

        return await self._read(read_txn(read))

    async def import_session(
        self,
        session: Session,
        last_seq: int,
        items: Sequence[Message],
        replace: bool,
        compactions: Sequence[Compaction] = (),
    ) -> bool:
        s = session
        row = _session_row(s, len(items), sum(m.token_count for m in items), last_seq)

        def write(conn: sqlite3.Connection) -> bool:
            if not _make_room(conn, s.session_id, replace):
                return False
            conn.execute(_INSERT_SESSION, row)
            conn.executemany(
                INSERT_MESSAGE, [message_params(s.session_id, m.seq, m) for m in items]
            )
            sqlite_compaction.insert_all(conn, compactions)
            sqlite_index.index_pending(conn)  # an import is a batch of its own
            return True

        # Its lock wait is bounded like any write; a large session may then take a while.
        return await self._write(write, bounded=False)

    async def import_session_stream(
        self,
        session: Session,
        chunks: Iterator[list[Message]],
        totals: Totals,
        replace: bool,
        compactions: Iterable[Compaction] = (),
    ) -> bool:
        s = session

        def write(conn: sqlite3.Connection) -> bool:
            if not _make_room(conn, s.session_id, replace):
                return False
            conn.execute(_INSERT_SESSION, _session_row(s, 0, 0, 0))
            for chunk in chunks:  # read here, on the writer: one chunk in memory at a time
                conn.executemany(
                    INSERT_MESSAGE, [message_params(s.session_id, m.seq, m) for m in chunk]
                )
            conn.execute(
                "UPDATE sessions SET message_count = ?, token_count = ?, last_seq = ? "
                "WHERE session_id = ?",
                (totals.count, totals.tokens, totals.last_seq, s.session_id),
            )
            sqlite_compaction.insert_all(conn, compactions)  # read here too, after the messages
            sqlite_index.index_pending(conn)  # an import is a batch of its own
            return True

        return await self._write(write, bounded=False)

    # ── API keys ────────────────────────────────────────────────────────────

    async def insert_key(self, key: KeyRow) -> None:
        params = (
            key.key_id,
            key.name,
            int(key.admin),
            _json(key.agent_ids or None),
            sqlite_time(key.created_at),
            None,
            None,
            _json(key.user_ids),  # NULL: every user
            key.secret_hash,
        )
        await self._write(
            lambda c: c.execute(
                f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", params
            )
        )

    async def get_key(self, key_id: str) -> KeyRow | None:
        def read(conn: sqlite3.Connection) -> KeyRow | None:
            row = conn.execute(
                f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = ?", (key_id,)
            ).fetchone()
            return None if row is None else _key(row)

        return await self._read(read, inline=True)

    async def list_keys(self, include_revoked: bool) -> list[KeyRow]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        stmt = f"SELECT {KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id"
        return await self._read(lambda c: [_key(r) for r in c.execute(stmt)])

    async def any_active_key(self) -> bool:
        stmt = "SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"
        return await self._read(lambda c: c.execute(stmt).fetchone() is not None, inline=True)

    async def revoke_key(self, key_id: str, now: datetime) -> KeyRow | None:
        stmt = (
            "UPDATE api_keys SET revoked_at = ? WHERE key_id = ? AND revoked_at IS NULL "
            f"RETURNING {KEY_COLUMNS}"
        )

        def write(conn: sqlite3.Connection) -> KeyRow | None:
            row = conn.execute(stmt, (sqlite_time(now), key_id)).fetchone()
            return None if row is None else _key(row)

        return await self._write(write)

    async def touch_key(self, key_id: str, now: datetime) -> None:
        stmt = "UPDATE api_keys SET last_used_at = ? WHERE key_id = ?"
        await self._write(lambda c: c.execute(stmt, (sqlite_time(now), key_id)))

    # ── retention policies (SQL: retention_sql.py) ─────────────────────────

    async def list_policies(self) -> list[Policy]:
        stmt = retention_sql.LIST_POLICIES
        return await self._read(lambda c: [_policy(r) for r in c.execute(stmt)])

    async def put_policy(self, policy: Policy) -> None:
        stmt, params = retention_sql.put_policy(self.dialect, policy)
        await self._write(lambda c: c.execute(stmt, params))

    async def delete_policy(self, agent_id: str) -> Policy | None:
        stmt, params = retention_sql.delete_policy(self.dialect, agent_id)

        def write(conn: sqlite3.Connection) -> Policy | None:
            row = conn.execute(stmt, params).fetchone()
            return None if row is None else _policy(row)

        return await self._write(write)

    async def rule_sessions(self, scope: RuleScope) -> list[tuple[str, int]]:
        stmt, params = retention_sql.rule_sessions(self.dialect, scope)
        return await self._read(lambda c: [(r[0], r[1]) for r in c.execute(stmt, params)])

    async def apply_rule(
        self, scope: RuleScope, now: datetime, batch: int
    ) -> list[tuple[str, int]]:
        stmt, params = retention_sql.apply_rule(self.dialect, scope, now, batch)
        taken: list[tuple[str, int]] = []
        while True:  # one short write transaction per batch: appends interleave
            # The statement re-checks the rule on each row inside the write transaction;
            # deleted sessions take their rows along by the foreign keys (as a prune's).
            rows = await self._write(lambda c: c.execute(stmt, params).fetchall())
            taken += [(r[0], r[1]) for r in rows]
            if len(rows) < batch:
                return taken

    # ── forgetting a user (forgetting.py, sqlite_forget.py) ────────────────

    async def forget_user(self, plan: ForgetPlan) -> Forgotten:
        tables = (self.checkpoints.session_tables, self.adk.session_tables)
        if plan.record is None:
            return Forgotten(
                await self._read(read_txn(lambda c: sqlite_forget.preview(c, plan, *tables)))
            )

        def batch(ids: list[str]) -> Callable[[sqlite3.Connection], ForgetCounts]:
            return lambda c: sqlite_forget.delete_batch(c, plan, ids, *tables)

        found = await self._read(lambda c: sqlite_forget.found(c, plan))
        counts = ForgetCounts()
        for ids in batches(found):  # one short transaction each: other writers go between
            counts += await self._write(batch(ids))
        # Its lock wait is bounded like any write; the index merge then takes what it takes.
        done = counts
        counts = await self._write(
            lambda c: sqlite_forget.finish(c, plan, *tables, done), bounded=False
        )
        if self.cfg.memory:
            return Forgotten(counts)
        truncated = await self._wait(self._writer.submit(sqlite_forget.truncate_wal))
        return Forgotten(counts, truncated)


def _purge(
    conn: sqlite3.Connection, stmt: str, params: tuple[Any, ...], tables: Sequence[str]
) -> int:
    """Delete ghosts (``stmt``, run without foreign keys) and the rows a ghost may still
    have in ``tables`` (a ghost ADK session's key row)."""
    gone = [r[0] for r in conn.execute(f"{stmt} RETURNING session_id", params)]
    if gone:
        ids = json.dumps(gone)
        for table in tables:
            conn.execute(
                f"DELETE FROM {table} WHERE session_id IN (SELECT value FROM json_each(?))",
                (ids,),
            )
    return len(gone)


def _policy(r: Sequence[Any]) -> Policy:
    # Positional: retention_sql.POLICY_COLUMNS are Policy's fields, in order.
    return Policy(r[0], r[1], r[2], r[3], _utc(r[4]))


def _session_row(s: Session, count: int, tokens: int, last_seq: int) -> tuple[Any, ...]:
    """The values of _INSERT_SESSION for ``s`` with these counters."""
    return (
        s.session_id,
        s.agent_id,
        s.title,
        s.session_type,
        s.status,
        _json(s.metadata or None),
        sqlite_time(s.created_at),
        sqlite_time(s.updated_at),
        sqlite_time(s.ended_at) if s.ended_at else None,
        sqlite_time(s.last_message_at) if s.last_message_at else None,
        count,
        tokens,
        s.user_id,
        s.parent_session_id,
        s.fork_seq,
        last_seq,
    )


def _copy_framework_rows(conn: sqlite3.Connection, source: str, target: str) -> None:
    """A fork's (or branch's) copy of the source's LangGraph checkpoints, if it has any."""
    if conn.execute(_HELD, (source, target)).fetchone()[0]:
        for stmt in _COPY_CHECKPOINTS:
            conn.execute(stmt, (source, target))


def _make_room(conn: sqlite3.Connection, session_id: str, replace: bool) -> bool:
    """Whether an import may write the session: absent, or deleted here to be replaced."""
    if session_exists(conn, session_id):
        if not replace:
            return False
        conn.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))
    return True
