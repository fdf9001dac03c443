"""How an integration object gets its Store and its store session: one base for all four.

Every integration class derives from :class:`Bound`: its Store is one the caller gave (and
closes) or one opened from a URL (and closed by the object), held by a :class:`StoreSource`;
``get_store()``, ``aclose()`` and ``async with`` mean the same on every class.

The ``from_url`` convention (one rule for the four integrations)::

    Class.from_url([session_id,] url, *, <the constructor's own options>, store_options=None)

``url`` is the store's (``sqlite:///…``, ``postgresql://…``); the keyword options are exactly
the constructor's, with the same names and defaults; ``store_options`` go to
``sessionkeeper.open_store`` (pool size, timeouts, …). Objects bound to one session (the
OpenAI Agents ``Session``, the LangChain history) open the store on first use and close it
with ``close()``; services bound to a whole store (LangGraph savers, the ADK service) are
context managers that open it on entry and close it on exit (:func:`opened_store`).

:class:`BoundSession` is the base of the per-session objects: it checks the session id and
labels up front (the store's own rules, ``store/validate.py``) and holds the
:class:`SessionBinding` that reads and writes the session. The session is created by the
first write, not by the constructor (frameworks build their session objects freely, e.g. once
per request); a creation race between processes is settled by the unique session id: whoever
loses gets ``Conflict`` and simply appends (:func:`create_session`).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Self

from sessionkeeper.bridge import run_blocking
from sessionkeeper.errors import Conflict, IdempotencyKeyReused, NotFound
from sessionkeeper.integrations._common import auto_title, read_whole
from sessionkeeper.models import MAX_MESSAGES_PAGE, Message
from sessionkeeper.store import validate

if TYPE_CHECKING:
    from sessionkeeper import Store

# Creating the session and appending can lose to a concurrent delete (a ghost purge of a
# session emptied by clear); a few rounds settle it.
_APPEND_ATTEMPTS = 3


class StoreSource:
    """Where a binding's Store comes from: one the caller gave (and closes), or one opened
    from a URL on first use (and closed by :meth:`close`). Several bindings may share one."""

    def __init__(
        self,
        store: Store | None = None,
        url: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        if (store is None) == (url is None):
            raise TypeError("give either store= (a sessionkeeper Store) or a url")
        self._store = store
        self._url = url
        self._options = dict(options or {})
        self.owned = store is None
        self._lock = threading.Lock()

    async def get(self) -> Store:
        store = self._store
        if store is not None:
            return store
        from sessionkeeper import open_store

        opened = await open_store(self._url, **self._options)
        with self._lock:
            if self._store is None:
                self._store = opened
                return opened
            store = self._store
        await opened.close()  # another task opened it first
        return store

    async def close(self) -> None:
        """Close the store if it was opened here; a given store stays open."""
        with self._lock:
            store = self._store if self.owned else None
            if self.owned:
                self._store = None
        if store is not None:
            await store.close()


@contextlib.asynccontextmanager
async def opened_store(
    url: str | None, store_options: Mapping[str, Any] | None
) -> AsyncIterator[Store]:
    """The store at ``url`` (default: the user's SQLite database), closed on exit."""
    from sessionkeeper import open_store

    store = await open_store(url, **dict(store_options or {}))
    try:
        yield store
    finally:
        await store.close()


@contextlib.contextmanager
def opened_store_blocking(
    url: str | None, store_options: Mapping[str, Any] | None
) -> Iterator[Store]:
    """:func:`opened_store` for blocking code (the store lives on the bridge's shared loop)."""
    from sessionkeeper import open_store

    store = run_blocking(open_store(url, **dict(store_options or {})))
    try:
        yield store
    finally:
        run_blocking(store.close())


class Bound:
    """Base of every integration class: its Store, given or opened from a URL."""

    _source: StoreSource

    async def get_store(self) -> Store:
        """The store this object lives in (opened now if it came from a URL)."""
        return await self._source.get()

    async def aclose(self) -> None:
        """Close the store if this object opened it from a URL; a given store stays open."""
        await self._source.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


class BoundSession(Bound):
    """Base of the objects bound to one store session (see the module docstring).

    A subclass builds itself in ``_setup(session_id, source, **options)``, which calls
    :meth:`_bind`; its ``__init__`` passes ``StoreSource(store=store)`` and its ``from_url``
    ``StoreSource(url=url, options=store_options)`` through :meth:`_on`. The ``_setup`` here
    takes the options every subclass has and binds a session of ``SESSION_TYPE``; a subclass
    with options of its own writes its own."""

    _binding: SessionBinding
    session_id: str
    SESSION_TYPE: ClassVar[str]

    def _setup(
        self,
        session_id: str,
        source: StoreSource,
        *,
        agent_id: str = "main",
        user_id: str | None = None,
        title: str | None = None,
        session_metadata: dict[str, Any] | None = None,
    ) -> None:
        self._bind(
            session_id,
            source,
            agent_id=agent_id,
            user_id=user_id,
            title=title,
            session_type=self.SESSION_TYPE,
            metadata=session_metadata,
        )

    @classmethod
    def _on(cls, session_id: str, source: StoreSource, **options: Any) -> Self:
        """An instance on ``source`` (built without ``__init__``, which takes a Store)."""
        made = cls.__new__(cls)
        made._setup(session_id, source, **options)
        return made

    def _bind(
        self,
        session_id: str,
        source: StoreSource,
        *,
        agent_id: str,
        title: str | None,
        session_type: str,
        metadata: dict[str, Any] | None,
        user_id: str | None = None,
    ) -> None:
        self._source = source
        self._binding = SessionBinding(
            session_id,
            source,
            agent_id=agent_id,
            title=title,
            session_type=session_type,
            metadata=metadata,
            user_id=user_id,
        )
        self.session_id = self._binding.session_id

    @property
    def agent_id(self) -> str:
        return self._binding.agent_id

    @property
    def user_id(self) -> str | None:
        """The user of the session this object creates (None: no user)."""
        return self._binding.user_id


async def create_session(
    store: Store,
    session_id: str,
    *,
    agent_id: str,
    title: str | None,
    session_type: str,
    metadata: dict[str, Any] | None,
    user_id: str | None = None,
) -> bool:
    """Create a framework's store session; True when this call created it without a title
    (the first user text gives one later: :func:`title_later`). A session created meanwhile
    by another writer is left as it is (False)."""
    try:
        await store.create_session(
            session_id=session_id,
            agent_id=agent_id,
            title=title,
            session_type=session_type,
            metadata=metadata,
            user_id=user_id,
        )
    except Conflict:
        return False
    return title is None


async def title_later(store: Store, session_id: str, user_text: str) -> None:
    """Title a session created untitled by its first user text, unless titled meanwhile."""
    with contextlib.suppress(NotFound):
        session = await store.get_session(session_id)
        if session.title is None:
            await store.update_session(session_id, title=auto_title(user_text))


class SessionBinding:
    """One store session as a framework sees it (see the module docstring)."""

    def __init__(
        self,
        session_id: str,
        source: StoreSource,
        *,
        agent_id: str,
        title: str | None,
        session_type: str,
        metadata: dict[str, Any] | None,
        user_id: str | None = None,
        creates: bool = True,
    ) -> None:
        self.session_id = validate.session_id(session_id)
        # False: the session is made by other means (a fork): a write to it missing is NotFound.
        self.creates = creates
        self.agent_id = validate.label(agent_id, "agent_id")
        self.user_id = validate.optional_label(user_id, "user_id")
        self.session_type = validate.label(session_type, "session_type")
        self.title = validate.title(title)
        self.metadata = metadata
        self.source = source
        # Set when this binding created the session without a title (no user text yet).
        self._untitled = False

    async def store(self) -> Store:
        return await self.source.get()

    async def append(
        self,
        rows: Sequence[Mapping[str, Any]],
        user_text: str | None,
        idempotency_key: str | None = None,
    ) -> list[Message]:
        """Append ``rows`` in one transaction, creating the session first if it is missing.

        ``user_text`` is the first user text among the rows: the default title of a session
        this call creates (or of one it created earlier without a title).
        ``idempotency_key``: a retry of the same rows stores nothing (``key_from_ids``)."""
        store = await self.store()
        if not self.creates:
            return await self._add(store, rows, idempotency_key)
        for _ in range(_APPEND_ATTEMPTS - 1):
            try:
                added = await self._add(store, rows, idempotency_key)
            except NotFound:
                self._untitled = await create_session(
                    store,
                    self.session_id,
                    agent_id=self.agent_id,
                    title=self.title or auto_title(user_text),
                    session_type=self.session_type,
                    metadata=self.metadata,
                    user_id=self.user_id,
                )
                continue
            if self._untitled and user_text:
                self._untitled = False
                await title_later(store, self.session_id, user_text)
            return added
        return await self._add(store, rows, idempotency_key)

    async def _add(
        self, store: Store, rows: Sequence[Mapping[str, Any]], key: str | None
    ) -> list[Message]:
        """``add_messages`` keyed by the objects' framework ids. Those ids make a retry of the
        same objects safe, but a framework does not promise them unique: objects that reuse
        ids with other content are a new write (stored without a key), not a refused one."""
        try:
            return await store.add_messages(self.session_id, rows, idempotency_key=key)
        except IdempotencyKeyReused:
            return await store.add_messages(self.session_id, rows)

    async def last(self, n: int) -> list[Message]:
        """The newest ``n`` messages, oldest first ([] when the session does not exist)."""
        if n <= 0:
            return []
        store = await self.store()
        try:
            if n <= MAX_MESSAGES_PAGE:
                return await store.get_messages(self.session_id, last=n)
        except NotFound:
            return []
        newest: list[Message] = []
        async for message in self.newest_first(MAX_MESSAGES_PAGE):
            newest.append(message)
            if len(newest) == n:
                break
        newest.reverse()
        return newest

    async def last_whole(self, n: int, key: str) -> list[Any] | None:
        """The objects :func:`keep_whole` stored under ``key`` in the newest ``n`` messages,
        oldest first ([] when the session does not exist), read narrowly: metadata only, no
        content, no Message objects. None when one of those messages holds no such object (it
        was written by other means: read :meth:`last` instead)."""
        if n <= 0:
            return []
        if n > MAX_MESSAGES_PAGE:
            return None
        store = await self.store()
        try:
            rows = await store._message_metadata(self.session_id, last=n)
        except NotFound:
            return []
        found = []
        for _, metadata in rows:
            whole = metadata.get(key)
            if whole is None:
                whole = read_whole(metadata, key)
                if whole is None:
                    return None
            found.append(whole)
        return found

    async def has_before(self, seq: int) -> bool:
        """Whether the session has a message before ``seq``."""
        store = await self.store()
        try:
            first = await store.get_messages(self.session_id, limit=1)
        except NotFound:
            return False
        return bool(first) and first[0].seq < seq

    async def all(self) -> list[Message]:
        """Every message in seq order ([] when the session does not exist)."""
        store = await self.store()
        found: list[Message] = []
        after = 0
        while True:
            try:
                page = await store.get_messages(
                    self.session_id, after_seq=after, limit=MAX_MESSAGES_PAGE
                )
            except NotFound:
                return found
            found.extend(page)
            if len(page) < MAX_MESSAGES_PAGE:
                return found
            after = page[-1].seq

    async def newest_first(self, chunk: int = 100) -> AsyncIterator[Message]:
        """Messages from the newest back, read ``chunk`` at a time.

        Pages are offsets from the newest message: an append between two pages shifts them,
        so messages already seen (by seq) are skipped rather than repeated."""
        store = await self.store()
        offset, floor = 0, None
        while True:
            try:
                page = await store.get_messages(self.session_id, last=chunk, offset=offset)
            except NotFound:
                return
            for message in reversed(page):
                if floor is None or message.seq < floor:
                    floor = message.seq
                    yield message
            if len(page) < chunk:
                return
            offset += chunk

    async def pop(self, check: Callable[[Message], object] | None = None) -> Message | None:
        """Pop the newest message; ``check`` as ``Store.pop_message``'s."""
        store = await self.store()
        try:
            message: Message | None = await store.pop_message(self.session_id, check=check)
        except NotFound:
            return None
        return message

    async def replace_tail(
        self,
        expected: Sequence[int] | None,
        rows: Sequence[Mapping[str, Any]],
        prune: Callable[[Message], bool] | None = None,
    ) -> bool:
        """``Store._replace_tail`` on this session; a missing session is created for rows
        replacing everything (None) and is otherwise "changed" (False)."""
        store = await self.store()
        try:
            return await store._replace_tail(
                self.session_id, expected=expected, items=rows, prune=prune
            )
        except NotFound:
            if expected is not None:
                return False
        if rows:
            await self.append(rows, None)
        return True

    async def clear(self) -> None:
        store = await self.store()
        with contextlib.suppress(NotFound):
            await store.clear_messages(self.session_id)
