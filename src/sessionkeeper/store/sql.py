"""The Store: sessions and messages over SQLAlchemy async (aiosqlite or asyncpg).

Design in brief (the why lives next to each piece):
- One append is one short transaction that bumps the session row's counters and takes the
  next seq from ``last_seq`` under that row's lock, then inserts the message. On PostgreSQL
  both happen in a single statement (a data-modifying CTE), one round trip; on SQLite the
  transaction begins IMMEDIATE, so writers queue instead of deadlocking.
- Reads never count messages: message_count / token_count live on the session row.
- Every operation validates its arguments before opening a transaction: bad input changes
  nothing. Typed errors come from ``sessionkeeper.errors``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    delete,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from sessionkeeper import tokens
from sessionkeeper.errors import Conflict, InvalidInput, NotFound
from sessionkeeper.models import (
    DEFAULT_PAGE_SIZE,
    MAX_MESSAGES_PAGE,
    MAX_PAGE_SIZE,
    Message,
    NewMessage,
    Page,
    PruneResult,
    SearchHit,
    Session,
    Stats,
    Window,
)
from sessionkeeper.store import cursor as cursor_codec
from sessionkeeper.store import housekeeping, importing, lanes, paging, validate, window
from sessionkeeper.store import search as fts
from sessionkeeper.store.engine import (
    SQLITE_BUSY_TIMEOUT_S,
    create_engine,
    ensure_schema,
    install_sqlite_hooks,
)
from sessionkeeper.store.rows import MESSAGE_COLUMNS, message_from_row, session_from_row
from sessionkeeper.store.schema import messages, sessions


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


# The exact expression of index ix_sessions_aria_session_id (migration 0003), so it is used.
ARIA_ID_SQL = {
    "postgresql": "(sessions.metadata ->> 'aria_session_id') = :aria_id",
    "sqlite": "json_extract(sessions.metadata, '$.aria_session_id') = :aria_id",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class Store:
    """Async session store. Open with ``await Store.open(url)`` or wrap an existing engine."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        encoding: str = "cl100k_base",
        owns_engine: bool = False,
    ) -> None:
        self.engine = engine
        self.dialect = engine.dialect.name
        self.tokenizer = tokens.get_tokenizer(encoding)
        self._owns_engine = owns_engine
        # Hot paths off SQLAlchemy (see lanes.py); opened by open()/from_engine().
        self._pg: lanes.PgLane | None = None
        self._writer: lanes.SqliteWriter | None = None

    async def _open_lanes(self) -> None:
        url = self.engine.url
        if self.dialect == "postgresql":
            dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
            self._pg = await lanes.PgLane.open(dsn)
        elif url.database not in (None, "", ":memory:"):
            self._writer = lanes.SqliteWriter(str(url.database), SQLITE_BUSY_TIMEOUT_S)

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        encoding: str = "cl100k_base",
        upgrade: bool = False,
        **engine_kwargs: Any,
    ) -> Store:
        """Open (and, if empty, create) the database at ``url``; default: the user data dir.

        An existing database at an older schema is refused unless ``upgrade=True``.
        """
        if url is None:
            from sessionkeeper.paths import default_database_url

            url = default_database_url()
        engine = create_engine(url, **engine_kwargs)
        store = cls(engine, encoding=encoding, owns_engine=True)
        try:
            await ensure_schema(engine, upgrade_older=upgrade)
            await store._open_lanes()
        except BaseException:
            await store.close()
            raise
        return store

    @classmethod
    async def from_engine(
        cls, engine: AsyncEngine, *, encoding: str = "cl100k_base", upgrade: bool = False
    ) -> Store:
        """Use an engine the caller owns (and disposes). On SQLite, connections opened from
        now on get the store's pragmas and BEGIN IMMEDIATE writes (see engine.py)."""
        install_sqlite_hooks(engine)
        await ensure_schema(engine, upgrade_older=upgrade)
        store = cls(engine, encoding=encoding)
        await store._open_lanes()
        return store

    async def close(self) -> None:
        pg, writer, self._pg, self._writer = self._pg, self._writer, None, None
        try:
            if pg is not None:
                await pg.close()
            if writer is not None:
                writer.close()
        finally:
            if self._owns_engine:
                await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction (BEGIN IMMEDIATE on SQLite; see engine.py)."""
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(sk_write=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.connect() as conn:
            if self.dialect == "postgresql":
                # Reads are single statements or tolerate READ COMMITTED between statements;
                # autocommit saves the BEGIN and ROLLBACK round trips.
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    # ── sessions ────────────────────────────────────────────────────────────

    async def create_session(
        self,
        *,
        agent_id: str = "main",
        title: str | None = None,
        session_type: str = "chat",
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        values: dict[str, Any] = {
            "session_id": validate.session_id(session_id) if session_id else uuid.uuid4().hex[:16],
            "agent_id": validate.label(agent_id, "agent_id"),
            "title": validate.title(title),
            "session_type": validate.label(session_type, "session_type"),
            "status": "active",
            "metadata": validate.metadata(metadata),
        }
        now = utcnow()
        values.update(
            created_at=now,
            updated_at=now,
            ended_at=None,
            last_message_at=None,
            message_count=0,
            token_count=0,
            last_seq=0,
        )
        try:
            async with self._write() as conn:
                await conn.execute(insert(sessions).values(values))
        except IntegrityError as exc:
            raise Conflict(f"session {values['session_id']!r} already exists") from exc
        return session_from_row(values)

    async def get_session(self, session_id: str) -> Session:
        validate.session_id(session_id)
        if self._pg is not None:
            session = await self._pg.get_session(session_id)
            if session is None:
                raise NotFound(f"session {session_id!r} not found")
            return session
        async with self._read() as conn:
            row = (
                await conn.execute(select(sessions).where(sessions.c.session_id == session_id))
            ).first()
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        return session_from_row(row)

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        agent_ids: Sequence[str] | None = None,
        session_type: str | None = None,
        status: str | None = None,
        search: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        updated_after: datetime | None = None,
        updated_before: datetime | None = None,
        sort: str = "updated_at",
        order: str = "desc",
        limit: int = DEFAULT_PAGE_SIZE,
        offset: int = 0,
        cursor: str | None = None,
        with_total: bool = True,
    ) -> Page[Session]:
        """A page of sessions. Offset paging, or keyset paging with ``cursor`` (from
        ``Page.next_cursor``), which stays fast however deep the page."""
        sort, order = validate.sort(sort, order)
        validate.limit(limit, MAX_PAGE_SIZE)
        validate.non_negative(offset, "offset")
        if cursor is not None and offset:
            raise InvalidInput("give either offset or cursor, not both")
        where = paging.filters(
            self.dialect,
            agent_id=agent_id,
            agent_ids=agent_ids,
            session_type=session_type,
            status=status,
            search=search,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
        )
        stmt = paging.page_statement(where, sort, order, limit, offset, cursor)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
            total = None
            if with_total:
                count = select(func.count()).select_from(sessions).where(*where)
                total = int((await conn.execute(count)).scalar_one())
        has_more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = (
            cursor_codec.encode(sort, order, rows[-1].sk_sort_key, rows[-1].session_id)
            if has_more and rows
            else None
        )
        return Page(
            items=[session_from_row(r) for r in rows],
            total=total,
            limit=limit,
            offset=offset,
            has_more=has_more,
            next_cursor=next_cursor,
        )

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None | _Unset = UNSET,
        metadata: dict[str, Any] | None | _Unset = UNSET,
        session_type: str | _Unset = UNSET,
        status: str | _Unset = UNSET,
    ) -> Session:
        """Change the given fields (``None`` clears title or metadata). Metadata is replaced."""
        validate.session_id(session_id)
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if not isinstance(title, _Unset):
            values["title"] = validate.title(title)
        if not isinstance(metadata, _Unset):
            values["metadata"] = validate.metadata(metadata)
        if not isinstance(session_type, _Unset):
            values["session_type"] = validate.label(session_type, "session_type")
        if not isinstance(status, _Unset):
            values["status"] = validate.status(status)
            values["ended_at"] = now if status == "ended" else None
        return await self._update(session_id, values)

    async def end_session(self, session_id: str) -> Session:
        """Mark ended (kept, not deleted). Ending twice keeps the first ended_at."""
        validate.session_id(session_id)
        now = utcnow()
        return await self._update(
            session_id,
            {
                "status": "ended",
                "ended_at": func.coalesce(sessions.c.ended_at, now),
                "updated_at": now,
            },
        )

    async def _update(self, session_id: str, values: dict[str, Any]) -> Session:
        stmt = (
            update(sessions)
            .where(sessions.c.session_id == session_id)
            .values(values)
            .returning(*sessions.c)
        )
        async with self._write() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(f"session {session_id!r} not found")
        return session_from_row(row)

    async def delete_session(self, session_id: str) -> None:
        """Delete a session and all its messages."""
        validate.session_id(session_id)
        stmt = (
            delete(sessions)
            .where(sessions.c.session_id == session_id)
            .returning(sessions.c.session_id)
        )
        async with self._write() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(f"session {session_id!r} not found")

    # ── messages ────────────────────────────────────────────────────────────

    def _prepare(self, message: NewMessage | Mapping[str, Any]) -> dict[str, Any]:
        return validate.message_row(message, self.tokenizer.count)

    async def add_message(
        self,
        session_id: str,
        role: str,
        content: str,
        *,
        agent_id: str | None = None,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
        token_count: int | None = None,
        created_at: datetime | None = None,
    ) -> Message:
        """Append one message; its seq is the session's next. Raises TooLarge over 100,000
        characters (nothing is stored) and NotFound for an unknown session."""
        validate.session_id(session_id)
        row = self._prepare(
            NewMessage(role, content, agent_id, model, metadata, token_count, created_at)
        )
        now = utcnow()
        row["created_at"] = row["created_at"] or now
        if self._pg is not None:
            found = await self._pg.append(session_id, row, now)
            if found is None:
                raise NotFound(f"session {session_id!r} not found")
            seq = found
        else:
            (seq,) = await self._append_rows(session_id, [row], now)
        return Message(session_id=session_id, seq=seq, **{**row, "metadata": row["metadata"] or {}})

    async def add_messages(
        self, session_id: str, items: Iterable[NewMessage | Mapping[str, Any]]
    ) -> list[Message]:
        """Append several messages in one transaction: all stored, or none."""
        validate.session_id(session_id)
        rows = [self._prepare(item) for item in items]
        if not rows:
            await self.get_session(session_id)
            return []
        now = utcnow()
        for row in rows:
            row["created_at"] = row["created_at"] or now
        seqs = await self._append_rows(session_id, rows, now)
        return [
            Message(session_id=session_id, seq=seq, **{**row, "metadata": row["metadata"] or {}})
            for seq, row in zip(seqs, rows, strict=True)
        ]

    async def _append_rows(
        self, session_id: str, rows: list[dict[str, Any]], now: datetime
    ) -> list[int]:
        if self._pg is not None:
            seqs = await self._pg.append_many(session_id, rows, now)
            if seqs is None:
                raise NotFound(f"session {session_id!r} not found")
            return seqs
        if self._writer is not None:
            last_seq = await self._writer.append(session_id, rows, now)
            if last_seq is None:
                raise NotFound(f"session {session_id!r} not found")
            return list(range(last_seq - len(rows) + 1, last_seq + 1))
        # SQLAlchemy path: in-memory SQLite (a second connection could not see it).
        bump = (
            update(sessions)
            .where(sessions.c.session_id == session_id)
            .values(
                last_seq=sessions.c.last_seq + len(rows),
                message_count=sessions.c.message_count + len(rows),
                token_count=sessions.c.token_count + sum(r["token_count"] for r in rows),
                updated_at=now,
                last_message_at=now,
            )
            .returning(sessions.c.last_seq)
        )
        async with self._write() as conn:
            last = (await conn.execute(bump)).scalar_one_or_none()
            if last is None:
                raise NotFound(f"session {session_id!r} not found")
            first = last - len(rows) + 1
            seqs = list(range(first, last + 1))
            await conn.execute(
                insert(messages),
                [
                    {**row, "session_id": session_id, "seq": seq}
                    for seq, row in zip(seqs, rows, strict=True)
                ],
            )
        return seqs

    async def get_messages(
        self,
        session_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        since: datetime | None = None,
        after_seq: int | None = None,
        last: int | None = None,
    ) -> list[Message]:
        """Messages in seq order. ``last=N``: the newest N (still oldest first).
        ``after_seq``: resume after a seq you have; ``since``: created after a time."""
        validate.session_id(session_id)
        validate.limit(limit, MAX_MESSAGES_PAGE)
        validate.non_negative(offset, "offset")
        where: list[ColumnElement[bool]] = [messages.c.session_id == session_id]
        if since is not None:
            validate.aware(since)
            where.append(messages.c.created_at > since)
        if after_seq is not None:
            where.append(messages.c.seq > validate.non_negative(after_seq, "after_seq"))
        if last is not None:
            validate.limit(last, MAX_MESSAGES_PAGE, "last")
        if self._pg is not None:
            found = await self._pg.messages(
                session_id,
                limit=last if last is not None else limit,
                offset=offset,
                since=since,
                after_seq=after_seq,
                newest_first=last is not None,
            )
            if not found and not await self._pg.session_exists(session_id):
                raise NotFound(f"session {session_id!r} not found")
        else:
            found = await self._select_messages(session_id, where, limit, offset, last)
        if last is not None:
            found.reverse()
        return found

    async def _select_messages(
        self,
        session_id: str,
        where: list[ColumnElement[bool]],
        limit: int,
        offset: int,
        last: int | None,
    ) -> list[Message]:
        stmt = select(*MESSAGE_COLUMNS).where(*where)
        if last is not None:
            stmt = stmt.order_by(messages.c.seq.desc()).limit(last).offset(offset)
        else:
            stmt = stmt.order_by(messages.c.seq).limit(limit).offset(offset)
        async with self._read() as conn:
            rows = (await conn.execute(stmt)).all()
            # Only an empty answer needs the extra lookup that tells "no such session".
            if not rows:
                await self._require_session(conn, session_id)
        return [message_from_row(r) for r in rows]

    async def _require_session(self, conn: AsyncConnection, session_id: str) -> None:
        exists = await conn.execute(
            select(sessions.c.session_id).where(sessions.c.session_id == session_id)
        )
        if exists.first() is None:
            raise NotFound(f"session {session_id!r} not found")

    async def delete_message(self, session_id: str, seq: int) -> Message:
        """Delete one message; the session's counters follow. Seqs are never reused."""
        validate.session_id(session_id)
        validate.non_negative(seq, "seq")
        gone = (
            delete(messages)
            .where(messages.c.session_id == session_id, messages.c.seq == seq)
            .returning(*MESSAGE_COLUMNS)
        )
        async with self._write() as conn:
            row = (await conn.execute(gone)).first()
            if row is None:
                await self._require_session(conn, session_id)
                raise NotFound(f"message {seq} not found in session {session_id!r}")
            await conn.execute(
                update(sessions)
                .where(sessions.c.session_id == session_id)
                .values(
                    message_count=sessions.c.message_count - 1,
                    token_count=sessions.c.token_count - row.token_count,
                    updated_at=utcnow(),
                )
            )
        return message_from_row(row)

    async def search_messages(
        self,
        query: str,
        *,
        limit: int = 20,
        session_id: str | None = None,
        agent_id: str | None = None,
        agent_ids: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """Ranked full-text hits with highlighted snippets (``<mark>…</mark>``)."""
        query = fts.check_query(query)
        validate.limit(limit, MAX_PAGE_SIZE)
        if session_id is not None:
            validate.session_id(session_id)
        agents = validate.agent_scope(agent_id, agent_ids)
        if agents is not None and not agents:
            return []
        if self._pg is not None:
            return await self._pg.search(
                query, limit=limit, session_id=session_id, agent_ids=agents
            )
        async with self._read() as conn:
            return await fts.search_sqlite(
                conn, query, limit=limit, session_id=session_id, agent_ids=agents
            )

    async def context_window(self, session_id: str, max_tokens: int, *, reserve: int = 0) -> Window:
        """The newest messages that fit ``max_tokens - reserve`` (see ``window.py``)."""
        validate.session_id(session_id)
        if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
            raise InvalidInput(f"max_tokens must be a positive integer, got {max_tokens!r}")
        validate.non_negative(reserve, "reserve")
        budget = max_tokens - reserve
        if budget < 1:
            raise InvalidInput(f"reserve ({reserve}) leaves no room in max_tokens ({max_tokens})")
        async with self._read() as conn:
            counts, pinned, newest = await window.read_tail(conn, session_id, budget)
        pinned_cost = sum(window.cost(m) for m in pinned)
        tail, used, _ = window.fill(budget - pinned_cost, newest)
        chosen = pinned + tail
        return Window(
            session_id=session_id,
            messages=chosen,
            max_tokens=max_tokens,
            total_tokens=pinned_cost + used,
            dropped_messages=counts[0] - len(chosen),
            dropped_tokens=counts[1] - sum(m.token_count for m in chosen),
            pinned=len(pinned),
            estimated=self.tokenizer.estimated,
            encoding=self.tokenizer.encoding_name,
        )

    # ── maintenance and stats (queries in housekeeping.py) ─────────────────

    async def delete_ghost_sessions(self, older_than_minutes: float = 15) -> int:
        """Delete sessions with no messages created more than N minutes ago; returns how many."""
        minutes = validate.positive_number(older_than_minutes, "older_than_minutes")
        return await housekeeping.delete_ghosts(self.engine, minutes, utcnow())

    async def prune_old_sessions(
        self, days: float = 30, *, dry_run: bool = False, batch_size: int = 500
    ) -> PruneResult:
        """Delete sessions idle (no update) for more than ``days``, in bounded batches."""
        days = validate.positive_number(days, "days", allow_zero=False)
        validate.limit(batch_size, 10_000, "batch_size")
        return await housekeeping.prune(self.engine, days, utcnow(), dry_run, batch_size)

    async def get_stats(
        self,
        *,
        agent_ids: Sequence[str] | None = None,
        ghost_minutes: float = 15,
        stale_days: float = 30,
    ) -> Stats:
        validate.positive_number(ghost_minutes, "ghost_minutes")
        validate.positive_number(stale_days, "stale_days")
        return await housekeeping.stats(self.engine, utcnow(), ghost_minutes, stale_days, agent_ids)

    async def import_session(
        self, session: Session, items: Sequence[Message], *, replace: bool = False
    ) -> bool:
        """Write a session and its messages verbatim (see ``importing.py``); idempotent by id."""
        return await importing.import_session(self.engine, session, items, replace=replace)

    async def vacuum(self) -> None:
        """Reclaim space and refresh planner statistics.

        SQLite: VACUUM may renumber the rowids the FTS5 index is keyed by, so the index is
        rebuilt right after. PostgreSQL: VACUUM (ANALYZE) of both tables, which also merges
        the GIN pending list that slows searches after bursts of appends.
        """
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            if self.dialect == "postgresql":
                await conn.execute(text("VACUUM (ANALYZE) sessions, messages"))
            else:
                await conn.execute(text("VACUUM"))
                await conn.execute(text("INSERT INTO messages_fts(messages_fts) VALUES('rebuild')"))

    async def find_by_aria_session_id(self, aria_session_id: str) -> list[Session]:
        """Sessions whose metadata.aria_session_id is this filesystem id (indexed lookup)."""
        if not isinstance(aria_session_id, str) or not aria_session_id:
            raise InvalidInput("aria_session_id must be a non-empty string")
        stmt = (
            select(sessions)
            .where(text(ARIA_ID_SQL[self.dialect]).bindparams(aria_id=aria_session_id))
            .order_by(sessions.c.created_at, sessions.c.session_id)
        )
        async with self._read() as conn:
            return [session_from_row(r) for r in await conn.execute(stmt)]

    async def iter_sessions(self, *, batch: int = 100, **filters: Any) -> AsyncIterator[Session]:
        """Every session matching ``filters`` (as list_sessions), page by page via cursors."""
        cursor: str | None = None
        while True:
            page = await self.list_sessions(limit=batch, cursor=cursor, with_total=False, **filters)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor
