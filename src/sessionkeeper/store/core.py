"""The Store: validates every argument, asks its backend, shapes the answer.

Nothing here is specific to a database: each database has one backend
(``backends/sqlite.py``, ``backends/postgres.py``) that runs every operation on its own
connections and translates its driver's failures into ``sessionkeeper.errors``. So the
Store's job is the contract: bad input is refused before anything is written (one rule set
for both databases, ``validate.py``), "not found" is worded once, and results are the value
types of ``sessionkeeper.models``.

Semantics in brief (details next to each piece):
- One append is one short transaction that bumps the session row's counters and takes the
  next seq from ``last_seq`` under that row's lock, then inserts the message.
- Reads never count messages: message_count / token_count live on the session row.
- A Store may be used from any event loop and any thread (agent frameworks call
  ``asyncio.run`` per call); the backends keep their connections accordingly.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, TypeVar, cast

from sessionkeeper import tokens
from sessionkeeper.errors import Conflict, InvalidInput, NotFound, SchemaMismatch
from sessionkeeper.models import (
    DEFAULT_PAGE_SIZE,
    MAX_MESSAGES_PAGE,
    MAX_PAGE_SIZE,
    Compaction,
    DatabaseRole,
    ForgetReceipt,
    Message,
    NewMessage,
    Page,
    Policy,
    PolicyRun,
    PruneResult,
    Rewind,
    SearchHit,
    Session,
    Stats,
    Usage,
    UsageTotals,
    Window,
)
from sessionkeeper.store import (
    compaction,
    idempotency,
    migrate,
    retention,
    validate,
    verbatim,
    window,
)
from sessionkeeper.store import cursor as cursor_codec
from sessionkeeper.store import search as fts
from sessionkeeper.store.backends import open_backend
from sessionkeeper.store.backends.base import Backend, ForkSpec, ListQuery
from sessionkeeper.store.backends.forgetting import ForgetPlan, ForgetRecord, user_hash
from sessionkeeper.store.keys import ApiKeys
from sessionkeeper.store.revision import SCHEMA_REVISION
from sessionkeeper.store.terms import ANALYSER
from sessionkeeper.store.url import DatabaseConfig, masked, parse
from sessionkeeper.store.usage import totals as priced_totals

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from sessionkeeper.store.adk import AdkSessions
    from sessionkeeper.store.checkpoints import Checkpoints


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()
GHOST_BATCH = 10_000  # ghosts per purge transaction (each a few ms of work)
MAX_GHOST_LISTING = 1_000_000
IDEMPOTENCY_BATCH = 10_000  # expired idempotency keys deleted per transaction

logger = logging.getLogger(__name__)
T = TypeVar("T")
_parts_lock = threading.Lock()
# Messages with more text than this (characters, all together) are checked and counted on a
# worker thread: tokenising 100,000 characters takes ~8 ms, which would hold the event loop
# (every other request of a server) that long; below it, the hand-over costs more than the
# work (20,000 characters: ~1.7 ms).
OFF_LOOP_CHARS = 20_000


MAX_CONTEXT = 10  # neighbours each side of a hit in search_with_neighbours


def utcnow() -> datetime:
    return datetime.now(UTC)


def _not_found(session_id: str) -> NotFound:
    return NotFound(f"session {session_id!r} not found")


class Store:
    """Async session store. Open with ``await Store.open(url)``; close with ``await close()``."""

    def __init__(self, backend: Backend, config: DatabaseConfig, *, encoding: str) -> None:
        self._backend = backend
        self.config = config
        self.tokenizer = tokens.get_tokenizer(encoding)
        self.keys = ApiKeys(backend)

    @property
    def dialect(self) -> str:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._backend.dialect

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return masked(self.config.url)

    def reads_served(self) -> dict[str, int] | None:
        """With a standby (PostgreSQL with ``read_url``): the reads it served and those that
        went to the primary (it had not replayed this store's writes in ``read_wait``, or
        could not be reached) since the store opened. None without a standby."""
        return self._backend.reads_served()

    def _part(self, name: str, make: Callable[[], T]) -> T:
        """The store's one instance of a framework storage API (``checkpoints``, ``adk``),
        made on first use (its module imported only then); threads asking at once get the
        same one."""
        found = self.__dict__.get(name)
        if found is None:
            with _parts_lock:
                found = self.__dict__.get(name)
                if found is None:
                    found = self.__dict__[name] = make()
        return cast(T, found)

    @property
    def checkpoints(self) -> Checkpoints:
        """Checkpoints of graph frameworks (a LangGraph thread is a session whose checkpoints
        go with it): see ``store/checkpoints.py``."""
        from sessionkeeper.store.checkpoints import Checkpoints

        return self._part(
            "_checkpoints", lambda: Checkpoints(self._backend.checkpoints, self.tokenizer.count)
        )

    @property
    def adk(self) -> AdkSessions:
        """Google ADK sessions (each an ordinary session, its state beside it): see
        ``store/adk.py``."""
        from sessionkeeper.store.adk import AdkSessions

        return self._part("_adk", lambda: AdkSessions(self._backend.adk, self.tokenizer.count))

    @classmethod
    async def open(
        cls,
        url: str | None = None,
        *,
        encoding: str = "cl100k_base",
        upgrade: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - the store's setting, not a deadline
        **connect_kwargs: Any,
    ) -> Store:
        """Open (and, if empty, create) the database at ``url``; default: the user data dir.

        ``timeout`` bounds every database call (default ``$SESSIONKEEPER_DB_TIMEOUT`` or
        10 s). PostgreSQL keyword arguments go to the driver's connect (e.g.
        ``server_settings``, ``ssl``, ``statement_cache_size``; ``pool_size`` sizes the pool).
        An existing database at an older schema is refused unless ``upgrade=True``.
        """
        if url is None:
            from sessionkeeper.paths import default_database_url

            url = default_database_url()
        return await cls._open(parse(url, timeout=timeout, **connect_kwargs), encoding, upgrade)

    @classmethod
    async def from_engine(
        cls,
        engine: AsyncEngine,
        *,
        encoding: str = "cl100k_base",
        upgrade: bool = False,
        timeout: float | None = None,  # noqa: ASYNC109 - the store's setting, not a deadline
    ) -> Store:
        """A store on the database of a SQLAlchemy engine the caller owns (Aria compat).

        The store makes its own connections with the engine's settings: its URL, and on
        PostgreSQL the server settings its connections carry (e.g. ``search_path``).
        """
        from sessionkeeper.store.url import from_engine

        return await cls._open(await from_engine(engine, timeout=timeout), encoding, upgrade)

    @classmethod
    async def upgrade(
        cls,
        url: str,
        target: str = "head",
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> tuple[str | None, str]:
        """Migrate the database at ``url`` to ``target`` (``sessionkeeper db upgrade``);
        (the revision before, None when empty; the revision after)."""
        backend = await open_backend(parse(url, timeout=timeout))
        try:
            return await backend.migrate(target)
        finally:
            await backend.close()

    @classmethod
    async def _open(cls, config: DatabaseConfig, encoding: str, upgrade: bool) -> Store:
        backend = await open_backend(config)
        try:
            await _ensure_schema(backend, upgrade)
            indexed = await backend.reindex_search(ANALYSER)
            if indexed is not None:
                logger.info("search index built by analyser %r: %d messages", ANALYSER, indexed)
        except BaseException:
            await backend.close()
            raise
        return cls(backend, config, encoding=encoding)

    async def close(self) -> None:
        await self._backend.close()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ── the database ────────────────────────────────────────────────────────

    async def ping(self) -> None:
        """Raise ``Unavailable`` unless the database answers a trivial query in time."""
        await self._backend.ping()

    async def database_role(self) -> DatabaseRole:
        """Which node this store writes to (``primary``, or ``standby`` when its URL reaches
        a read-only node) and the replication lag (see ``DatabaseRole``)."""
        return await self._backend.role()

    async def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None: no schema)."""
        return await self._backend.schema_revision()

    def job_lock(self, name: str) -> AbstractAsyncContextManager[bool]:
        """``async with store.job_lock("ghosts") as acquired:`` — one holder at a time.

        PostgreSQL: an advisory lock, so one replica of many runs the job. SQLite: a lock in
        this process. ``acquired`` is False (immediately) when another holder has it.
        """
        return self._backend.job_lock(validate.label(name, "name"))

    async def vacuum(self, *, full: bool = False) -> None:
        """Reclaim space and refresh planner statistics.

        SQLite: VACUUM (which rewrites the whole file: ``full`` changes nothing), then the
        FTS5 index is rebuilt (VACUUM may renumber the rowids it is keyed by) and the WAL
        truncated. PostgreSQL: VACUUM (ANALYZE) of every table holding sessions' rows, which
        also merges the GIN pending list that slows searches after bursts of appends; its
        freed space keeps the deleted rows' bytes until new rows reuse it. ``full``: VACUUM
        FULL, which rewrites the tables and their indexes without them (each table locked
        while it is rewritten): what removes a forgotten user's bytes from the files.
        """
        await self._backend.vacuum(full)

    # ── sessions ────────────────────────────────────────────────────────────

    async def create_session(
        self,
        *,
        agent_id: str = "main",
        title: str | None = None,
        session_type: str = "chat",
        metadata: dict[str, Any] | None = None,
        session_id: str | None = None,
        user_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """Create a session. ``idempotency_key`` (scoped by ``agent_id``): a retry with the
        same key and the same fields returns the session the first call created and creates
        nothing; the same key with other fields raises ``IdempotencyKeyReused``
        (``store/idempotency.py``)."""
        now = utcnow()
        chosen = None if session_id is None else validate.new_session_id(session_id)
        session = Session(
            session_id=uuid.uuid4().hex[:16] if chosen is None else chosen,
            agent_id=validate.label(agent_id, "agent_id"),
            title=validate.title(title),
            session_type=validate.label(session_type, "session_type"),
            status="active",
            metadata=validate.metadata(metadata) or {},
            created_at=now,
            updated_at=now,
            ended_at=None,
            last_message_at=None,
            message_count=0,
            token_count=0,
            user_id=validate.optional_label(user_id, "user_id"),
        )
        if idempotency_key is None:
            await self._backend.insert_session(session)
            return session
        claim = idempotency.Claim(
            idempotency.key(idempotency_key),
            idempotency.create_fingerprint(
                agent_id=session.agent_id,
                title=session.title,
                session_type=session.session_type,
                metadata=session.metadata,
                session_id=chosen,
                user_id=session.user_id,
            ),
        )
        recorded = await self._backend.insert_session(session, claim)
        if recorded is None:
            return session
        idempotency.check(recorded, claim, "session create")
        first = await self._backend.get_session(recorded.session_id)
        if first is None:
            raise NotFound(
                f"the session created with idempotency key {claim.key!r} "
                f"({recorded.session_id!r}) no longer exists"
            )
        return first

    async def get_session(self, session_id: str) -> Session:
        validate.session_id(session_id)
        session = await self._backend.get_session(session_id)
        if session is None:
            raise _not_found(session_id)
        return session

    async def session_exists(self, session_id: str) -> bool:
        """Whether a session with this id exists (a bad id is still InvalidInput)."""
        validate.session_id(session_id)
        return await self._backend.get_session(session_id) is not None

    async def list_sessions(
        self,
        *,
        agent_id: str | None = None,
        agent_ids: Sequence[str] | None = None,
        user_id: str | None = None,
        user_ids: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
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
        ``Page.next_cursor``), which stays fast however deep the page. ``user_id`` /
        ``user_ids`` scope by user as ``agent_id`` / ``agent_ids`` by agent; ``metadata``
        keeps the sessions whose metadata holds every pair given (JSON scalars, compared as
        JSON). An empty cursor is no cursor (the first page), as a client that starts its
        loop with ``cursor=""`` or sends an empty form field means it."""
        cursor = cursor or None
        sort, order = validate.sort(sort, order)
        validate.limit(limit, MAX_PAGE_SIZE)
        validate.offset(offset)
        if cursor is not None and offset:
            raise InvalidInput("give either offset or cursor, not both", field="cursor")
        agents = validate.agent_scope(agent_id, agent_ids)
        if agents is not None:
            for agent in agents:
                validate.label(agent, "agent_ids")
        users = validate.user_scope(user_id, user_ids)
        query = ListQuery(
            agent_ids=agents,
            user_ids=users,
            metadata=validate.metadata_filter(metadata),
            session_type=validate.optional_label(session_type, "session_type"),
            status=None if status is None else validate.status(status),
            search=None if search is None else fts.check_query(search),
            created_after=_aware_or_none(created_after, "created_after"),
            created_before=_aware_or_none(created_before, "created_before"),
            updated_after=_aware_or_none(updated_after, "updated_after"),
            updated_before=_aware_or_none(updated_before, "updated_before"),
            sort=sort,
            order=order,
            limit=limit,
            offset=offset,
            after=None if cursor is None else cursor_codec.decode(cursor, sort, order),
            with_total=with_total,
        )
        if agents == [] or users == []:  # a scope that allows no agent (or user) at all
            return Page([], 0 if with_total else None, limit, offset, False, None)
        listed = await self._backend.list_sessions(query)
        has_more = len(listed.sessions) > limit
        items = listed.sessions[:limit]
        next_cursor = (
            cursor_codec.encode(sort, order, listed.sort_keys[limit - 1], items[-1].session_id)
            if has_more and items
            else None
        )
        return Page(items, listed.total, limit, offset, has_more, next_cursor)

    async def update_session(
        self,
        session_id: str,
        *,
        title: str | None | _Unset = UNSET,
        metadata: dict[str, Any] | None | _Unset = UNSET,
        session_type: str | _Unset = UNSET,
        status: str | _Unset = UNSET,
        user_id: str | None | _Unset = UNSET,
        expected_metadata: dict[str, Any] | None | _Unset = UNSET,
    ) -> Session:
        """Change the given fields (``None`` clears title, metadata or user). Metadata is
        replaced. ``expected_metadata``: only if the session's metadata is still this
        (compared as JSON; None and {} alike), else ``Conflict`` and nothing is written: a
        read-modify-write of metadata that loses no change made meanwhile."""
        validate.session_id(session_id)
        now = utcnow()
        values: dict[str, Any] = {"updated_at": now}
        if not isinstance(title, _Unset):
            values["title"] = validate.title(title)
        if not isinstance(metadata, _Unset):
            values["metadata"] = validate.metadata(metadata)
        if not isinstance(session_type, _Unset):
            values["session_type"] = validate.label(session_type, "session_type")
        if not isinstance(user_id, _Unset):
            values["user_id"] = validate.optional_label(user_id, "user_id")
        if not isinstance(status, _Unset):
            values["status"] = validate.status(status)
            values["ended_at"] = now if status == "ended" else None
        if isinstance(expected_metadata, _Unset):
            return await self._update(session_id, values)
        expected = validate.metadata(expected_metadata) or {}  # None and {} alike
        return await self._update(session_id, values, expected_metadata=expected)

    async def end_session(self, session_id: str) -> Session:
        """Mark ended (kept, not deleted). Ending twice keeps the first ended_at."""
        validate.session_id(session_id)
        now = utcnow()
        return await self._update(session_id, {"status": "ended", "updated_at": now}, end_at=now)

    async def change_metadata(
        self,
        session_id: str,
        change: Callable[[dict[str, Any]], dict[str, Any] | None],
        *,
        attempts: int = 10,
    ) -> Session:
        """Change a session's metadata with ``change`` (given a copy of it, it returns the new
        metadata, or None to leave it as it is) without losing a change another writer makes
        meanwhile: each try writes only if the metadata is still what ``change`` was given
        (``update_session(expected_metadata=…)``), else reads it again; ``Conflict`` after
        ``attempts`` tries. Returns the session as written (or as read, when unchanged)."""
        validate.session_id(session_id)
        validate.bounded_int(attempts, "attempts", 1, 100)
        for _ in range(attempts):
            session = await self.get_session(session_id)
            new = change(copy.deepcopy(session.metadata))
            if new is None:
                return session
            try:
                return await self.update_session(
                    session_id, metadata=new, expected_metadata=session.metadata
                )
            except Conflict as exc:
                if exc.details.get("field") != "expected_metadata":
                    raise
        raise Conflict(
            f"the metadata of session {session_id!r} changed at each of {attempts} tries; "
            "nothing was written"
        )

    async def _update(
        self,
        session_id: str,
        values: dict[str, Any],
        *,
        end_at: datetime | None = None,
        expected_metadata: dict[str, Any] | None = None,
    ) -> Session:
        session = await self._backend.update_session(
            session_id, values, end_at=end_at, expected_metadata=expected_metadata
        )
        if session is None:
            raise _not_found(session_id)
        return session

    async def delete_session(self, session_id: str) -> None:
        """Delete a session and all its messages."""
        validate.session_id(session_id)
        if not await self._backend.delete_session(session_id):
            raise _not_found(session_id)

    async def find_by_aria_session_id(self, aria_session_id: str) -> list[Session]:
        """Sessions whose metadata.aria_session_id is this filesystem id (indexed lookup)."""
        if not isinstance(aria_session_id, str) or not aria_session_id:
            raise InvalidInput("aria_session_id must be a non-empty string")
        validate.text(aria_session_id, "aria_session_id")
        return await self._backend.sessions_by_metadata("aria_session_id", aria_session_id)

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

    # ── messages ────────────────────────────────────────────────────────────

    async def _checked(
        self, items: Sequence[NewMessage | Mapping[str, Any]]
    ) -> list[dict[str, Any]]:
        """Each message checked whole, its tokens counted (``validate.message_row``): on a
        worker thread when their text is long (OFF_LOOP_CHARS), so that tokenising it does
        not hold the event loop and every other caller on it."""
        count = self.tokenizer.count
        if _text_length(items) <= OFF_LOOP_CHARS:
            return [validate.message_row(item, count) for item in items]
        return await asyncio.to_thread(lambda: [validate.message_row(i, count) for i in items])

    async def _prepared(
        self, items: Sequence[NewMessage | Mapping[str, Any]], now: datetime
    ) -> list[dict[str, Any]]:
        """``_checked``, each row's time defaulting to ``now``."""
        rows = await self._checked(items)
        for row in rows:
            row["created_at"] = row["created_at"] or now
        return rows

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
        usage: Usage | dict[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Message:
        """Append one message; its seq is the session's next. Raises TooLarge over 100,000
        characters (nothing is stored) and NotFound for an unknown session. ``usage``: what
        producing it cost (see ``Usage``; its model defaults to ``model``).

        ``idempotency_key`` (scoped by the session): a retry with the same key and the same
        message returns the message the first call stored (same seq) and stores nothing;
        the same key with another message raises ``IdempotencyKeyReused``."""
        validate.session_id(session_id)
        now = utcnow()
        message = NewMessage(
            role, content, agent_id, model, metadata, token_count, created_at, usage
        )
        if idempotency_key is not None:
            return (await self._append_keyed(session_id, [message], idempotency_key, now))[0]
        (row,) = await self._prepared([message], now)
        seqs = await self._backend.append(session_id, [row], now)
        if seqs is None:
            raise _not_found(session_id)
        assert isinstance(seqs, list)
        return _appended(session_id, seqs[0], row)

    async def add_messages(
        self,
        session_id: str,
        items: Iterable[NewMessage | Mapping[str, Any]],
        *,
        idempotency_key: str | None = None,
    ) -> list[Message]:
        """Append several messages in one transaction: all stored, or none.
        ``idempotency_key``: as ``add_message``'s, for the batch as a whole."""
        validate.session_id(session_id)
        now = utcnow()
        items = list(items)
        if idempotency_key is not None and items:
            return await self._append_keyed(session_id, items, idempotency_key, now)
        rows = await self._prepared(items, now)
        if not rows:
            await self.get_session(session_id)
            return []
        seqs = await self._backend.append(session_id, rows, now)
        if seqs is None:
            raise _not_found(session_id)
        assert isinstance(seqs, list)
        return [_appended(session_id, seq, row) for seq, row in zip(seqs, rows, strict=True)]

    async def _append_keyed(
        self,
        session_id: str,
        items: Sequence[NewMessage | Mapping[str, Any]],
        key: str,
        now: datetime,
    ) -> list[Message]:
        """A keyed append: written with its key, or the messages the key's first write
        stored (``store/idempotency.py``)."""
        checked = await self._checked(items)
        claim = idempotency.Claim(idempotency.key(key), idempotency.append_fingerprint(checked))
        rows = [{**row, "created_at": row["created_at"] or now} for row in checked]
        result = await self._backend.append(session_id, rows, now, claim)
        if result is None:
            raise _not_found(session_id)
        if isinstance(result, list):
            return [_appended(session_id, seq, row) for seq, row in zip(result, rows, strict=True)]
        recorded = idempotency.check(result, claim, "request")
        first = recorded.first_seq or 1
        stored = await self._backend.get_messages(
            session_id,
            limit=recorded.count,
            offset=0,
            since=None,
            after_seq=first - 1,
            newest_first=False,
        )
        if stored is None:
            raise NotFound(
                f"session {session_id!r} (where idempotency key {key!r} stored its "
                "messages) no longer exists"
            )
        by_seq = {m.seq: m for m in stored}
        # A message deleted since: answered as it was sent, with the seq it was given.
        return [
            by_seq.get(first + i) or _appended(session_id, first + i, row)
            for i, row in enumerate(rows)
        ]

    async def delete_expired_idempotency_keys(self, older_than_hours: float = 24.0) -> int:
        """Delete idempotency keys made more than ``older_than_hours`` ago (the maintenance
        loop does it on its schedule); the number deleted. A key is honoured until then."""
        hours = validate.duration(older_than_hours, "older_than_hours", "hours")
        cutoff = utcnow() - timedelta(hours=hours)
        return await self._backend.expire_idempotency_keys(cutoff, IDEMPOTENCY_BATCH)

    async def get_messages(
        self,
        session_id: str,
        *,
        limit: int = 100,
        offset: int = 0,
        since: datetime | None = None,
        after_seq: int | None = None,
        last: int | None = None,
        include_compacted: bool = True,
    ) -> list[Message]:
        """Messages in seq order. ``last=N``: the newest N (still oldest first).
        ``after_seq``: resume after a seq you have; ``since``: created after a time.

        Every message, compacted or not, by default: a compaction keeps the originals and
        changes only the context window. ``include_compacted=False``: only the messages
        after the cut of the compaction in force (the summary itself is
        ``get_compaction``)."""
        validate.session_id(session_id)
        if not isinstance(include_compacted, bool):
            raise InvalidInput(
                f"include_compacted must be true or false, got {include_compacted!r}",
                field="include_compacted",
            )
        validate.limit(limit, MAX_MESSAGES_PAGE)
        validate.offset(offset)
        if since is not None:
            validate.aware(since, "since")
        if after_seq is not None:
            validate.seq(after_seq, "after_seq")
        if last is not None:
            validate.limit(last, MAX_MESSAGES_PAGE, "last")
        if not include_compacted:
            current = await self.get_compaction(session_id)
            if current is not None:
                after_seq = max(after_seq or 0, current.through_seq)
        found = await self._backend.get_messages(
            session_id,
            limit=last if last is not None else limit,
            offset=offset,
            since=since,
            after_seq=after_seq,
            newest_first=last is not None,
        )
        if found is None:
            raise _not_found(session_id)
        if last is not None:
            found.reverse()
        return found

    async def _message_metadata(
        self, session_id: str, *, last: int
    ) -> list[tuple[int, dict[str, Any]]]:
        """(seq, metadata) of the newest ``last`` messages, oldest first: what the framework
        integrations read (each message's object is whole in its metadata), without the
        content or Message objects. Internal: not part of the Store's API."""
        validate.session_id(session_id)
        validate.limit(last, MAX_MESSAGES_PAGE, "last")
        found = await self._backend.message_metadata(session_id, last)
        if found is None:
            raise _not_found(session_id)
        found.reverse()
        return found

    async def delete_message(self, session_id: str, seq: int) -> Message:
        """Delete one message; the session's counters follow. Seqs are never reused."""
        validate.session_id(session_id)
        validate.seq(seq, "seq")
        exists, message = await self._backend.delete_message(session_id, seq, utcnow())
        if not exists:
            raise _not_found(session_id)
        if message is None:
            raise NotFound(f"message {seq} not found in session {session_id!r}")
        return message

    async def pop_message(
        self,
        session_id: str,
        *,
        if_last: int | None = None,
        check: Callable[[Message], object] | None = None,
    ) -> Message | None:
        """Delete and return the newest message (None if the session has none).

        Atomic: the session row is locked first, so two callers popping at once get
        different messages. ``if_last=seq``: only if the newest message is that one, else
        None and nothing is deleted — how a caller takes back a message it appended
        without removing one appended after it. ``check(message)`` runs inside the pop's
        transaction before it commits (on a thread: it may block, within the store's
        timeout); whatever it raises rolls the pop back and is raised here.
        """
        validate.session_id(session_id)
        if if_last is not None:
            validate.seq(if_last, "if_last")
        if check is not None and not callable(check):
            raise InvalidInput("check must be a callable", field="check")
        exists, message = await self._backend.delete_message(
            session_id, if_last, utcnow(), newest_only=True, check=check
        )
        if not exists:
            raise _not_found(session_id)
        return message

    # ── usage and cost (store/usage.py) ──────────────────────────────────────

    async def set_usage(
        self,
        session_id: str,
        seq: int,
        usage: Usage | dict[str, Any] | None,
        *,
        details: dict[str, Any] | None = None,
    ) -> Message:
        """Record (replace; None: remove) what producing message ``seq`` cost, for usage
        reported after the message was stored (an agent run's total, say). The usage's model
        defaults to the message's. ``details``: the usage as the framework reported it (a JSON
        object, e.g. token details ``Usage`` has no field for), kept with the message as
        ``metadata["usage_details"]``; a call without it removes one kept earlier."""
        validate.session_id(session_id)
        validate.seq(seq, "seq")
        checked = validate.usage(usage)
        if details is not None:
            if usage is None:
                raise InvalidInput("usage details need a usage", field="details")
            if not isinstance(details, dict):
                raise InvalidInput("details must be a JSON object", field="details")
            details = validate.metadata(details)
        exists, message = await self._backend.set_usage(session_id, seq, checked, details)
        if not exists:
            raise _not_found(session_id)
        if message is None:
            raise NotFound(f"message {seq} not found in session {session_id!r}")
        return message

    async def get_usage(self, session_id: str) -> UsageTotals:
        """The usage recorded on a session's messages, by model, and what it cost (one
        indexed query; cost from ``genai-prices``, "unknown" for models it does not know)."""
        validate.session_id(session_id)
        rows = await self._backend.usage_totals(session_id, None, None)
        if rows is None:
            raise _not_found(session_id)
        return priced_totals(rows, utcnow(), session_id=session_id)

    async def usage_totals(
        self,
        *,
        agent_id: str | None = None,
        agent_ids: Sequence[str] | None = None,
        user_id: str | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> UsageTotals:
        """Usage and cost over the sessions of an agent (``agent_id``) or a scope of agents
        (``agent_ids``; None: every agent), and of ``user_id`` / ``user_ids`` (None: every
        user): the filters of ``get_stats``."""
        scope = validate.agent_scope(agent_id, agent_ids)
        if scope is not None:
            scope = [validate.label(a, "agent_ids") for a in scope]
        users = validate.user_scope(user_id, user_ids)
        rows: list[tuple[Any, ...]] = []
        if scope != []:
            rows = await self._backend.usage_totals(None, scope, users) or []
        return priced_totals(rows, utcnow(), agent_ids=scope, user_ids=users)

    async def _replace_tail(
        self,
        session_id: str,
        *,
        expected: Sequence[int] | None,
        items: Iterable[NewMessage | Mapping[str, Any]],
        prune: Callable[[Message], bool] | None = None,
    ) -> bool:
        """If the session's newest messages are still those of seqs ``expected`` (oldest
        first; None: every message, unchecked), replace them by ``items``, in one
        transaction; with ``prune``, the oldest messages it accepts before them go too. False
        when the newest messages changed (nothing written). What the OpenAI Agents SDK's
        compaction wrappers do to a session. Internal: not part of the Store's API."""
        validate.session_id(session_id)
        if expected is not None:
            expected = [validate.seq(s, "expected") for s in expected]
        now = utcnow()
        rows = await self._prepared(list(items), now)
        done = await self._backend.replace_tail(session_id, expected, rows, now, prune)
        if done is None:
            raise _not_found(session_id)
        return done

    async def clear_messages(self, session_id: str) -> int:
        """Delete every message of a session, keeping the session; returns how many.

        Counters go to zero; seqs are still never reused (the next append continues).
        """
        validate.session_id(session_id)
        count = await self._backend.clear_messages(session_id, utcnow())
        if count is None:
            raise _not_found(session_id)
        return count

    async def search_messages(
        self,
        query: str,
        *,
        limit: int = 20,
        session_id: str | None = None,
        agent_id: str | None = None,
        agent_ids: Sequence[str] | None = None,
        user_id: str | None = None,
        user_ids: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[SearchHit]:
        """Ranked full-text hits with highlighted snippets (``<mark>…</mark>``), scoped
        like ``list_sessions`` (agents, users, session metadata); ``created_after`` /
        ``created_before`` keep the messages written in that time (both exclusive)."""
        query = fts.check_query(query)
        validate.limit(limit, MAX_PAGE_SIZE)
        if session_id is not None:
            validate.session_id(session_id)
        agents = validate.agent_scope(agent_id, agent_ids)
        users = validate.user_scope(user_id, user_ids)
        wanted = validate.metadata_filter(metadata)
        after = _aware_or_none(created_after, "created_after")
        before = _aware_or_none(created_before, "created_before")
        if agents == [] or users == [] or not fts.query_terms(query):
            return []
        return await self._backend.search(
            query,
            limit=limit,
            session_id=session_id,
            agent_ids=agents,
            user_ids=users,
            metadata=wanted,
            created_after=after,
            created_before=before,
        )

    async def search_with_neighbours(
        self,
        query: str,
        *,
        context: int = 1,
        limit: int = 20,
        agent_id: str | None = None,
        agent_ids: Sequence[str] | None = None,
        user_id: str | None = None,
        user_ids: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        snippets: bool = True,
    ) -> tuple[list[SearchHit], list[Message]]:
        """``search_messages``'s hits (the same, in the same order), and the messages up to
        ``context`` positions before and after each hit (the hits included, each message
        once, in no particular order): passages around the hits for about the cost of the
        search (one statement on PostgreSQL). ``context`` is 0 to 10. ``snippets=False``:
        the hits' snippets are empty, for a caller that reads the messages (``recall``:
        cutting them was a third of its time on SQLite)."""
        query = fts.check_query(query)
        validate.limit(limit, MAX_PAGE_SIZE)
        validate.bounded_int(context, "context", 0, MAX_CONTEXT)
        agents = validate.agent_scope(agent_id, agent_ids)
        users = validate.user_scope(user_id, user_ids)
        wanted = validate.metadata_filter(metadata)
        after = _aware_or_none(created_after, "created_after")
        before = _aware_or_none(created_before, "created_before")
        if agents == [] or users == [] or not fts.query_terms(query):
            return [], []
        return await self._backend.search_around(
            query,
            context=context,
            limit=limit,
            agent_ids=agents,
            user_ids=users,
            metadata=wanted,
            created_after=after,
            created_before=before,
            snippets=snippets,
        )

    async def context_window(self, session_id: str, max_tokens: int, *, reserve: int = 0) -> Window:
        """The newest messages that fit ``max_tokens - reserve`` (see ``window.py``)."""
        validate.session_id(session_id)
        validate.bounded_int(max_tokens, "max_tokens", 1)
        validate.bounded_int(reserve, "reserve", 0)
        budget = max_tokens - reserve
        if budget < 1:
            raise InvalidInput(
                f"reserve ({reserve}) leaves no room in max_tokens ({max_tokens})",
                field="reserve",
            )
        tail = await self._backend.read_tail(session_id, budget)
        if tail is None:
            raise _not_found(session_id)
        pinned = list(tail.head)
        if tail.summary is not None:  # it stands in for the messages up to its cut
            pinned.append(tail.summary.as_message())
        pinned_cost = sum(window.cost(m) for m in pinned)
        if pinned_cost > budget:
            what = "and the compaction summary " if tail.summary is not None else ""
            raise InvalidInput(
                f"the system prompt {what}alone need{'' if what else 's'} {pinned_cost} "
                f"tokens, more than the budget of {budget}",
                field="max_tokens",
            )
        chosen_tail, used, _ = window.fill(budget - pinned_cost, tail.newest)
        originals = tail.head + chosen_tail
        return Window(
            session_id=session_id,
            messages=pinned + chosen_tail,
            max_tokens=max_tokens,
            total_tokens=pinned_cost + used,
            dropped_messages=tail.message_count - len(originals),
            dropped_tokens=tail.token_count - sum(m.token_count for m in originals),
            pinned=len(tail.head),
            estimated=self.tokenizer.estimated,
            encoding=self.tokenizer.encoding_name,
            compacted_through=None if tail.summary is None else tail.summary.through_seq,
        )

    # ── lineage: forks and rewinds (backends/lineage_sql.py) ───────────────

    async def fork_session(
        self,
        session_id: str,
        *,
        at_seq: int | None = None,
        new_session_id: str | None = None,
        title: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Session:
        """A new session whose history is this one's messages 1..``at_seq`` (all of them by
        default), each copied exactly (seq, role, content, agent, model, token count,
        metadata, time). It takes the source's agent, user and type, and its title and
        metadata unless given; ``parent_session_id`` and ``fork_seq`` say where it came
        from, and the source lists it among its branches. The source is not changed.

        One transaction on a consistent view of the source: while other writers append to
        it, the fork holds exactly a prefix of it (appends it did not see continue in the
        source only). Its next message takes seq ``fork_seq + 1``. A fork is an ordinary
        session of its own (its messages are copies): deleting either leaves the other.
        A LangGraph thread forks with its checkpoints (as ``checkpoints.copy_thread``), in
        the same transaction. A Google ADK session forks as an ADK session of its own: same
        app and user, its ADK id the new session id, holding the session state the kept
        events give by ADK's rewind rule (their deltas replayed; keys only later events
        wrote removed; ``app:``/``user:`` state shared and unchanged), in the same
        transaction. When ``metadata`` is not given, the copy's ``metadata["adk"]["id"]``
        names its own ADK id.
        """
        validate.session_id(session_id)
        spec = ForkSpec(
            source_id=session_id,
            new_id=(
                uuid.uuid4().hex[:16]
                if new_session_id is None
                else validate.new_session_id(new_session_id)
            ),
            at_seq=None if at_seq is None else validate.seq(at_seq, "at_seq"),
            title=validate.title(title),
            metadata=validate.metadata(metadata),
            now=utcnow(),
        )
        forked = await self._backend.fork_session(spec)
        if forked is None:
            raise _not_found(session_id)
        if forked.session is None:
            raise InvalidInput(
                f"at_seq {at_seq} is past the last message of session {session_id!r} "
                f"(seq {forked.last_seq})",
                field="at_seq",
            )
        return forked.session

    async def rewind_session(self, session_id: str, to_seq: int) -> Rewind:
        """The session continues from ``to_seq``: its messages after it leave it (the next
        append takes seq ``to_seq + 1``), and nothing is deleted: they go to a new branch,
        a child of the session (``parent_session_id``, ``fork_seq = to_seq``) holding the
        whole conversation as it was before the rewind (the first ``to_seq`` messages
        copied, the rest the originals). To undo, switch to the branch. When nothing comes
        after ``to_seq`` there is no branch. One transaction under the session row's lock.
        A LangGraph thread's branch gets a copy of its checkpoints (the session keeps its
        own). A Google ADK session's state is recomputed from the events it keeps, as ADK's
        own rewind (``Runner.rewind_async``) does, and its branch is an ADK session too (same
        app and user, its session id as ADK id) with the state as it was before the rewind.
        """
        validate.session_id(session_id)
        validate.seq(to_seq, "to_seq")
        done = await self._backend.rewind_session(
            session_id, to_seq, uuid.uuid4().hex[:16], utcnow()
        )
        if done is None:
            raise _not_found(session_id)
        if done.session is None:
            raise InvalidInput(
                f"to_seq {to_seq} is past the last message of session {session_id!r} "
                f"(seq {done.last_seq})",
                field="to_seq",
            )
        return Rewind(done.session, done.branch, to_seq, done.dropped)

    async def list_branches(self, session_id: str) -> list[Session]:
        """The sessions forked from this one (forks and rewind branches), oldest first."""
        validate.session_id(session_id)
        found = await self._backend.children(session_id)
        if found is None:
            raise _not_found(session_id)
        return found

    # ── compaction (store/compaction.py) ───────────────────────────────────

    async def compact_session(
        self,
        session_id: str,
        *,
        keep_last_tokens: int,
        summarize: compaction.Summarize,
        model: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> Compaction | None:
        """Summarise the session's older messages into one summary that ``context_window``
        shows in their place; the newest messages worth ``keep_last_tokens`` stay as they
        are. None when there is nothing older to summarise.

        ``summarize`` is an async callable: given the messages the summary stands for (the
        previous summary first, when there is one), it returns the summary's text. It runs
        outside any transaction; the compaction is then written in one transaction, only if
        no other compaction and no delete came between (else ``Conflict``, nothing written).
        Messages appended meanwhile come after the cut. The messages themselves are kept
        (export, search, ``get_messages``). ``model``: recorded as the summary's model.
        """
        validate.session_id(session_id)
        keep = validate.bounded_int(keep_last_tokens, "keep_last_tokens", 0)
        summarize = compaction.check_summarize(summarize)
        return await compaction.compact(
            self._backend.compactions,
            session_id,
            keep_last_tokens=keep,
            summarize=summarize,
            count_tokens=self.tokenizer.count,
            now=utcnow(),
            model=validate.model(model),
            metadata=validate.metadata(metadata),
        )

    async def get_compaction(self, session_id: str) -> Compaction | None:
        """The compaction in force for the session (None: never compacted)."""
        validate.session_id(session_id)
        exists, found = await self._backend.compactions.latest(session_id)
        if not exists:
            raise _not_found(session_id)
        return found

    async def get_compactions(self, session_id: str) -> list[Compaction]:
        """Every compaction of the session, oldest first (the last is the one in force;
        the earlier ones are what it superseded)."""
        validate.session_id(session_id)
        found = await self._backend.compactions.every(session_id)
        if found is None:
            raise _not_found(session_id)
        return found

    # ── maintenance and stats ──────────────────────────────────────────────

    async def delete_ghost_sessions(
        self, older_than_minutes: float = 15, *, session_ids: Sequence[str] | None = None
    ) -> int:
        """Delete sessions with no messages created more than N minutes ago; returns how many.
        With ``session_ids``, only those of them that are still ghosts (what a listing from
        ``ghost_sessions`` showed, less any that got a message since).

        In batches, each its own short transaction, re-checking the condition in the DELETE
        itself: a session that receives a message meanwhile is not removed.
        """
        minutes = validate.duration(older_than_minutes, "older_than_minutes", "minutes")
        cutoff = utcnow() - timedelta(minutes=minutes)
        if session_ids is None:
            return await self._backend.delete_ghosts(cutoff, GHOST_BATCH)
        if isinstance(session_ids, str):
            raise InvalidInput("session_ids must be a list of ids, not one id", field="session_ids")
        ids = sorted({validate.session_id(i) for i in session_ids})
        deleted = 0
        for start in range(0, len(ids), GHOST_BATCH):
            chunk = ids[start : start + GHOST_BATCH]
            deleted += await self._backend.delete_ghost_ids(cutoff, chunk)
        return deleted

    async def ghost_sessions(
        self, older_than_minutes: float = 15, *, limit: int | None = None
    ) -> list[Session]:
        """The sessions ``delete_ghost_sessions`` would delete now (no messages, no framework
        state, created more than N minutes ago), oldest first; at most ``limit``."""
        minutes = validate.duration(older_than_minutes, "older_than_minutes", "minutes")
        if limit is not None:
            validate.limit(limit, MAX_GHOST_LISTING)
        cutoff = utcnow() - timedelta(minutes=minutes)
        return await self._backend.list_ghosts(cutoff, limit)

    async def prune_old_sessions(
        self, days: float = 30, *, dry_run: bool = False, batch_size: int = 500
    ) -> PruneResult:
        """Delete sessions idle (no update) for more than ``days``, in bounded batches.

        ``session_ids`` lists what was (or, with ``dry_run``, would be) deleted.
        """
        days = validate.duration(days, "days", "days", allow_zero=False)
        validate.limit(batch_size, 10_000, "batch_size")
        cutoff = utcnow() - timedelta(days=days)
        count, messages, ids = await self._backend.prune(cutoff, dry_run=dry_run, batch=batch_size)
        return PruneResult(count, messages, dry_run, days, cutoff, ids)

    async def get_stats(
        self,
        *,
        agent_ids: Sequence[str] | None = None,
        ghost_minutes: float = 15,
        stale_days: float = 30,
        user_id: str | None = None,
        user_ids: Sequence[str] | None = None,
    ) -> Stats:
        """Counts over the sessions of ``agent_ids`` (None: every agent) and of ``user_id``
        / ``user_ids`` (None: every user; scoped as in ``list_sessions``)."""
        ghost_minutes = validate.duration(ghost_minutes, "ghost_minutes", "minutes")
        stale_days = validate.duration(stale_days, "stale_days", "days")
        now = utcnow()
        scope = None if agent_ids is None else [validate.label(a, "agent_ids") for a in agent_ids]
        users = validate.user_scope(user_id, user_ids)
        row = await self._backend.stats(
            now - timedelta(minutes=ghost_minutes),
            now - timedelta(days=stale_days),
            scope,
            users,
        )
        return Stats.of(row, ghost_minutes, stale_days)

    async def forget_user(
        self, user_id: str, *, agent_id: str | None = None, dry_run: bool = False
    ) -> ForgetReceipt:
        """Delete everything of a user: their sessions (of ``agent_id`` only, if given) with
        every row (messages, checkpoints, ADK state), their ADK user state, and the API keys
        scoped to them alone (keys of several users lose this one). One ``forgotten_users``
        row records it: the SHA-256 of the user id, the counts and the time.

        In short transactions (other users' writers go between); an append to one of the
        user's sessions during the forget commits before it (and goes with the session) or
        fails ``NotFound``. On a SQLite file no byte of the user's text is left in the file,
        its WAL or the search index when it returns; on PostgreSQL no row or index entry,
        and VACUUM FULL removes the dead rows' bytes from the files (``vacuum(full=True)``).
        ``dry_run``: only count.
        """
        from sessionkeeper.store.adk import agent_of_app

        user = validate.any_user_id(user_id)
        agent = validate.optional_label(agent_id, "agent_id")
        now = utcnow()
        record = None
        if not dry_run:
            record = ForgetRecord(uuid.uuid4().hex, user_hash(user), now)
        plan = ForgetPlan(
            user_id=user,
            agent_id=agent,
            adk_app=lambda app: agent is None or agent_of_app(app) == agent,
            record=record,
        )
        done = await self._backend.forget_user(plan)
        return ForgetReceipt(
            **done.counts.counts(),
            forget_id=None if record is None else record.forget_id,
            user_hash=user_hash(user),
            agent_id=agent,
            forgotten_at=now,
            dry_run=dry_run,
            wal_truncated=done.wal_truncated,
        )

    async def import_session(
        self,
        session: Session,
        items: Sequence[Message],
        *,
        compactions: Sequence[Compaction] = (),
        replace: bool = False,
    ) -> bool:
        """Write a session, its messages and its compactions exactly as given (seq,
        timestamps; see ``verbatim.py``). Idempotent by id: an existing session is left alone
        (returns False) unless ``replace``. Counters are recomputed from the messages."""
        last_seq = verbatim.check(session, items)
        checked = verbatim.check_compactions(session, compactions, last_seq)
        return await self._backend.import_session(session, last_seq, items, replace, checked)

    async def import_session_stream(
        self,
        session: Session,
        items: Iterable[Message],
        *,
        compactions: Iterable[Compaction] = (),
        replace: bool = False,
    ) -> bool:
        """``import_session`` for messages read as they come (e.g. from a file): one
        transaction, written in chunks of 500, each checked as it is reached, so memory holds
        a chunk, not the session; ``compactions`` are read after the messages. A bad message
        or compaction anywhere (or a duplicate seq) raises InvalidInput and nothing of the
        session is written. ``items`` and ``compactions`` are read on the database's writer
        (a thread on SQLite): they must not need this event loop."""
        verbatim.check_session(session)
        totals = verbatim.Totals()
        chunks = verbatim.checked_chunks(session, items, totals)
        checked = verbatim.checked_compactions(session, compactions, totals)
        return await self._backend.import_session_stream(
            session, chunks, totals, replace, checked
        )

    # ── retention policies (store/retention.py) ────────────────────────────

    async def set_policy(
        self,
        agent_id: str,
        *,
        end_idle_after: timedelta | str | None = None,
        delete_ended_after: timedelta | str | None = None,
        delete_after: timedelta | str | None = None,
    ) -> Policy:
        """Set the retention policy of ``agent_id`` (``"*"``: the default, for agents with
        none of their own), replacing the one it had: a rule left None is off. Durations are
        ``timedelta`` or text (``90m``, ``2h``, ``30d``); ``end_idle_after`` in whole
        minutes, the delete rules in whole days."""
        p = retention.policy(
            agent_id,
            utcnow(),
            end_idle_after=end_idle_after,
            delete_ended_after=delete_ended_after,
            delete_after=delete_after,
        )
        await self._backend.put_policy(p)
        return p

    async def get_policies(self) -> list[Policy]:
        """Every retention policy, by agent id (the default, ``"*"``, first)."""
        return await self._backend.list_policies()

    async def delete_policy(self, agent_id: str) -> Policy:
        """Remove the policy of ``agent_id`` (its agent falls under the default again);
        returns it. NotFound if it has none."""
        agent = retention.policy_agent(agent_id)
        removed = await self._backend.delete_policy(agent)
        if removed is None:
            raise NotFound(f"no retention policy for agent {agent!r}", agent_id=agent)
        return removed

    async def run_policies(
        self, *, dry_run: bool = False, now: datetime | None = None
    ) -> PolicyRun:
        """Apply every retention policy now (in bounded batches; never a pinned session, nor
        one written during the run), or with ``dry_run`` list what each rule would take.
        ``now``: measure the rules from another time (a dry run may look ahead)."""
        if not isinstance(dry_run, bool):
            raise InvalidInput(f"dry_run must be true or false, got {dry_run!r}", field="dry_run")
        start = retention.run_now(now, dry_run)
        policies = await self._backend.list_policies()
        return await retention.run(self._backend, policies, start, dry_run=dry_run)


async def _ensure_schema(backend: Backend, upgrade: bool) -> None:
    """Migrate an empty database; refuse, with the fix in the message, one at another revision."""
    found = await backend.schema_revision()
    if found == SCHEMA_REVISION:
        return
    if found is not None and found > SCHEMA_REVISION:
        raise SchemaMismatch(migrate.newer_message(found))
    if found is not None and not upgrade:
        raise SchemaMismatch(migrate.older_message(found))
    await backend.migrate("head")


def _text_length(items: Sequence[NewMessage | Mapping[str, Any]]) -> int:
    """The characters of the messages' content (what tokenising them costs), as given."""
    total = 0
    for item in items:
        if isinstance(item, NewMessage):
            content: Any = item.content
        elif isinstance(item, Mapping):
            content = item.get("content")
        else:
            continue  # refused by the check, with its reason
        if isinstance(content, str):
            total += len(content)
    return total


def _appended(session_id: str, seq: int, row: dict[str, Any]) -> Message:
    # The row's metadata is validate.Checked; callers get a plain dict of their own.
    return Message(
        session_id=session_id, seq=seq, **{**row, "metadata": dict(row["metadata"] or {})}
    )


def _aware_or_none(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else validate.aware(value, field)
