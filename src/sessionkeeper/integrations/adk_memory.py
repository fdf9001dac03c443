"""Google ADK memory service on the sessionkeeper store: what an agent recalls across sessions.

    from sessionkeeper.integrations.adk import SessionkeeperMemoryService

    async with SessionkeeperMemoryService.from_url("sqlite:///agent.db") as memory:
        runner = Runner(agent=agent, app_name="my_app", session_service=…, memory_service=memory)

``SessionkeeperMemoryService`` is a ``BaseMemoryService`` (google-adk ≥ 2.13):
``add_session_to_memory``, ``add_events_to_memory``, ``add_memory``, ``search_memory`` and
``delete_memory``, so ADK's ``load_memory`` and ``preload_memory`` tools recall through it.

How memory is stored. Memory is what was added to it, as ADK defines (not every stored
conversation): each ADK session added is one store session of type ``adk_memory`` (the events
added without a session share one, the entries of ``add_memory`` another), its agent the app's
(as ``SessionkeeperSessionService`` names it), its user the ADK user, and
``metadata.adk_memory_app`` the app name exactly. Each event with text is one message: its
visible text as content (searchable), the event whole in metadata. So memory is listed,
searched, exported, key-scoped by agent and user, and removed by ``forget_user`` like any
session. Adding a session again stores only the events not yet in memory and removes the ones
a rewind took back (as ADK's own services do); events without text (a function call alone, a
state change) have nothing to search and are not stored, as in ADK's services.

How memory is searched: with the store's full-text search (the same terms on SQLite and
PostgreSQL), scoped to the app and user. ADK hands ``search_memory`` whole sentences (the
``preload_memory`` tool passes the user's message), while the store's search requires every
word: so each distinct word of the query is searched (the first ``MAX_QUERY_WORDS``), and the
memories matching the most words come first, then the better ranked, then the newer.

Writers adding one session at once (two processes, two tasks) may each append the same new
events; each then sees the others' copies and deletes all but the first (``_append_once``),
and a search returns an event once even meanwhile.

A user id must be one the store's sessions can carry (1-64 characters of ``A-Z a-z 0-9 . _ :
@ / + -``; the session service takes any text): otherwise ``InvalidInput``, rather than memory
that ``forget_user`` and user-scoped keys could not reach.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import sha256
from typing import TYPE_CHECKING, Any

from sessionkeeper.errors import InvalidInput, NotFound
from sessionkeeper.integrations._binding import (
    Bound,
    SessionBinding,
    StoreSource,
    opened_store,
)
from sessionkeeper.integrations._common import (
    excerpt,
    finish,
    keep_whole,
    missing_framework,
    read_whole,
)
from sessionkeeper.models import LABEL_RE, MAX_PAGE_SIZE, Message, NewMessage
from sessionkeeper.store import validate
from sessionkeeper.store.adk import EVENT_KEY, agent_of_app

try:
    from google.adk.events._rewind_events import get_active_events
    from google.adk.events.event import Event
    from google.adk.memory.base_memory_service import BaseMemoryService, SearchMemoryResponse
    from google.adk.memory.memory_entry import MemoryEntry
    from google.genai import types
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise missing_framework("Google ADK (google-adk)", "adk", exc) from exc

if TYPE_CHECKING:
    from google.adk.sessions.session import Session

    from sessionkeeper import Store

__all__ = ["MEMORY_TYPE", "SessionkeeperMemoryService"]

MEMORY_TYPE = "adk_memory"
APP_KEY = "adk_memory_app"  # session metadata: the app name, exactly (the filter of searches)
SESSION_KEY = "adk_memory_session"  # session metadata: the ADK session id (None: no session)
FORGOTTEN_KEY = "adk_memory_forgotten"  # session metadata: event ids delete_memory removed
ENTRY_KEY = "adk_memory_entry"  # message metadata: a MemoryEntry of add_memory, whole
MAX_RESULTS = 10  # as ADK's InMemoryMemoryService
MAX_QUERY_WORDS = 32
WORD_HITS = 30  # the least a query word's search reads (see __init__)
_WORD = re.compile(r"\w+")
_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
_MAX_WORD = 1000  # the store's longest query


@dataclass(frozen=True, slots=True)
class _Scope:
    """The memory of one app and user: the store's agent, user and session filter."""

    app_name: str
    user_id: str

    @property
    def agent_id(self) -> str:
        return agent_of_app(self.app_name)

    def store_id(self, kind: str, name: str = "") -> str:
        digest = sha256("\0".join((self.app_name, self.user_id, kind, name)).encode())
        return f"adkmem-{digest.hexdigest()[:40]}"


def _scope(app_name: Any, user_id: Any) -> _Scope:
    if not isinstance(app_name, str) or not app_name:
        raise InvalidInput("app_name must be a non-empty string", field="app_name")
    validate.text(app_name, "app_name")
    if len(app_name) > 256:
        raise InvalidInput(
            f"app_name is {len(app_name)} characters; the limit is 256", field="app_name"
        )
    if not isinstance(user_id, str) or not LABEL_RE.fullmatch(user_id):
        raise InvalidInput(
            f"invalid user_id {user_id!r} for memory: use 1-64 characters of "
            "A-Z a-z 0-9 . _ : @ / + - (a user the store's sessions can carry)",
            field="user_id",
        )
    return _Scope(app_name, user_id)


class SessionkeeperMemoryService(Bound, BaseMemoryService):
    """An ADK memory service on a sessionkeeper Store (see the module docstring).

    ``SessionkeeperMemoryService(store)`` uses a Store you opened (and close);
    ``async with SessionkeeperMemoryService.from_url(url) as memory:`` opens one and closes
    it. ``max_results``: the most memories one search returns (ADK's in-memory service: 10).
    """

    def __init__(self, store: Store, *, max_results: int = MAX_RESULTS) -> None:
        self.store = store
        self._source = StoreSource(store=store)
        self.max_results = validate.bounded_int(max_results, "max_results", 1)
        if self.max_results > MAX_PAGE_SIZE:
            raise InvalidInput(
                f"max_results is {max_results}; the limit is {MAX_PAGE_SIZE}",
                field="max_results",
            )
        # Hits read per query word: enough that a memory matching several words is in each
        # word's list (a common word's list is long; the rare words carry the match), few
        # enough that common words do not cost a hundred snippets each.
        self._word_hits = min(MAX_PAGE_SIZE, max(WORD_HITS, 3 * self.max_results))

    @classmethod
    @asynccontextmanager
    async def from_url(
        cls,
        url: str | None = None,
        *,
        max_results: int = MAX_RESULTS,
        store_options: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[SessionkeeperMemoryService]:
        """A service on the store at ``url`` (default: the user's SQLite database), closed
        on exit; ``store_options`` go to ``sessionkeeper.open_store``."""
        async with opened_store(url, store_options) as store:
            yield cls(store, max_results=max_results)

    # ── adding ──────────────────────────────────────────────────────────────

    async def add_session_to_memory(self, session: Session) -> None:
        """Store the session's live events not yet in memory; remove those a rewind took
        back. A session may be added many times: nothing is stored twice."""
        scope = _scope(session.app_name, session.user_id)
        live = get_active_events(list(session.events))
        live_ids = {e.id for e in live}
        rewound = {e.id for e in session.events if e.id not in live_ids}
        binding = self._binding(scope, "session", session.id)
        await finish(self._add(binding, live, rewound))

    async def add_events_to_memory(
        self,
        *,
        app_name: str,
        user_id: str,
        events: Sequence[Event],
        session_id: str | None = None,
        custom_metadata: Mapping[str, object] | None = None,
    ) -> None:
        """Store these events (a delta: the ones already in memory are skipped).
        ``custom_metadata`` has no keys this service uses."""
        scope = _scope(app_name, user_id)
        binding = (
            self._binding(scope, "session", session_id)
            if session_id
            else (self._binding(scope, "events", None))
        )
        await finish(self._add(binding, list(events), set()))

    async def add_memory(
        self,
        *,
        app_name: str,
        user_id: str,
        memories: Sequence[MemoryEntry],
        custom_metadata: Mapping[str, object] | None = None,
    ) -> None:
        """Store explicit memories, all or none (one transaction). An entry with an ``id``
        already in memory is skipped; an entry without text is refused (nothing could find
        it). ``custom_metadata`` has no keys this service uses."""
        scope = _scope(app_name, user_id)
        rows = [_entry_message(entry) for entry in memories]
        if not rows:
            return
        binding = self._binding(scope, "entries", None)

        async def add() -> None:
            stored = await _stored(binding, ENTRY_KEY)
            seen = {entry_id for entry_id, _ in stored} | await _forgotten(binding)
            fresh = []
            for entry, row in zip(memories, rows, strict=True):
                if entry.id and entry.id in seen:
                    continue
                if entry.id:
                    seen.add(entry.id)
                fresh.append(row)
            await _append_once(binding, fresh, stored, ENTRY_KEY)

        await finish(add())

    def _binding(self, scope: _Scope, kind: str, session_id: str | None) -> SessionBinding:
        name = session_id or ""
        title = {
            "session": f"Memory of ADK session {name}",
            "events": "Memory of ADK events",
            "entries": "ADK memories",
        }[kind]
        return SessionBinding(
            scope.store_id(kind, name),
            self._source,
            agent_id=scope.agent_id,
            title=validate.title(title[:200]),
            session_type=MEMORY_TYPE,
            metadata={APP_KEY: scope.app_name, SESSION_KEY: session_id},
            user_id=scope.user_id,
        )

    async def _add(self, binding: SessionBinding, events: list[Event], rewound: set[str]) -> None:
        adk_session = binding.metadata.get(SESSION_KEY) if binding.metadata else None
        rows = [(e.id, row) for e in events if (row := _event_message(e, adk_session)) is not None]
        if not rows and not rewound:
            return
        stored = await _stored(binding, EVENT_KEY)
        store = await binding.store()
        for seq in sorted(seq for event_id, seq in stored if event_id in rewound):
            with suppress(NotFound):  # deleted meanwhile
                await store.delete_message(binding.session_id, seq)
        skip = {event_id for event_id, _ in stored} | await _forgotten(binding)
        fresh = []
        for event_id, row in rows:
            if event_id not in skip:
                skip.add(event_id)
                fresh.append(row)
        await _append_once(binding, fresh, stored, EVENT_KEY)

    # ── searching ───────────────────────────────────────────────────────────

    async def search_memory(
        self, *, app_name: str, user_id: str, query: str
    ) -> SearchMemoryResponse:
        """The memories of this app and user that best match ``query`` (see the module
        docstring): at most ``max_results``, the most query words matched first."""
        scope = _scope(app_name, user_id)
        if not isinstance(query, str):
            raise InvalidInput("query must be a string", field="query")
        validate.text(query, "query")
        words = _query_words(query)
        if not words:
            return SearchMemoryResponse()
        store = await self.get_store()
        found = await asyncio.gather(
            *(
                store.search_messages(
                    word,
                    limit=self._word_hits,
                    agent_id=scope.agent_id,
                    user_id=scope.user_id,
                    metadata={APP_KEY: scope.app_name},
                )
                for word in words
            )
        )
        # (session, seq) -> [words matched, best position in a word's ranking, time]
        scores: dict[tuple[str, int], list[Any]] = {}
        for hits in found:
            for position, hit in enumerate(hits):
                score = scores.get((hit.session_id, hit.seq))
                if score is None:
                    scores[(hit.session_id, hit.seq)] = [1, position, hit.created_at]
                else:
                    score[0] += 1
                    score[1] = min(score[1], position)
        ranked = sorted(
            scores, key=lambda k: (-scores[k][0], scores[k][1], -scores[k][2].timestamp())
        )
        memories: list[MemoryEntry] = []
        seen: set[tuple[str, str]] = set()
        # Read the best max_results at once; more only where some were copies or are gone.
        for start in range(0, len(ranked), self.max_results):
            chunk = ranked[start : start + self.max_results]
            messages = await asyncio.gather(*(_message(store, sid, seq) for sid, seq in chunk))
            for message in messages:
                entry = None if message is None else _memory(message)
                if entry is None or message is None:
                    continue
                origin = entry.custom_metadata.get("event_id") or entry.id
                key = (message.session_id, str(origin))
                if key in seen:
                    continue
                seen.add(key)
                memories.append(entry)
                if len(memories) == self.max_results:
                    return SearchMemoryResponse(memories=memories)
        return SearchMemoryResponse(memories=memories)

    # ── deleting ────────────────────────────────────────────────────────────

    async def delete_memory(
        self, *, app_name: str, user_id: str, memory_id: str | None = None
    ) -> None:
        """Delete the memory ``search_memory`` returned with this id (nothing when it is not
        this app's and user's, or gone). Its event (or entry id) is remembered, so adding its
        session again does not bring it back."""
        scope = _scope(app_name, user_id)
        if not memory_id:
            return
        session_id, _, seq_text = str(memory_id).rpartition(":")
        if not session_id.startswith("adkmem-") or not seq_text.isdigit():
            raise InvalidInput(f"invalid memory id {memory_id!r}", field="memory_id")
        store = await self.get_store()
        try:
            session = await store.get_session(session_id)
        except NotFound:
            return
        if (
            session.session_type != MEMORY_TYPE
            or session.user_id != scope.user_id
            or session.metadata.get(APP_KEY) != scope.app_name
        ):
            return
        message = await _message(store, session_id, int(seq_text))
        if message is None:
            return

        async def delete() -> None:
            entry = _memory(message)
            forgotten_id = None if entry is None else _origin_id(message)
            if forgotten_id:

                def forget(metadata: dict[str, Any]) -> dict[str, Any] | None:
                    forgotten = list(metadata.get(FORGOTTEN_KEY) or [])
                    if forgotten_id in forgotten:
                        return None
                    return {**metadata, FORGOTTEN_KEY: [*forgotten, forgotten_id]}

                # Another delete at the same moment keeps its id too.
                await store.change_metadata(session_id, forget)
            with suppress(NotFound):
                await store.delete_message(session_id, message.seq)

        await finish(delete())


# ── conversions ─────────────────────────────────────────────────────────────


def _text(content: types.Content | None) -> str:
    """The visible text of a content (thoughts left out), parts joined by a line break."""
    parts = list(content.parts or []) if content else []
    return "\n".join(p.text for p in parts if p.text and not p.thought)


def _role(content: types.Content | None, author: str | None) -> str:
    if author == "user" or (content is not None and content.role == "user" and not author):
        return "user"
    return "assistant"


def _event_message(event: Event, adk_session: str | None) -> dict[str, Any] | None:
    """The message an event is remembered as (with the id of the ADK session it was added
    with); None when it has no text to search."""
    text = _text(event.content)
    if not text.strip():
        return None
    role = _role(event.content, event.author)
    whole = json.loads(event.model_dump_json(exclude_none=True))
    message = NewMessage(
        role=role,
        content=excerpt(text)[0],
        agent_id=event.author if role != "user" and LABEL_RE.fullmatch(event.author) else None,
        metadata=keep_whole(EVENT_KEY, whole, {SESSION_KEY: adk_session}),
        created_at=_moment(event.timestamp),
    )
    return _row(message)


def _entry_message(entry: MemoryEntry) -> dict[str, Any]:
    if not isinstance(entry, MemoryEntry):
        raise InvalidInput(
            f"memories must be MemoryEntry objects (got {type(entry).__name__})",
            field="memories",
        )
    text = _text(entry.content)
    if not text.strip():
        raise InvalidInput("a memory needs text (nothing could find it)", field="memories")
    role = _role(entry.content, entry.author)
    author = entry.author
    whole = json.loads(entry.model_dump_json(exclude_none=True))
    message = NewMessage(
        role=role,
        content=excerpt(text)[0],
        agent_id=author if role != "user" and author and LABEL_RE.fullmatch(author) else None,
        metadata=keep_whole(ENTRY_KEY, whole),
    )
    return _row(message)


def _row(message: NewMessage) -> dict[str, Any]:
    return {
        "role": message.role,
        "content": message.content,
        "agent_id": message.agent_id,
        "metadata": message.metadata,
        "created_at": message.created_at,
    }


def _moment(timestamp: float) -> datetime:
    try:
        return datetime.fromtimestamp(timestamp, UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        raise InvalidInput(
            f"event timestamp {timestamp!r} is not a time in years 1-9999", field="timestamp"
        ) from None


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).isoformat()


def _memory(message: Message) -> MemoryEntry | None:
    """The MemoryEntry a remembered message gives (its id: ``<store session>:<seq>``)."""
    memory_id = f"{message.session_id}:{message.seq}"
    event = read_whole(message.metadata, EVENT_KEY)
    if isinstance(event, dict):
        parsed = Event.model_validate(event)
        parts = [p for p in (parsed.content.parts or []) if not p.thought] if parsed.content else []
        content = (
            parsed.content.model_copy(update={"parts": parts})
            if parsed.content
            else types.Content(parts=[])
        )
        return MemoryEntry(
            id=memory_id,
            content=content,
            author=parsed.author,
            timestamp=_iso(parsed.timestamp),
            custom_metadata={"event_id": parsed.id, "session_id": _adk_session(message)},
        )
    entry = read_whole(message.metadata, ENTRY_KEY)
    if isinstance(entry, dict):
        return MemoryEntry.model_validate(entry).model_copy(update={"id": memory_id})
    return None  # a message written by other means


def _adk_session(message: Message) -> str | None:
    found = message.metadata.get(SESSION_KEY)
    return found if isinstance(found, str) else None


def _origin_id(message: Message) -> str | None:
    """The event id (or entry id) a remembered message came from."""
    event = read_whole(message.metadata, EVENT_KEY)
    for whole in (event, read_whole(message.metadata, ENTRY_KEY)):
        found = whole.get("id") if isinstance(whole, dict) else None
        if isinstance(found, str):
            return found
    return None


def _query_words(query: str) -> list[str]:
    """The distinct words of a query, as separate store queries (the first MAX_QUERY_WORDS)."""
    words: list[str] = []
    seen: set[str] = set()
    for word in _WORD.findall(query):
        folded = word.casefold()
        if folded in seen or len(word) > _MAX_WORD or not _LETTER_OR_DIGIT.search(word):
            continue
        seen.add(folded)
        words.append(word)
        if len(words) == MAX_QUERY_WORDS:
            break
    return words


async def _message(store: Store, session_id: str, seq: int) -> Message | None:
    try:
        found = await store.get_messages(session_id, after_seq=seq - 1, limit=1)
    except NotFound:
        return None
    return found[0] if found and found[0].seq == seq else None


async def _stored(binding: SessionBinding, key: str) -> list[tuple[str, int]]:
    """(origin id, seq) of the memories in a memory session, in seq order: the id of the
    event (``key`` EVENT_KEY) or of the entry (ENTRY_KEY) each message holds."""
    return [
        (whole["id"], m.seq)
        for m in await binding.all()
        if isinstance(whole := read_whole(m.metadata, key), dict)
        and isinstance(whole.get("id"), str)
    ]


async def _append_once(
    binding: SessionBinding,
    rows: list[dict[str, Any]],
    stored: list[tuple[str, int]],
    key: str,
) -> None:
    """Append ``rows`` (in one transaction) to a memory session read as ``stored``.

    A writer that appended meanwhile (two processes, or two tasks, adding one session at
    once) may have stored the same events: then the session's seqs do not follow on from what
    was read, and every copy but the first of each is deleted. Seqs are given in commit
    order, so every writer keeps the same, first, copy."""
    if not rows:
        return
    added = await binding.append(rows, None)
    last = max((seq for _, seq in stored), default=0)
    if not added or added[0].seq == last + 1:
        return
    store = await binding.store()
    first: set[str] = set()
    for origin, seq in await _stored(binding, key):
        if origin not in first:
            first.add(origin)
            continue
        with suppress(NotFound):  # another writer deleted it
            await store.delete_message(binding.session_id, seq)


async def _forgotten(binding: SessionBinding) -> set[str]:
    store = await binding.store()
    try:
        session = await store.get_session(binding.session_id)
    except NotFound:
        return set()
    return {str(i) for i in _as_list(session.metadata.get(FORGOTTEN_KEY))}


def _as_list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else ()
