"""The PostgreSQL backend: asyncpg, every operation on the connections of ``Connections``.

- **One round trip per hot operation.** A lone statement in autocommit is its own
  transaction; an explicit BEGIN/COMMIT would be two more round trips. An append is one
  statement: a data-modifying CTE bumps the session row's counters (taking its row lock,
  which serialises appends to one session and hands out the next seq) and inserts the
  message. Operations that need several statements (pop, clear, import) run in a
  bounded transaction (``Connections._transaction``) that locks the session row first.
- **A session's rows go with it by this backend's hand** (``delete_rows``): no foreign key
  references ``sessions`` (migration 0007), so deleting a ghost costs what a plain DELETE
  costs. The session row is deleted first; every writer takes its lock first.
- **Reads may go to a standby** (a read URL or ``read_from=standby``): listings, searches,
  gets and windows take their connection from ``_reading()``, which ``postgres_reads.py``
  routes (read-your-writes per store); everything else runs on the primary.
- **Connections, deadlines and errors**: ``postgres_conn.py`` (per event loop, bounded,
  translated once by ``postgres_pool.translating``). No asyncpg exception leaves the backend.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sessionkeeper.errors import (
    Conflict,
)
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
from sessionkeeper.store.backends import lineage_sql, retention_sql
from sessionkeeper.store.backends import postgres_compaction as pg_compaction
from sessionkeeper.store.backends import postgres_forget as pg_forget
from sessionkeeper.store.backends import postgres_replace as pg_replace
from sessionkeeper.store.backends import postgres_sql as q
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
from sessionkeeper.store.backends.frameworks import postgres_adk
from sessionkeeper.store.backends.frameworks.postgres_adk import PostgresAdk
from sessionkeeper.store.backends.frameworks.postgres_checkpoints import PostgresCheckpoints
from sessionkeeper.store.backends.postgres_compaction import PostgresCompactions
from sessionkeeper.store.backends.postgres_conn import Connections
from sessionkeeper.store.backends.postgres_pool import translating
from sessionkeeper.store.backends.postgres_reads import ReadRoute
from sessionkeeper.store.backends.postgres_sql import message as _message
from sessionkeeper.store.backends.statements import (
    KEY_COLUMNS,
    MESSAGE_READ,
    SESSION_COLUMNS,
    usage_values,
)
from sessionkeeper.store.idempotency import Claim, Recorded
from sessionkeeper.store.search import pg_query, snippet, wanted
from sessionkeeper.store.terms import tsvector
from sessionkeeper.store.url import DatabaseConfig

if TYPE_CHECKING:
    from sessionkeeper.store.verbatim import Totals


def _session(r: Any) -> Session:
    return Session(
        r[0],
        r[1],
        r[2],
        r[3],
        r[4],
        dict(r[5] or {}),
        r[6],
        r[7],
        r[8],
        r[9],
        r[10],
        r[11],
        r[12],
        r[13],
        r[14],
    )


def _hit(r: Any, marks: Any) -> SearchHit:
    return SearchHit(
        session_id=r[0],
        seq=r[1],
        role=r[3],
        agent_id=r[4],
        snippet="" if marks is None else snippet(r[7], marks),
        rank=float(r[2]),
        created_at=r[5],
        session_title=r[6],
    )


def _key(r: Any) -> KeyRow:
    # Positional: KEY_COLUMNS are KeyRow's fields, in order.
    return KeyRow(
        r[0],
        r[1],
        bool(r[2]),
        list(r[3] or []),
        r[4],
        r[5],
        r[6],
        r[8],
        user_ids=None if r[7] is None else list(r[7]),
    )


def lock_key(name: str) -> int:
    """A stable 32-bit advisory-lock key for a job name (the same in every process)."""
    return zlib.crc32(f"sessionkeeper:{name}".encode())


_LAST_SEQ = "SELECT last_seq FROM sessions WHERE session_id = $1"
_FORK_SESSION = lineage_sql.fork_session("postgresql")
_BRANCH_SESSION = lineage_sql.branch_session("postgresql")
_COPY_MESSAGES = lineage_sql.copy_messages("postgresql")
_REWOUND = lineage_sql.rewound("postgresql")

REINDEX_BATCH = 2_000  # messages re-analysed per statement when the analyser changed


class PostgresBackend(Connections):
    dialect = "postgresql"

    def __init__(self, cfg: DatabaseConfig) -> None:
        super().__init__(cfg)
        self.checkpoints = PostgresCheckpoints(self, self.delete_rows)
        self.adk = PostgresAdk(self, self.delete_rows)
        self.compactions = PostgresCompactions(self)
        # Rows keyed by session, besides the session row. No foreign key deletes them (their
        # per-row cascades were most of a ghost purge: migration 0007): delete_rows does.
        tables = (
            "messages",
            "idempotency_keys",
            "compactions",
            *self.checkpoints.session_tables,
            *self.adk.session_tables,
        )
        self._delete_rows = q.delete_rows(tables)
        self._session_tables = ("sessions", *tables, "adk_user_state")
        self._ghosts = q.ghosts([*self.checkpoints.ghost_tables, *self.adk.ghost_tables])
        # Standby reads (postgres_reads.py): their own connections, read-only even where
        # prefer-standby lands on the primary.
        self._reads: ReadRoute | None = None
        if cfg.read_dsn:
            settings = {**cfg.server_settings, "default_transaction_read_only": "on"}
            standby = Connections(
                replace(cfg, dsn=cfg.read_dsn, read_dsn="", server_settings=settings)
            )
            self._reads = ReadRoute(self, standby, cfg.read_wait)

    def reads_served(self) -> dict[str, int] | None:
        r = self._reads
        return None if r is None else {"standby": r.on_standby, "primary": r.on_primary}

    def _reading(self) -> AbstractAsyncContextManager[Any]:
        """A connection for a listing, search, get or window: the standby's when there is
        one that has replayed this store's writes, else the primary's."""
        return self._conn(counted=False) if self._reads is None else self._reads.reading()

    async def close(self) -> None:
        if self._reads is not None:
            await self._reads.close()
        await super().close()

    @classmethod
    async def open(cls, cfg: DatabaseConfig) -> PostgresBackend:
        backend = cls(cfg)
        await backend.ping()  # fail now, not on the first append
        return backend

    # ── the database itself ────────────────────────────────────────────────

    async def ping(self) -> None:
        await self._run("fetchval", "SELECT 1")

    async def role(self) -> DatabaseRole:
        r = await self._run("fetchrow", q.ROLE)
        return DatabaseRole(
            "standby" if r[0] else "primary",
            lag_seconds=None if r[1] is None else max(0.0, float(r[1])),
            lag_bytes=None if r[2] is None else max(0, int(r[2])),
            standbys=None if r[3] is None else int(r[3]),
        )

    async def schema_revision(self) -> str | None:
        async with self._conn() as conn:
            if await conn.fetchval("SELECT to_regclass('alembic_version')") is None:
                return None
            found = await conn.fetchval("SELECT version_num FROM alembic_version")
        return None if found is None else str(found)

    async def migrate(self, target: str) -> tuple[str | None, str]:
        from sessionkeeper.store import migrate

        with translating(self.timeout):
            async with asyncio.timeout(max(self.timeout, 60.0)):
                return await migrate.on_postgres(self.connect, target)

    @asynccontextmanager
    async def job_lock(self, name: str) -> AsyncIterator[bool]:
        """A session-level advisory lock, held on a connection of its own for the job."""
        key = lock_key(name)
        pool = self._pool()
        with translating(self.timeout):
            async with asyncio.timeout(self.timeout):
                conn = await pool.acquire()
            reusable = False
            try:
                async with asyncio.timeout(self.timeout):
                    got = await conn.fetchval("SELECT pg_try_advisory_lock($1)", key)
                if not got:
                    reusable = True
                    yield False
                    return
                try:
                    yield True
                finally:
                    async with asyncio.timeout(self.timeout):
                        await conn.fetchval("SELECT pg_advisory_unlock($1)", key)
                reusable = True
            finally:
                # Not reusable (the unlock failed): closing the connection for real is the
                # other way to release the lock.
                pool.release(conn, reusable)

    async def vacuum(self, full: bool = False) -> None:
        # Also merges the GIN pending list that slows searches after bursts of appends. Every
        # table a session's rows live in: deleted rows' bytes stay in the files until then.
        tables = ", ".join(self._session_tables)
        async with self._conn(deadline=None) as conn:
            await conn.execute("SET statement_timeout = 0")
            try:
                options = "FULL, ANALYZE" if full else "ANALYZE"
                await conn.execute(f"VACUUM ({options}) {tables}")
            finally:
                await conn.execute("RESET statement_timeout")

    async def reindex_search(self, analyser: str) -> int | None:
        if await self._run("fetchval", q.SEARCH_INDEX) == analyser:
            return None
        async with self.job_lock("search-index") as mine:
            if not mine or await self._run("fetchval", q.SEARCH_INDEX) == analyser:
                return None  # another process is at it, or has done it
            done, after = 0, ("", 0)
            while True:
                rows = await self._run("fetch", q.REINDEX_PAGE, *after, REINDEX_BATCH)
                if not rows:
                    break
                await self._run(
                    "execute",
                    q.REINDEX_SET,
                    [r[0] for r in rows],
                    [r[1] for r in rows],
                    [tsvector(r[2]) for r in rows],
                )
                done += len(rows)
                after = (rows[-1][0], rows[-1][1])
            async with self._transaction() as conn:
                await conn.execute("DELETE FROM search_index")
                await conn.execute("INSERT INTO search_index (analyser) VALUES ($1)", analyser)
            return done

    # ── sessions ────────────────────────────────────────────────────────────

    async def insert_session(self, s: Session, claim: Claim | None = None) -> Recorded | None:
        try:
            if claim is None:
                await self._run("execute", q.INSERT_SESSION, *_session_row(s, 0, 0, 0))
                return None
            made = await self._run(
                "fetchval",
                q.INSERT_SESSION_KEYED,
                *_session_row(s, 0, 0, 0),
                claim.key,
                claim.fingerprint,
            )
        except Conflict:
            raise Conflict(f"session {s.session_id!r} already exists") from None
        if made is not None:
            return None
        found = await self._run("fetchrow", q.RECORDED_CREATE, s.agent_id, claim.key)
        if found is None:  # deleted by the TTL between the two statements: write it now
            return await self.insert_session(s, claim)
        return Recorded(*found)

    async def get_session(self, session_id: str) -> Session | None:
        stmt = f"SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1"
        rows = await self._read_rows(stmt, session_id)
        return _session(rows[0]) if rows else None

    async def list_sessions(self, query: ListQuery) -> Listed:
        page_sql, count_sql, params, count_params = sql.listing(self.dialect, query)
        async with self._reading() as conn:
            rows = await conn.fetch(page_sql, *params)
            total = None
            if count_sql is not None:
                total = int(await conn.fetchval(count_sql, *count_params))
        return Listed([_session(r) for r in rows], [r[-1] for r in rows], total)

    async def update_session(
        self,
        session_id: str,
        values: dict[str, Any],
        *,
        end_at: datetime | None = None,
        expected_metadata: dict[str, Any] | None = None,
    ) -> Session | None:
        p = sql.Params(self.dialect)
        sets = [f"{column} = {p(value)}" for column, value in values.items()]
        if end_at is not None:
            sets.append(f"ended_at = COALESCE(ended_at, {p(end_at)})")
        stmt = (
            f"UPDATE sessions SET {', '.join(sets)} WHERE session_id = {p(session_id)} "
            f"RETURNING {SESSION_COLUMNS}"
        )
        if expected_metadata is None:
            r = await self._run("fetchrow", stmt, *p.values)
            return None if r is None else _session(r)
        async with self._transaction() as conn:  # the row locked: nobody writes between
            found = await conn.fetchrow(
                "SELECT metadata FROM sessions WHERE session_id = $1 FOR UPDATE", session_id
            )
            if found is None:
                return None
            if not validate.same_metadata(found[0], expected_metadata):
                raise validate.metadata_changed(session_id)
            r = await conn.fetchrow(stmt, *p.values)
        return None if r is None else _session(r)

    async def delete_rows(self, conn: Any, session_ids: Sequence[str]) -> None:
        """Delete the rows of sessions whose session rows this transaction deleted, in every
        table keyed by session. Run as a statement of its own after that delete: a writer
        that got the session row's lock first has committed by then, and this statement's
        snapshot sees what it wrote."""
        if session_ids:
            await conn.execute(self._delete_rows, list(session_ids))

    async def delete_session(self, session_id: str) -> bool:
        async with self._transaction() as conn:
            found = await conn.fetchval(
                "DELETE FROM sessions WHERE session_id = $1 RETURNING 1", session_id
            )
            if found is not None:
                await self.delete_rows(conn, [session_id])
        return found is not None

    async def sessions_by_metadata(self, key: str, value: str) -> list[Session]:
        expr = sql.METADATA_KEY_SQL[self.dialect]
        rows = await self._run(
            "fetch",
            f"SELECT {SESSION_COLUMNS} FROM sessions WHERE {expr} = $1 "
            "ORDER BY created_at, session_id",
            value,
        )
        return [_session(r) for r in rows]

    # ── messages ────────────────────────────────────────────────────────────

    async def append(
        self,
        session_id: str,
        rows: Sequence[dict[str, Any]],
        now: datetime,
        claim: Claim | None = None,
    ) -> list[int] | Recorded | None:
        if claim is not None:
            return await self._append_keyed(session_id, rows, now, claim)
        used = any(r.get("usage") is not None for r in rows)
        if len(rows) == 1:
            seq = await self._run(
                "fetchval",
                q.APPEND_USAGE if used else q.APPEND,
                *q.append_args(session_id, rows[0], now, used),
            )
            return None if seq is None else [seq]
        found = await self._run(
            "fetch",
            q.APPEND_MANY_USAGE if used else q.APPEND_MANY,
            *q.append_many_args(session_id, rows, now, used),
        )
        return sorted(r[0] for r in found) if found else None

    async def _append_keyed(
        self, session_id: str, rows: Sequence[dict[str, Any]], now: datetime, claim: Claim
    ) -> list[int] | Recorded | None:
        """The keyed append (``postgres_sql.APPEND_KEYED``): written with its key row, or
        what the key's first write recorded, or None (no such session)."""
        try:
            if len(rows) == 1:
                stmt, values = q.APPEND_KEYED, q.append_args(session_id, rows[0], now, True)
            else:
                stmt, values = q.APPEND_MANY_KEYED, q.append_many_args(session_id, rows, now, True)
            found = await self._run("fetch", stmt, *values, claim.key, claim.fingerprint)
            if found:
                return sorted(r[0] for r in found)
        except Conflict:
            # The same key, committed by a send that held the session row first.
            recorded = await self._run("fetchrow", q.RECORDED_APPEND, session_id, claim.key)
            if recorded is None:
                raise
            return Recorded(*recorded)
        # Nothing written: the key was there, or the session was not.
        recorded = await self._run("fetchrow", q.RECORDED_APPEND, session_id, claim.key)
        return None if recorded is None else Recorded(*recorded)

    async def expire_idempotency_keys(self, cutoff: datetime, batch: int) -> int:
        deleted = 0
        while True:  # one short statement per batch
            status = await self._run("execute", q.EXPIRE_KEYS, cutoff, batch)
            count = int(status.split()[-1])
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
        async with self._reading() as conn:
            rows = await conn.fetch(stmt, *params)
            # Only an empty answer needs the lookup that tells "no such session".
            if not rows and not await _exists(conn, session_id):
                return None
        return [_message(r) for r in rows]

    async def message_metadata(
        self, session_id: str, last: int
    ) -> list[tuple[int, dict[str, Any]]] | None:
        async with self._conn() as conn:
            rows = await conn.fetch(q.MESSAGE_METADATA, session_id, last)
            if not rows and not await _exists(conn, session_id):
                return None
        return [(r[0], r[1] or {}) for r in rows]

    async def delete_message(
        self,
        session_id: str,
        seq: int | None,
        now: datetime,
        *,
        newest_only: bool = False,
        check: Callable[[Message], object] | None = None,
    ) -> tuple[bool, Message | None]:
        async with self._transaction() as conn:
            # The session row lock first: two pops at once take different messages, and
            # nothing is appended between reading the newest seq and deleting it.
            if not await _exists(conn, session_id, lock=True):
                return False, None
            if seq is None or newest_only:
                newest = await conn.fetchval(
                    "SELECT max(seq) FROM messages WHERE session_id = $1", session_id
                )
                if newest is None or (seq is not None and newest != seq):
                    return True, None
                seq = newest
            row = await conn.fetchrow(
                f"DELETE FROM messages WHERE session_id = $1 AND seq = $2 RETURNING {MESSAGE_READ}",
                session_id,
                seq,
            )
            if row is None:
                return True, None
            await conn.execute(
                "UPDATE sessions SET message_count = message_count - 1, "
                "token_count = token_count - $2, updated_at = $3 WHERE session_id = $1",
                session_id,
                row[6],
                now,
            )
            await conn.execute(q.FREE_KEY_OF_SEQ, session_id, seq)
            await conn.execute(pg_compaction.SQL.drop_covering, session_id, seq)
            message = _message(row)
            if check is not None:
                # In the transaction (raising rolls it back), on a thread: it may block.
                await asyncio.to_thread(check, message)
        return True, message

    async def replace_tail(
        self,
        session_id: str,
        expected: Sequence[int] | None,
        rows: Sequence[dict[str, Any]],
        now: datetime,
        prune: Callable[[Message], bool] | None = None,
    ) -> bool | None:
        async with self._transaction() as conn:
            return await pg_replace.replace_tail(conn, session_id, expected, rows, now, prune)

    async def set_usage(
        self,
        session_id: str,
        seq: int,
        usage: Usage | None,
        details: dict[str, Any] | None = None,
    ) -> tuple[bool, Message | None]:
        stmt, params = sql.set_usage(self.dialect, session_id, seq, usage, details)
        async with self._conn() as conn:
            row = await conn.fetchrow(stmt, *params)
            if row is None:
                return await _exists(conn, session_id), None
        return True, _message(row)

    async def usage_totals(
        self, session_id: str | None, agent_ids: list[str] | None, user_ids: list[str] | None
    ) -> UsageRows | None:
        stmt, params = sql.usage_totals(self.dialect, session_id, agent_ids, user_ids)
        async with self._conn() as conn:
            rows = await conn.fetch(stmt, *params)
            if not rows and session_id is not None and not await _exists(conn, session_id):
                return None
        return [tuple(r) for r in rows]

    async def clear_messages(self, session_id: str, now: datetime) -> int | None:
        async with self._transaction() as conn:
            if not await _exists(conn, session_id, lock=True):
                return None
            status = await conn.execute("DELETE FROM messages WHERE session_id = $1", session_id)
            await conn.execute(q.FREE_KEYS, session_id)
            await conn.execute(pg_compaction.SQL.drop_all, session_id)
            await conn.execute(
                "UPDATE sessions SET message_count = 0, token_count = 0, updated_at = $2 "
                "WHERE session_id = $1",
                session_id,
                now,
            )
        return int(status.split()[-1])

    async def read_tail(self, session_id: str, budget: int) -> Tail | None:
        base = f"SELECT {MESSAGE_READ} FROM messages WHERE session_id = $1"
        async with self._reading() as conn:
            counts = await conn.fetchrow(pg_compaction.SQL.tail_head, session_id)
            if counts is None:
                return None
            head = await conn.fetch(f"{base} ORDER BY seq LIMIT $2", session_id, window.PINNED_SCAN)
            pinned = window.pinned_prefix(_message(r) for r in head)
            summary = None if counts[2] is None else pg_compaction.compaction(tuple(counts)[2:])
            tail = Tail(counts[0], counts[1], pinned, [], summary)
            room = budget - sum(window.cost(m) for m in pinned)
            floor = pinned[-1].seq if pinned else 0
            if summary is not None:
                room -= window.cost(summary.as_message())
                floor = max(floor, summary.through_seq)
            before = 2**31 - 1
            spent = 0
            while room >= 0 and spent <= room:
                chunk = await conn.fetch(
                    f"{base} AND seq > $2 AND seq < $3 ORDER BY seq DESC LIMIT $4",
                    session_id,
                    floor,
                    before,
                    window.CHUNK,
                )
                for r in chunk:
                    message = _message(r)
                    tail.newest.append(message)
                    spent += window.cost(message)
                if len(chunk) < window.CHUNK:
                    break
                before = chunk[-1][1]
        return tail

    def _search(
        self,
        query: str,
        limit: int,
        session_id: str | None,
        agent_ids: list[str] | None,
        user_ids: list[str] | None,
        metadata: dict[str, Any] | None,
        created_after: datetime | None,
        created_before: datetime | None,
    ) -> tuple[str, sql.Params]:
        p = sql.Params(self.dialect)
        p(pg_query(query))
        p(limit)
        filters = ""
        if session_id is not None:
            filters += f" AND m.session_id = {p(session_id)}"
        if agent_ids is not None:
            filters += (
                " AND (SELECT s.agent_id FROM sessions s WHERE s.session_id = m.session_id)"
                f" = ANY({p(agent_ids)}::text[])"
            )
        session_terms = p.session_filters(user_ids, metadata, "s.")
        if session_terms:
            filters += (
                " AND EXISTS (SELECT 1 FROM sessions s WHERE s.session_id = m.session_id AND "
                + " AND ".join(session_terms)
                + ")"
            )
        if created_after is not None:
            filters += f" AND m.created_at > {p.time(created_after)}"
        if created_before is not None:
            filters += f" AND m.created_at < {p.time(created_before)}"
        return q.SEARCH.format(filters=filters), p

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
        marks = wanted(query)
        stmt, p = self._search(
            query, limit, session_id, agent_ids, user_ids, metadata, created_after, created_before
        )
        rows = await self._read_rows(stmt, *p.values)
        return [_hit(r, marks) for r in rows]

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
        marks = wanted(query) if snippets else None
        stmt, p = self._search(
            query, limit, None, agent_ids, user_ids, metadata, created_after, created_before
        )
        # One statement, so one round trip as for the search alone: the hits fenced as
        # the search computes them, each with its neighbours read by the primary key.
        around = q.SEARCH_AROUND.format(search=stmt, k=p(context))
        rows = await self._read_rows(around, *p.values)
        hits: list[SearchHit] = []
        messages: dict[tuple[str, int], Message] = {}
        for r in rows:
            if not hits or (hits[-1].session_id, hits[-1].seq) != (r[0], r[1]):
                hits.append(_hit(r, marks))
            if r[8] is not None:
                messages.setdefault((r[8], r[9]), _message(tuple(r)[8:]))
        return hits, list(messages.values())

    async def _read_rows(self, stmt: str, *values: Any) -> list[Any]:
        """A one-statement read: the hot path's own connection handling on the primary, or
        the read route (a standby, or the primary after a write it has not replayed)."""
        if self._reads is None:
            return list(await self._run("fetch", stmt, *values))
        async with self._reads.reading() as conn:
            return list(await conn.fetch(stmt, *values))

    # ── lineage (lineage_sql.py) ───────────────────────────────────────────

    async def fork_session(self, spec: ForkSpec) -> Forked | None:
        try:
            async with self._transaction(deadline=max(self.timeout, 60.0)) as conn:
                # One snapshot for the whole fork: an append (its counters and its message
                # commit together) is wholly in it or not at all, and no writer waits on it.
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                last = await conn.fetchval(_LAST_SEQ, spec.source_id)
                if last is None:
                    return None
                at = last if spec.at_seq is None else spec.at_seq
                if at > last:
                    return Forked(last)
                await conn.execute(
                    _FORK_SESSION,
                    spec.source_id,
                    spec.new_id,
                    spec.title,
                    spec.metadata,
                    spec.now,
                    at,
                )
                await conn.execute(_COPY_MESSAGES, spec.source_id, spec.new_id, at)
                await conn.execute(lineage_sql.COPY_COMPACTIONS, spec.source_id, spec.new_id, at)
                await _copy_framework_rows(conn, spec.source_id, spec.new_id)
                await postgres_adk.fork_rows(
                    conn,
                    spec.source_id,
                    spec.new_id,
                    at,
                    spec.now.timestamp(),
                    rename=spec.metadata is None,
                )
                return Forked(last, _session(await conn.fetchrow(lineage_sql.GET, spec.new_id)))
        except Conflict:
            raise Conflict(f"session {spec.new_id!r} already exists") from None

    async def rewind_session(
        self, session_id: str, to_seq: int, branch_id: str, now: datetime
    ) -> Forked | None:
        try:
            async with self._transaction(deadline=max(self.timeout, 60.0)) as conn:
                # The row lock first, as every writer of the session takes it.
                last = await conn.fetchval(f"{_LAST_SEQ} FOR UPDATE", session_id)
                if last is None:
                    return None
                if to_seq > last:
                    return Forked(last)
                branch, dropped = None, 0
                if await conn.fetchval(lineage_sql.TAIL_EXISTS, session_id, to_seq):
                    await conn.execute(_BRANCH_SESSION, session_id, branch_id, now, to_seq)
                    await conn.execute(_COPY_MESSAGES, session_id, branch_id, to_seq)
                    # Every compaction: the branch holds every message.
                    await conn.execute(lineage_sql.COPY_COMPACTIONS, session_id, branch_id, last)
                    await _copy_framework_rows(conn, session_id, branch_id)
                    # ADK state: read from the events before the tail leaves.
                    await postgres_adk.rewind_rows(
                        conn, session_id, branch_id, to_seq, now.timestamp()
                    )
                    moved = await conn.execute(lineage_sql.MOVE_TAIL, session_id, branch_id, to_seq)
                    dropped = int(moved.split()[-1])
                    for stmt in lineage_sql.REWIND_DROPS:
                        await conn.execute(stmt, session_id, to_seq)
                    branch = _session(await conn.fetchrow(lineage_sql.GET, branch_id))
                row = await conn.fetchrow(_REWOUND, session_id, to_seq, now)
                return Forked(last, _session(row), branch, dropped)
        except Conflict:
            raise Conflict(f"session {branch_id!r} already exists") from None

    async def children(self, session_id: str) -> list[Session] | None:
        async with self._conn() as conn:
            rows = await conn.fetch(lineage_sql.CHILDREN, session_id)
            if not rows and not await _exists(conn, session_id):
                return None
        return [_session(r) for r in rows]

    # ── set-wide work ──────────────────────────────────────────────────────

    async def delete_ghosts(self, cutoff: datetime, batch: int) -> int:
        deleted = 0
        start = datetime.min.replace(tzinfo=UTC)
        while True:  # one statement per batch, its own short transaction
            count, stop = await self._run("fetchrow", self._ghosts, cutoff, batch, start)
            deleted += int(count)
            if stop == cutoff:
                return deleted
            start = stop

    async def list_ghosts(self, cutoff: datetime, limit: int | None) -> list[Session]:
        stmt, params = sql.ghosts(self.dialect, cutoff, limit)
        return [_session(r) for r in await self._run("fetch", stmt, *params)]

    async def delete_ghost_ids(self, cutoff: datetime, ids: Sequence[str]) -> int:
        stmt, params = sql.ghosts_by_id(self.dialect, cutoff, ids)
        async with self._transaction() as conn:
            gone = [r[0] for r in await conn.fetch(f"{stmt} RETURNING session_id", *params)]
            await self.delete_rows(conn, gone)
        return len(gone)

    async def prune(
        self, cutoff: datetime, *, dry_run: bool, batch: int
    ) -> tuple[int, int, list[str]]:
        if dry_run:
            rows = await self._run(
                "fetch",
                "SELECT session_id, message_count FROM sessions WHERE updated_at < $1 "
                "ORDER BY updated_at, session_id",
                cutoff,
            )
            return len(rows), sum(r[1] for r in rows), [r[0] for r in rows]
        ids: list[str] = []
        messages = 0
        while True:  # one short transaction per batch
            async with self._transaction() as conn:
                rows = await conn.fetch(q.PRUNE, cutoff, batch)
                await self.delete_rows(conn, [r[0] for r in rows])
            ids += [r[0] for r in rows]
            messages += sum(r[1] for r in rows)
            if not rows:
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
        async with self._conn() as conn:
            t = await conn.fetchrow(totals, *params)
            agents = {str(a): int(n) for a, n in await conn.fetch(by_agent, *group_params)}
            types = {str(a): int(n) for a, n in await conn.fetch(by_type, *group_params)}
        return stats_row(t, t[8], t[9], agents, types)

    async def import_session(
        self,
        session: Session,
        last_seq: int,
        items: Sequence[Message],
        replace: bool,
        compactions: Sequence[Compaction] = (),
    ) -> bool:
        s = session
        async with self._transaction(deadline=max(self.timeout, 60.0)) as conn:
            if not await _make_room(self, conn, s.session_id, replace):
                return False
            row = _session_row(s, len(items), sum(m.token_count for m in items), last_seq)
            await conn.execute(q.INSERT_SESSION, *row)
            if items:
                await conn.executemany(q.INSERT_MESSAGE, [_import_message(s, m) for m in items])
            await pg_compaction.insert_all(conn, compactions)
        return True

    async def import_session_stream(
        self,
        session: Session,
        chunks: Iterator[list[Message]],
        totals: Totals,
        replace: bool,
        compactions: Iterable[Compaction] = (),
    ) -> bool:
        s = session
        # No deadline: the transaction lasts as long as the session takes to read and write;
        # each statement (and a ROLLBACK after a failure) is still bounded by the timeout.
        async with self._transaction(deadline=None) as conn:
            if not await _make_room(self, conn, s.session_id, replace):
                return False
            await conn.execute(q.INSERT_SESSION, *_session_row(s, 0, 0, 0))
            for chunk in chunks:  # one chunk in memory at a time
                await conn.executemany(q.INSERT_MESSAGE, [_import_message(s, m) for m in chunk])
            await conn.execute(
                "UPDATE sessions SET message_count = $2, token_count = $3, last_seq = $4 "
                "WHERE session_id = $1",
                s.session_id,
                totals.count,
                totals.tokens,
                totals.last_seq,
            )
            await pg_compaction.insert_all(conn, compactions)  # read after the messages
        return True

    # ── API keys ────────────────────────────────────────────────────────────

    async def insert_key(self, key: KeyRow) -> None:
        await self._run(
            "execute",
            f"INSERT INTO api_keys ({KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, NULL, NULL, $6, $7)",
            key.key_id,
            key.name,
            key.admin,
            key.agent_ids or None,
            key.created_at,
            key.user_ids,  # NULL: every user
            key.secret_hash,
        )

    async def get_key(self, key_id: str) -> KeyRow | None:
        r = await self._run(
            "fetchrow", f"SELECT {KEY_COLUMNS} FROM api_keys WHERE key_id = $1", key_id
        )
        return None if r is None else _key(r)

    async def list_keys(self, include_revoked: bool) -> list[KeyRow]:
        where = "" if include_revoked else "WHERE revoked_at IS NULL"
        rows = await self._run(
            "fetch", f"SELECT {KEY_COLUMNS} FROM api_keys {where} ORDER BY created_at, key_id"
        )
        return [_key(r) for r in rows]

    async def any_active_key(self) -> bool:
        found = await self._run(
            "fetchval", "SELECT 1 FROM api_keys WHERE revoked_at IS NULL LIMIT 1"
        )
        return found is not None

    async def revoke_key(self, key_id: str, now: datetime) -> KeyRow | None:
        r = await self._run(
            "fetchrow",
            "UPDATE api_keys SET revoked_at = $2 WHERE key_id = $1 AND revoked_at IS NULL "
            f"RETURNING {KEY_COLUMNS}",
            key_id,
            now,
        )
        return None if r is None else _key(r)

    async def touch_key(self, key_id: str, now: datetime) -> None:
        await self._run(
            "execute", "UPDATE api_keys SET last_used_at = $2 WHERE key_id = $1", key_id, now
        )

    # ── retention policies (SQL: retention_sql.py) ─────────────────────────

    async def list_policies(self) -> list[Policy]:
        rows = await self._run("fetch", retention_sql.LIST_POLICIES)
        return [Policy(*r) for r in rows]

    async def put_policy(self, policy: Policy) -> None:
        stmt, params = retention_sql.put_policy(self.dialect, policy)
        await self._run("execute", stmt, *params)

    async def delete_policy(self, agent_id: str) -> Policy | None:
        stmt, params = retention_sql.delete_policy(self.dialect, agent_id)
        r = await self._run("fetchrow", stmt, *params)
        return None if r is None else Policy(*r)

    async def rule_sessions(self, scope: RuleScope) -> list[tuple[str, int]]:
        stmt, params = retention_sql.rule_sessions(self.dialect, scope)
        return [(r[0], r[1]) for r in await self._run("fetch", stmt, *params)]

    async def apply_rule(
        self, scope: RuleScope, now: datetime, batch: int
    ) -> list[tuple[str, int]]:
        stmt, params = retention_sql.apply_rule(self.dialect, scope, now, batch)
        deletes = scope.rule != "end_idle_after"
        taken: list[tuple[str, int]] = []
        while True:  # one short transaction per batch, as a prune's
            async with self._transaction() as conn:
                rows = await conn.fetch(stmt, *params)
                if deletes:
                    await self.delete_rows(conn, [r[0] for r in rows])
            taken += [(r[0], r[1]) for r in rows]
            # Rows writers held were skipped, not waited for: only an empty batch says done.
            if not rows:
                return taken

    # ── forgetting a user (forgetting.py, postgres_forget.py) ──────────────

    async def forget_user(self, plan: ForgetPlan) -> Forgotten:
        tables = (self.checkpoints.session_tables, self.adk.session_tables)
        if plan.record is None:
            async with self._transaction() as conn:
                return Forgotten(await pg_forget.preview(conn, plan, *tables))
        async with self._conn() as conn:
            found = await pg_forget.found(conn, plan)
        counts = ForgetCounts()
        for ids in batches(found):  # one short transaction each: other writers go between
            async with self._transaction() as conn:
                counts += await pg_forget.delete_batch(conn, plan, ids, *tables, self.delete_rows)
        async with self._transaction() as conn:
            counts = await pg_forget.finish(conn, plan, *tables, self.delete_rows, counts)
        return Forgotten(counts)


async def _exists(conn: Any, session_id: str, *, lock: bool = False) -> bool:
    suffix = " FOR UPDATE" if lock else ""
    found = await conn.fetchval(f"SELECT 1 FROM sessions WHERE session_id = $1{suffix}", session_id)
    return found is not None


async def _copy_framework_rows(conn: Any, source: str, target: str) -> None:
    """A fork's (or branch's) copy of the source's LangGraph checkpoints, if it has any."""
    if await conn.fetchval(lineage_sql.HELD, source, target):
        for stmt in lineage_sql.COPY_CHECKPOINTS:
            await conn.execute(stmt, source, target)


def _session_row(s: Session, count: int, tokens: int, last_seq: int) -> tuple[Any, ...]:
    """The values of INSERT_SESSION for ``s`` with these counters."""
    return (
        s.session_id,
        s.agent_id,
        s.title,
        s.session_type,
        s.status,
        s.metadata or None,
        s.created_at,
        s.updated_at,
        s.ended_at,
        s.last_message_at,
        count,
        tokens,
        s.user_id,
        s.parent_session_id,
        s.fork_seq,
        last_seq,
    )


def _import_message(s: Session, m: Message) -> tuple[Any, ...]:
    return (
        s.session_id,
        m.seq,
        m.role,
        m.content,
        m.agent_id,
        m.model,
        m.token_count,
        m.metadata or None,
        m.created_at,
        tsvector(m.content),
        *usage_values(m.usage),
    )


async def _make_room(backend: PostgresBackend, conn: Any, session_id: str, replace: bool) -> bool:
    """Whether an import may write the session: absent, or deleted here to be replaced."""
    if await _exists(conn, session_id, lock=True):
        if not replace:
            return False
        await conn.execute("DELETE FROM sessions WHERE session_id = $1", session_id)
        await backend.delete_rows(conn, [session_id])
    return True

