"""What every integration needs from the Store, in one place.

- :class:`SessionBinding` ties a framework's session object to one store session: a Store the
  caller gives (and closes) or one opened lazily from a URL (and closed by the binding). The
  store session is created by the first write, not by the constructor (frameworks build their
  session objects freely, e.g. once per request), and a creation race between processes is
  settled by the unique session id: whoever loses gets ``Conflict`` and simply appends.
- :func:`finish` runs a write to its end even if the caller is cancelled. The frameworks read
  the session back to decide whether to retry a turn, so a write must be all done or not
  started, never "cancelled, outcome unknown".
- Text helpers: the auto-title rule of the chat, and the excerpt kept as message content when
  an object's text is longer than a message may be (the object itself is kept whole).
- :func:`keep_whole` / :func:`read_whole`: a framework object in message metadata, exactly.
  PostgreSQL keeps metadata as jsonb, whose numbers are ``numeric``: a float Python writes in
  exponent form (``1e+16``) would come back as an int and ``-0.0`` as ``0.0``, and a
  framework comparing serialised items would see a different item. An object whose JSON
  shows either is kept as JSON text instead (a false alarm from a string that merely looks
  like one costs nothing but queryability). Key order is not kept by jsonb; it carries no
  meaning in these objects and Python compares dicts without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import threading
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from sessionkeeper.errors import Conflict, InvalidInput, NotFound, TooLarge
from sessionkeeper.models import (
    LABEL_RE,
    MAX_MESSAGE_LENGTH,
    MAX_MESSAGES_PAGE,
    MAX_TITLE_LENGTH,
    SESSION_ID_RE,
    Message,
)
from sessionkeeper.store import validate

if TYPE_CHECKING:
    from sessionkeeper import Store

T = TypeVar("T")

# The chat's auto-title rule (sessionkeeper.chat.turn.auto_title; a test keeps the two equal).
TITLE_MAX = 80
TITLE_CUT = 77
# Per-message framing a chat format adds, as the store's own context windows count it.
MESSAGE_OVERHEAD_TOKENS = 3
# Creating the session and appending can lose to a concurrent delete (a ghost purge of a
# session emptied by clear); a few rounds settle it.
_APPEND_ATTEMPTS = 3


def missing_framework(framework: str, extra: str, exc: ImportError) -> ImportError:
    """The ImportError an integration raises when its framework is not installed."""
    error = ImportError(
        f"{framework} is not installed ({exc}); install it with: "
        f"pip install 'sessionkeeper[{extra}]'"
    )
    error.name = exc.name
    return error


def auto_title(text: str | None) -> str | None:
    """The title a first user text gives a session: whitespace collapsed, 80 characters at
    most (77 and "...")."""
    if not text:
        return None
    collapsed = " ".join(text.split())
    if not collapsed:
        return None
    return collapsed if len(collapsed) <= TITLE_MAX else collapsed[:TITLE_CUT] + "..."


def excerpt(text: str) -> tuple[str, bool]:
    """The message content for ``text``: itself, or its first MAX_MESSAGE_LENGTH characters
    when longer (the store refuses longer content; the whole object is kept in metadata)."""
    if len(text) <= MAX_MESSAGE_LENGTH:
        return text, False
    return text[:MAX_MESSAGE_LENGTH], True


# Python's float repr: an exponent always has a sign ("1e+16", "5e-07"); and negative zero.
_JSONB_INEXACT = re.compile(r"\de[+-]\d|(?<![\w.])-0\.0(?!\d)")


def keep_whole(key: str, obj: Any, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Metadata holding ``obj`` so that :func:`read_whole` gives back an equal object with
    the same JSON (see the module docstring): ``{key: obj, **extra}`` or
    ``{key_json: text, **extra}``.

    The result is checked against the store's metadata rules and serialised here, once
    (``validate.Checked``): the store takes it without walking or serialising it again. What
    the store would refuse (NaN, a non-string key, NUL, too deep, too large) is refused here
    with the store's error."""
    metadata = {key: obj}
    if extra:
        metadata.update(extra)
    try:
        checked = validate.checked_metadata(metadata)
    except TooLarge:
        raise
    except InvalidInput as exc:
        # As JSON text it may still be fine (an integer past 64 bits beside an exponent).
        checked, refused = None, exc
    if checked is not None and not _inexact(checked.json):
        return checked
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{key} is not standard JSON: {exc}", field="metadata") from exc
    if _inexact(text):
        return validate.checked_metadata({f"{key}_json": text, **(extra or {})})
    if checked is None:
        raise refused
    return checked  # the exponent was in ``extra``, not in the object


def _inexact(text: str) -> bool:
    """Whether jsonb could rewrite a number in ``text``. The substring tests (C speed, ~1 µs
    for an item) rule most texts out before the regex (~16 µs) runs."""
    if "e+" not in text and "e-" not in text and "-0.0" not in text:
        return False
    return _JSONB_INEXACT.search(text) is not None


def read_whole(metadata: Mapping[str, Any], key: str) -> Any:
    """The object :func:`keep_whole` stored under ``key``, or None."""
    if key in metadata:
        return metadata[key]
    text = metadata.get(f"{key}_json")
    return json.loads(text) if isinstance(text, str) else None


def count_tokens(store: Store, text: str) -> int:
    """Tokens of ``text`` with the store's encoding (for content the store cannot see whole)."""
    tokenizer = getattr(store, "tokenizer", None)
    if tokenizer is None:
        from sessionkeeper.tokens import get_tokenizer

        tokenizer = get_tokenizer()
    return int(tokenizer.count(text))


async def finish(awaitable: Awaitable[T]) -> T:
    """Await a write to its outcome even if the caller is cancelled meanwhile, then re-raise
    the cancellation. The write's own failure is then not reported: the caller asked to stop."""
    task = asyncio.ensure_future(awaitable)
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = cancelled or exc
    if cancelled is not None:
        if not task.cancelled():
            task.exception()  # retrieved, so the loop reports no "exception never retrieved"
        raise cancelled
    return task.result()


def check_session_id(session_id: Any) -> str:
    if not isinstance(session_id, str) or not SESSION_ID_RE.fullmatch(session_id):
        raise InvalidInput(
            f"invalid session id {session_id!r}: use 1-128 characters of A-Z a-z 0-9 . _ : -",
            field="session_id",
        )
    return session_id


def _check_label(value: Any, field: str) -> str:
    if not isinstance(value, str) or not LABEL_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid {field} {value!r}: use 1-64 characters of A-Z a-z 0-9 . _ : @ / + -",
            field=field,
        )
    return value


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
    ) -> None:
        if title is not None and (not isinstance(title, str) or len(title) > MAX_TITLE_LENGTH):
            raise InvalidInput(
                f"title must be a string of at most {MAX_TITLE_LENGTH} characters", field="title"
            )
        self.session_id = check_session_id(session_id)
        self.agent_id = _check_label(agent_id, "agent_id")
        self.session_type = _check_label(session_type, "session_type")
        self.title = title
        self.metadata = metadata
        self.source = source
        # Set when this binding created the session without a title (no user text yet).
        self._untitled = False

    async def store(self) -> Store:
        return await self.source.get()

    async def append(
        self, rows: Sequence[Mapping[str, Any]], user_text: str | None
    ) -> list[Message]:
        """Append ``rows`` in one transaction, creating the session first if it is missing.

        ``user_text`` is the first user text among the rows: the default title of a session
        this call creates (or of one it created earlier without a title)."""
        store = await self.store()
        for _ in range(_APPEND_ATTEMPTS - 1):
            try:
                added = await store.add_messages(self.session_id, rows)
            except NotFound:
                await self._create(store, user_text)
                continue
            if self._untitled and user_text:
                await self._title_later(store, user_text)
            return added
        return await store.add_messages(self.session_id, rows)

    async def _create(self, store: Store, user_text: str | None) -> None:
        title = self.title or auto_title(user_text)
        try:
            await store.create_session(
                session_id=self.session_id,
                agent_id=self.agent_id,
                title=title,
                session_type=self.session_type,
                metadata=self.metadata,
            )
        except Conflict:
            return  # created meanwhile by another writer: append to it
        self._untitled = title is None

    async def _title_later(self, store: Store, user_text: str) -> None:
        self._untitled = False
        with contextlib.suppress(NotFound):
            session = await store.get_session(self.session_id)
            if session.title is None:
                await store.update_session(self.session_id, title=auto_title(user_text))

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

    async def pop(self) -> Message | None:
        store = await self.store()
        try:
            message: Message | None = await store.pop_message(self.session_id)
        except NotFound:
            return None
        return message

    async def clear(self) -> None:
        store = await self.store()
        with contextlib.suppress(NotFound):
            await store.clear_messages(self.session_id)
