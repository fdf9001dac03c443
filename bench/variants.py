"""Proposed store changes, applied as monkeypatches for a before/after measurement.

Nothing here is used by sessionkeeper itself: ``run.py --variant NAME`` patches the store in
the benchmark process only, so a proposal is measured with the same harness, on the same
data, as the code it would replace. Written against the store at commit 9010046
(``sessionkeeper.store.sql.Store``); each patched method keeps the original's validation,
errors and return values.

Variants (each includes the previous one):

``head``        no change.
``autocommit``  SQLAlchemy kept everywhere, small changes:
                - PostgreSQL reads and the single-statement append run in AUTOCOMMIT: a lone
                  statement is already its own transaction, so BEGIN and COMMIT/ROLLBACK are
                  two wasted round trips (~0.14 ms each here), and the append's row lock is
                  released by the server at the end of the statement instead of waiting for
                  the client's COMMIT;
                - search (no filters) is one flat statement, ``WHERE tsv @@ q ORDER BY rank
                  LIMIT n`` with the title as a scalar subquery: safe because no index yields
                  rank order, and it plans in ~0.25 ms instead of ~0.9 ms (the CTE version is
                  re-planned on every call: its generic plan never wins); statements cached;
                - the ghost purge picks each batch through the partial index (ORDER BY
                  created_at LIMIT n) and deletes by primary key, instead of a semi-join that
                  scans the whole sessions table once per batch.
``direct``      ``autocommit`` plus the hot paths off SQLAlchemy's execution layer:
                - PostgreSQL: add_message, add_messages, get_messages, get_session and
                  search_messages run one statement on asyncpg connections the store keeps
                  in a minimal LIFO pool (append batch = one CTE over unnest(); one round
                  trip, autocommit). Neither SQLAlchemy's pool nor asyncpg's: asyncpg.Pool
                  adds ~0.12-0.25 ms per call here even without its reset query, and ~0.7 ms
                  with it (``pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL``);
                - SQLite: add_message / add_messages run the whole write transaction in one
                  call on a writer thread the store owns (aiosqlite via SQLAlchemy makes ~12
                  thread hops per append, ~0.1 ms each here).
``inline``      ``direct``, but SQLite writes run on the event-loop thread when the write lock
                is free (BEGIN IMMEDIATE with busy_timeout=0), and go to the writer thread
                only when another writer holds it. Trades a loop stall of one commit (fsync,
                ~0.4 ms here) for the thread hand-over.

Tried and dropped: ``plan_cache_mode=force_custom_plan`` on the store's connections. It
also re-plans the foreign-key cascade's internal query for every deleted row (ghost purge 4x
slower: 40 us instead of 9 us per row) and the search statement on every call.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import importlib.util
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

VARIANTS = ("head", "autocommit", "direct", "inline")


def engine_kwargs(variant: str, db: str) -> dict[str, Any]:
    """Extra ``Store.open`` keyword arguments for a variant (none so far)."""
    return {}


BASE_COMMIT = "9010046"


def apply(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if variant != "head" and importlib.util.find_spec("sessionkeeper.store.lanes") is not None:
        # The store has since adopted the `direct` design (store/lanes.py): patching it
        # would measure this file's code instead of the store's.
        raise SystemExit(
            f"--variant {variant} patches the store as of commit {BASE_COMMIT}; this store "
            "already has fast lanes (sessionkeeper/store/lanes.py). To reproduce the "
            f"before/after figures: git archive {BASE_COMMIT} src | tar -x -C /tmp/sk_base && "
            "PYTHONPATH=/tmp/sk_base/src .venv/bin/python bench/run.py --variant …"
        )
    if variant != "head":
        _apply_autocommit()
    if variant in ("direct", "inline"):
        _apply_direct()


async def attach(store: Any, variant: str, url: str) -> None:
    """Per-store resources of a variant (the asyncpg connections / SQLite writer thread)."""
    if variant not in ("direct", "inline"):
        return
    if store.dialect == "postgresql":
        store._bench_apg = LeanPool(url.replace("postgresql+asyncpg://", "postgresql://"))
    else:
        path = str(store.engine.url.database)
        store._bench_sqlite = _SqliteWriter(path, inline=variant == "inline")


class LeanPool:
    """A LIFO list of asyncpg connections, opened on demand up to ``size``.

    A connection goes back to the list only after a call that finished normally; after an
    error or a cancellation (the protocol may be mid-query) it is terminated and a new one
    will be opened when needed. Nothing else to reset: the statements run here take no
    advisory lock, open no cursor, LISTEN or SET nothing, and run in autocommit."""

    def __init__(self, dsn: str, size: int = 10) -> None:
        self.dsn = dsn
        self.size = size
        self.idle: list[Any] = []
        self.opened = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    async def _connect(self) -> Any:
        import asyncpg

        conn = await asyncpg.connect(self.dsn)
        await conn.set_type_codec(
            "jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog"
        )
        return conn

    async def _acquire(self) -> Any:
        while True:
            if self.idle:
                return self.idle.pop()
            if self.opened < self.size:
                self.opened += 1
                try:
                    return await self._connect()
                except BaseException:
                    self.opened -= 1
                    raise
            waiter = asyncio.get_running_loop().create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self.waiters:
                    self.waiters.remove(waiter)

    def _release(self, conn: Any, ok: bool) -> None:
        if ok:
            self.idle.append(conn)
        else:
            conn.terminate()
            self.opened -= 1
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                break

    async def _run(self, method: str, sql: str, *args: Any) -> Any:
        conn = await self._acquire()
        ok = False
        try:
            result = await getattr(conn, method)(sql, *args)
            ok = True
            return result
        finally:
            self._release(conn, ok)

    async def fetch(self, sql: str, *args: Any) -> Any:
        return await self._run("fetch", sql, *args)

    async def fetchval(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchval", sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        return await self._run("fetchrow", sql, *args)

    async def close(self) -> None:
        while self.idle:
            await self.idle.pop().close()


# ── autocommit ───────────────────────────────────────────────────────────────

# No index yields rank order, so the planner can only find the matches through the GIN index
# and sort them (the PK walk that the MATERIALIZED fence guards against needs an ORDER BY an
# index provides). ts_headline and the title subquery run for the LIMIT rows only.
_PG_SEARCH_FLAT = """
SELECT m.session_id, m.seq, ts_rank(m.tsv, q) AS rank, m.role, m.agent_id, m.created_at,
       (SELECT s.title FROM sessions s WHERE s.session_id = m.session_id) AS title,
       ts_headline('english', m.content, q,
                   'StartSel=<mark>, StopSel=</mark>, MaxWords=24, MinWords=8, MaxFragments=2')
           AS snippet
FROM messages m, websearch_to_tsquery('english', {q}) AS q
WHERE m.tsv @@ q
ORDER BY rank DESC, m.session_id, m.seq
LIMIT {limit}
"""

_GHOSTS_PG = """
DELETE FROM sessions
WHERE session_id = ANY(ARRAY(
        SELECT session_id FROM sessions
        WHERE message_count = 0 AND created_at < :cutoff
        ORDER BY created_at
        LIMIT :batch))
  AND message_count = 0 AND created_at < :cutoff
"""


def _apply_autocommit() -> None:
    from sqlalchemy import bindparam, text

    from sessionkeeper.errors import NotFound
    from sessionkeeper.models import Message, NewMessage
    from sessionkeeper.store import housekeeping, sql, validate
    from sessionkeeper.store import search as fts
    from sessionkeeper.store.schema import UTCDateTime

    Store = sql.Store
    original_add_message = Store.add_message

    @asynccontextmanager
    async def _read(self: Any) -> Any:
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    async def add_message(
        self: Any,
        session_id: str,
        role: str,
        content: str,
        *,
        agent_id: str | None = None,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
        token_count: int | None = None,
        created_at: datetime | None = None,
    ) -> Any:
        if self.dialect != "postgresql":
            return await original_add_message(
                self,
                session_id,
                role,
                content,
                agent_id=agent_id,
                model=model,
                metadata=metadata,
                token_count=token_count,
                created_at=created_at,
            )
        validate.session_id(session_id)
        row = self._prepare(
            NewMessage(role, content, agent_id, model, metadata, token_count, created_at)
        )
        now = sql.utcnow()
        row["created_at"] = row["created_at"] or now
        # One statement = one transaction: the row lock lasts exactly as long as the append.
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            result = await conn.execute(
                sql._PG_APPEND, {**row, "session_id": session_id, "now": now}
            )
            seq = result.scalar_one_or_none()
        if seq is None:
            raise NotFound(f"session {session_id!r} not found")
        return Message(session_id=session_id, seq=seq, **{**row, "metadata": row["metadata"] or {}})

    Store._read = _read
    Store.add_message = add_message

    build = fts._statement
    flat_pg = text(_PG_SEARCH_FLAT.format(q=":q", limit=":limit")).columns(created_at=UTCDateTime())

    @functools.lru_cache(maxsize=32)
    def cached(dialect: str, has_session: bool, has_agents: bool) -> Any:
        if dialect == "postgresql" and not (has_session or has_agents):
            return flat_pg
        return build(dialect, "x" if has_session else None, ["x"] if has_agents else None)

    fts._statement = lambda dialect, session_id, agent_ids: cached(
        dialect, session_id is not None, agent_ids is not None
    )

    ghosts_pg = text(_GHOSTS_PG).bindparams(bindparam("cutoff", type_=UTCDateTime()))
    original_delete_ghosts = housekeeping.delete_ghosts

    async def delete_ghosts(engine: Any, older_than_minutes: float, now: datetime) -> int:
        if engine.dialect.name != "postgresql":
            return await original_delete_ghosts(engine, older_than_minutes, now)
        cutoff = now - timedelta(minutes=older_than_minutes)
        batch = housekeeping.GHOST_BATCH
        deleted = 0
        while True:
            # Each batch is its own statement (= its own short transaction). The outer WHERE
            # is re-checked on the latest row version, so a session that got a message
            # after the pick is not deleted.
            async with engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                count = (await conn.execute(ghosts_pg, {"cutoff": cutoff, "batch": batch})).rowcount
            deleted += count
            if count < batch:
                return deleted

    housekeeping.delete_ghosts = delete_ghosts


# ── direct ───────────────────────────────────────────────────────────────────

_APG_APPEND = """
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + 1, message_count = message_count + 1,
        token_count = token_count + $6, updated_at = $9, last_message_at = $9
    WHERE session_id = $1
    RETURNING last_seq
)
INSERT INTO messages
    (session_id, seq, role, content, agent_id, model, token_count, metadata, created_at)
SELECT $1, last_seq, $2, $3, $4, $5, $6, $7, $8 FROM bump
RETURNING seq
"""

_APG_APPEND_MANY = """
WITH bump AS (
    UPDATE sessions
    SET last_seq = last_seq + $2, message_count = message_count + $2,
        token_count = token_count + $3, updated_at = $4, last_message_at = $4
    WHERE session_id = $1
    RETURNING last_seq
)
INSERT INTO messages
    (session_id, seq, role, content, agent_id, model, token_count, metadata, created_at)
SELECT $1, bump.last_seq - $2 + t.n, t.role, t.content, t.agent_id, t.model, t.token_count,
       t.metadata, t.created_at
FROM bump, unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::jsonb[],
                  $11::timestamptz[])
     WITH ORDINALITY AS t(role, content, agent_id, model, token_count, metadata, created_at, n)
RETURNING seq
"""

_MESSAGE_SELECT = (
    "SELECT session_id, seq, role, content, agent_id, model, token_count, metadata, created_at "
    "FROM messages WHERE session_id = $1 "
)
_APG_LAST = _MESSAGE_SELECT + "ORDER BY seq DESC LIMIT $2 OFFSET $3"
_APG_PAGE = _MESSAGE_SELECT + "ORDER BY seq LIMIT $2 OFFSET $3"
_APG_SESSION = (
    "SELECT session_id, agent_id, title, session_type, status, metadata, created_at, updated_at, "
    "ended_at, last_message_at, message_count, token_count FROM sessions WHERE session_id = $1"
)

_SQLITE_BUMP = (
    "UPDATE sessions SET last_seq = last_seq + ?, message_count = message_count + ?, "
    "token_count = token_count + ?, updated_at = ?, last_message_at = ? "
    "WHERE session_id = ? RETURNING last_seq"
)
_SQLITE_INSERT = (
    "INSERT INTO messages (session_id, seq, role, content, agent_id, model, token_count, "
    "metadata, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def sqlite_time(value: datetime) -> str:
    """The text SQLAlchemy stores for a UTC datetime on SQLite (naive, microseconds)."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class _SqliteWriter:
    """One writer thread with its own sqlite3 connection: a write transaction is one
    hand-over. With ``inline``, a second connection on the event-loop thread tries the write
    first with busy_timeout=0 and only hands over when another writer holds the lock."""

    def __init__(self, path: str, *, inline: bool = False) -> None:
        self.path = path
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sk-sqlite-writer")
        self.local = threading.local()
        self.inline = inline
        self.loop_conn: sqlite3.Connection | None = None

    def _open(self, busy_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, isolation_level=None, timeout=busy_ms / 1000, check_same_thread=False
        )
        for pragma in (
            "journal_mode=WAL",
            "synchronous=FULL",
            "foreign_keys=ON",
            f"busy_timeout={busy_ms}",
        ):
            conn.execute(f"PRAGMA {pragma}")
        return conn

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            from sessionkeeper.store.engine import SQLITE_BUSY_TIMEOUT_S

            conn = self._open(int(SQLITE_BUSY_TIMEOUT_S * 1000))
            self.local.conn = conn
        return conn

    @staticmethod
    def _write(
        conn: sqlite3.Connection, session_id: str, rows: list[dict[str, Any]], now: str
    ) -> int | None:
        conn.execute("BEGIN IMMEDIATE")  # raises "database is locked" at once if busy_timeout=0
        try:
            n = len(rows)
            bumped = conn.execute(
                _SQLITE_BUMP,
                (n, n, sum(r["token_count"] for r in rows), now, now, session_id),
            ).fetchone()
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

    def _append(self, session_id: str, rows: list[dict[str, Any]], now: str) -> int | None:
        return self._write(self._conn(), session_id, rows, now)

    async def append(
        self, session_id: str, rows: list[dict[str, Any]], now: datetime
    ) -> int | None:
        stamp = sqlite_time(now)
        if self.inline:
            if self.loop_conn is None:
                self.loop_conn = self._open(0)
            try:
                return self._write(self.loop_conn, session_id, rows, stamp)
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, self._append, session_id, rows, stamp)

    def close(self) -> None:
        def shut() -> None:
            conn = getattr(self.local, "conn", None)
            if conn is not None:
                conn.close()

        self.pool.submit(shut).result()
        self.pool.shutdown()
        if self.loop_conn is not None:
            self.loop_conn.close()


def _apply_direct() -> None:
    from sessionkeeper.errors import NotFound
    from sessionkeeper.models import MAX_MESSAGES_PAGE, Message, NewMessage, SearchHit, Session
    from sessionkeeper.store import search as fts
    from sessionkeeper.store import sql, validate

    Store = sql.Store
    orig = {
        name: getattr(Store, name)
        for name in (
            "add_message",
            "add_messages",
            "get_messages",
            "get_session",
            "search_messages",
            "close",
        )
    }
    search_sql = _PG_SEARCH_FLAT.format(q="$1", limit="$2")

    def to_message(r: Any) -> Message:
        return Message(
            session_id=r[0],
            seq=r[1],
            role=r[2],
            content=r[3],
            agent_id=r[4],
            model=r[5],
            token_count=r[6],
            metadata=dict(r[7] or {}),
            created_at=r[8],
        )

    async def add_message(
        self: Any,
        session_id: str,
        role: str,
        content: str,
        *,
        agent_id: str | None = None,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
        token_count: int | None = None,
        created_at: datetime | None = None,
    ) -> Any:
        apg = getattr(self, "_bench_apg", None)
        writer = getattr(self, "_bench_sqlite", None)
        if apg is None and writer is None:
            return await orig["add_message"](
                self,
                session_id,
                role,
                content,
                agent_id=agent_id,
                model=model,
                metadata=metadata,
                token_count=token_count,
                created_at=created_at,
            )
        validate.session_id(session_id)
        row = self._prepare(
            NewMessage(role, content, agent_id, model, metadata, token_count, created_at)
        )
        now = sql.utcnow()
        row["created_at"] = row["created_at"] or now
        if apg is not None:
            seq = await apg.fetchval(
                _APG_APPEND,
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
        else:
            seq = await writer.append(session_id, [row], now)
        if seq is None:
            raise NotFound(f"session {session_id!r} not found")
        return Message(session_id=session_id, seq=seq, **{**row, "metadata": row["metadata"] or {}})

    async def add_messages(
        self: Any, session_id: str, items: Iterable[NewMessage | Mapping[str, Any]]
    ) -> list[Any]:
        apg = getattr(self, "_bench_apg", None)
        writer = getattr(self, "_bench_sqlite", None)
        if apg is None and writer is None:
            return await orig["add_messages"](self, session_id, items)
        validate.session_id(session_id)
        rows = [self._prepare(item) for item in items]
        if not rows:
            await self.get_session(session_id)
            return []
        now = sql.utcnow()
        for row in rows:
            row["created_at"] = row["created_at"] or now
        if apg is not None:
            seqs = await apg.fetch(
                _APG_APPEND_MANY,
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
            if not seqs:
                raise NotFound(f"session {session_id!r} not found")
            numbers = sorted(s[0] for s in seqs)
        else:
            last = await writer.append(session_id, rows, now)
            if last is None:
                raise NotFound(f"session {session_id!r} not found")
            numbers = list(range(last - len(rows) + 1, last + 1))
        return [
            Message(session_id=session_id, seq=seq, **{**row, "metadata": row["metadata"] or {}})
            for seq, row in zip(numbers, rows, strict=True)
        ]

    async def get_messages(
        self: Any,
        session_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        since: datetime | None = None,
        after_seq: int | None = None,
        last: int | None = None,
    ) -> list[Any]:
        apg = getattr(self, "_bench_apg", None)
        if apg is None or since is not None or after_seq is not None:
            return await orig["get_messages"](
                self,
                session_id,
                limit=limit,
                offset=offset,
                since=since,
                after_seq=after_seq,
                last=last,
            )
        validate.session_id(session_id)
        validate.limit(limit, MAX_MESSAGES_PAGE)
        validate.non_negative(offset, "offset")
        if last is not None:
            validate.limit(last, MAX_MESSAGES_PAGE, "last")
            rows = await apg.fetch(_APG_LAST, session_id, last, offset)
        else:
            rows = await apg.fetch(_APG_PAGE, session_id, limit, offset)
        if (
            not rows
            and await apg.fetchval("SELECT 1 FROM sessions WHERE session_id = $1", session_id)
            is None
        ):
            raise NotFound(f"session {session_id!r} not found")
        found = [to_message(r) for r in rows]
        if last is not None:
            found.reverse()
        return found

    async def get_session(self: Any, session_id: str) -> Any:
        apg = getattr(self, "_bench_apg", None)
        if apg is None:
            return await orig["get_session"](self, session_id)
        validate.session_id(session_id)
        r = await apg.fetchrow(_APG_SESSION, session_id)
        if r is None:
            raise NotFound(f"session {session_id!r} not found")
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

    async def search_messages(self: Any, query: str, *, limit: int = 20, **filters: Any) -> Any:
        apg = getattr(self, "_bench_apg", None)
        if apg is None or any(v is not None for v in filters.values()):
            return await orig["search_messages"](self, query, limit=limit, **filters)
        query = fts.check_query(query)
        validate.limit(limit, 100)
        rows = await apg.fetch(search_sql, query, limit)
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

    async def close(self: Any) -> None:
        apg = getattr(self, "_bench_apg", None)
        if apg is not None:
            await apg.close()
        writer = getattr(self, "_bench_sqlite", None)
        if writer is not None:
            writer.close()
        await orig["close"](self)

    Store.add_message = add_message
    Store.add_messages = add_messages
    Store.get_messages = get_messages
    Store.get_session = get_session
    Store.search_messages = search_messages
    Store.close = close
