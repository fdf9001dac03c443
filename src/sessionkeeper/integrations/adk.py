"""Google ADK session service on the sessionkeeper store.

    from sessionkeeper.integrations.adk import SessionkeeperSessionService

    async with SessionkeeperSessionService.from_url("sqlite:///agent.db") as sessions:
        runner = Runner(agent=agent, app_name="my_app", session_service=sessions)

``SessionkeeperSessionService`` is a ``BaseSessionService`` (google-adk ≥ 2.13):
``create_session`` (``AlreadyExistsError`` on a duplicate id), ``get_session`` (with
``num_recent_events`` and ``after_timestamp``, read without loading the whole session),
``list_sessions`` (paged by the store; ``user_id=None`` for every user), ``delete_session``,
``get_user_state`` and ``append_event``. State keys split by prefix as ADK defines: ``app:``
shared by the app, ``user:`` by the user's sessions in the app, ``temp:`` never stored;
partial events are not stored.

What differs from ADK's own services:
- ``append_event`` never raises ``StaleSessionError``: the event and its state delta are
  applied in one transaction under the session's row lock, so processes sharing a session
  never lose an event and never retry. A session object that is behind storage gets the new
  event appended after the ones it has not seen; its in-memory state is updated with the
  event's delta only (``get_session`` gives the merged state).
- Events are ordered by append, not by timestamp (``num_recent_events`` counts back from
  the last appended).
- Every ADK session is an ordinary store session (type ``adk``, agent = the app name with
  ``_`` for characters an agent id cannot hold, titled by its first user text): listed,
  searched, windowed, shown in the dashboard, purged when empty (no events and no session
  state) and pruned like any other. Each event is a message: its text as content
  (searchable), the event whole in metadata. Deleting the store session deletes the ADK
  session and its state.
- Forks (ADK has none) and rewinds by message seq: ``store.fork_session`` gives a new ADK
  session of the same app and user (its ADK id the new session id) with the kept events and
  the state they give; ``store.rewind_session`` recomputes the state from the events kept,
  its branch an ADK session too. The state follows ADK's own rewind rule (README, "Forks
  and rewinds of Google ADK sessions").

``SessionkeeperMemoryService``, ADK's memory service over the store's search, is defined in
``adk_memory.py`` and imported from here too.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sessionkeeper.integrations._binding import Bound, StoreSource, opened_store
from sessionkeeper.integrations._common import (
    auto_title,
    excerpt,
    finish,
    keep_whole,
    key_from_ids,
    missing_framework,
    reported_usage,
)
from sessionkeeper.integrations.adk_memory import MEMORY_TYPE, SessionkeeperMemoryService
from sessionkeeper.models import LABEL_RE, NewMessage, Usage
from sessionkeeper.store import validate
from sessionkeeper.store.adk import EVENT_KEY, SESSION_TYPE, AdkKey, AdkView, Scopes

try:
    from google.adk.errors.already_exists_error import AlreadyExistsError
    from google.adk.errors.session_not_found_error import SessionNotFoundError
    from google.adk.events.event import Event
    from google.adk.sessions import _session_util
    from google.adk.sessions.base_session_service import (
        BaseSessionService,
        GetSessionConfig,
        ListSessionsResponse,
    )
    from google.adk.sessions.session import Session
    from google.adk.sessions.state import State
except ImportError as exc:  # pragma: no cover - exercised by a subprocess test
    raise missing_framework("Google ADK (google-adk)", "adk", exc) from exc

if TYPE_CHECKING:
    from sessionkeeper import Store

__all__ = [
    "MEMORY_TYPE",
    "SESSION_TYPE",
    "SessionkeeperMemoryService",
    "SessionkeeperSessionService",
]


class SessionkeeperSessionService(Bound, BaseSessionService):
    """An ADK session service on a sessionkeeper Store.

    ``SessionkeeperSessionService(store)`` uses a Store you opened (and close);
    ``async with SessionkeeperSessionService.from_url(url) as service:`` opens one and closes
    it. ``title`` names every session it creates (default: the session's first user text).
    """

    def __init__(self, store: Store, *, title: str | None = None) -> None:
        self.store = store
        self._source = StoreSource(store=store)
        self.title = validate.title(title)
        self._adk = store.adk

    @classmethod
    @asynccontextmanager
    async def from_url(
        cls,
        url: str | None = None,
        *,
        title: str | None = None,
        store_options: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[SessionkeeperSessionService]:
        """A service on the store at ``url`` (default: the user's SQLite database), closed
        on exit; ``store_options`` go to ``sessionkeeper.open_store``."""
        async with opened_store(url, store_options) as store:
            yield cls(store, title=title)

    # ── sessions ────────────────────────────────────────────────────────────

    async def create_session(
        self,
        *,
        app_name: str,
        user_id: str,
        state: dict[str, Any] | None = None,
        session_id: str | None = None,
    ) -> Session:
        adk_id = session_id.strip() if session_id and session_id.strip() else str(uuid.uuid4())
        key = AdkKey(app_name, user_id, adk_id)
        view = await finish(
            self._adk.create(key, _scopes(state or {}), update_time=time.time(), title=self.title)
        )
        if view is None:
            raise AlreadyExistsError(f"Session with id {adk_id} already exists.")
        return _session(view, [])

    async def get_session(
        self,
        *,
        app_name: str,
        user_id: str,
        session_id: str,
        config: GetSessionConfig | None = None,
    ) -> Session | None:
        last = config.num_recent_events if config else None
        after = config.after_timestamp if config and config.after_timestamp else None
        view = await self._adk.get(AdkKey(app_name, user_id, session_id), last=last, after=after)
        if view is None:
            return None
        return _session(view, [Event.model_validate_json(text) for text in view.events])

    async def list_sessions(
        self, *, app_name: str, user_id: str | None = None
    ) -> ListSessionsResponse:
        sessions: list[Session] = []
        async for views in self._adk.pages(app_name, user_id):
            shared: dict[str, dict[str, Any]] = {}  # user id -> prefixed app and user state
            for view in views:
                prefixed = shared.get(view.key.user_id)
                if prefixed is None:
                    prefixed = shared[view.key.user_id] = _prefixed(view)
                sessions.append(_session(view, [], prefixed))
        return ListSessionsResponse(sessions=sessions)

    async def delete_session(self, *, app_name: str, user_id: str, session_id: str) -> None:
        await finish(self._adk.delete(AdkKey(app_name, user_id, session_id)))

    async def get_user_state(self, *, app_name: str, user_id: str) -> dict[str, Any]:
        return await self._adk.user_state(app_name, user_id)

    # ── events ──────────────────────────────────────────────────────────────

    async def append_event(self, session: Session, event: Event) -> Event:
        if event.partial:
            return event
        # Temp state is the invocation's: on the session object, never stored.
        self._apply_temp_state(session, event)
        event = self._trim_temp_delta_state(event)
        delta = event.actions.state_delta if event.actions else None
        message, title = _message(event)
        stored = await finish(
            self._adk.append(
                AdkKey(session.app_name, session.user_id, session.id),
                message,
                _scopes(delta or {}),
                update_time=event.timestamp,
                title=title,
                # ADK's event id: a retried append_event of the same event stores it once.
                idempotency_key=key_from_ids("adk", [event.id]),
            )
        )
        if not stored:
            raise SessionNotFoundError(f"Session {session.id} not found.")
        session.last_update_time = event.timestamp
        return self._commit_event_to_session(session, event)


# ── conversions ─────────────────────────────────────────────────────────────


def _scopes(state: Mapping[str, Any]) -> Scopes:
    """ADK state → the three scopes, prefixes removed, ``temp:`` dropped, values made JSON
    as ADK's own database services make them."""
    split = _session_util.extract_json_safe_state_delta(dict(state))
    return Scopes(split["session"], split["app"], split["user"])


def _prefixed(view: AdkView) -> dict[str, Any]:
    """The app's and user's state as a session shows them: keys with their prefix."""
    state = {State.APP_PREFIX + k: v for k, v in view.app_state.items()}
    state.update({State.USER_PREFIX + k: v for k, v in view.user_state.items()})
    return state


def _session(view: AdkView, events: list[Event], prefixed: dict[str, Any] | None = None) -> Session:
    state = {**view.state, **(_prefixed(view) if prefixed is None else prefixed)}
    return Session(
        id=view.key.adk_id,
        app_name=view.key.app_name,
        user_id=view.key.user_id,
        state=state,
        events=events,
        last_update_time=view.update_time,
    )


def _usage(event: Event) -> Usage | None:
    """What the model call that produced an event cost (Gemini's ``usage_metadata``): the
    prompt (with tool-use prompt) tokens as input, candidates and thoughts as output (both
    are billed as output), cached content tokens, with the event's ``model_version``."""
    meta = event.usage_metadata
    if meta is None:
        return None
    thoughts = meta.thoughts_token_count or 0
    return reported_usage(
        input_tokens=(meta.prompt_token_count or 0) + (meta.tool_use_prompt_token_count or 0),
        output_tokens=(meta.candidates_token_count or 0) + thoughts,
        cached_tokens=meta.cached_content_token_count or 0,
        reasoning_tokens=thoughts,
        model=event.model_version,
    )


def _message(event: Event) -> tuple[NewMessage, str | None]:
    """The message an event is stored as, and the title its text gives a session (a user's
    text only). The event itself is kept whole in metadata."""
    parts = list(event.content.parts or []) if event.content else []
    texts = [p.text for p in parts if p.text and not p.thought]
    answers = [p.function_response for p in parts if p.function_response]
    if texts:
        text = "\n".join(texts)
    else:
        calls = [
            f"{p.function_call.name}({json.dumps(p.function_call.args or {}, default=str)})"
            for p in parts
            if p.function_call
        ]
        results = [f"{a.name} → {json.dumps(a.response or {}, default=str)}" for a in answers]
        text = "\n".join(calls + results)
    if answers:
        role = "tool"
    elif event.author == "user":
        role = "user"
    else:
        role = "assistant"
    content, _ = excerpt(text)
    whole = json.loads(event.model_dump_json(exclude_none=True))
    message = NewMessage(
        role=role,
        content=content,
        agent_id=event.author if role != "user" and LABEL_RE.fullmatch(event.author) else None,
        metadata=keep_whole(EVENT_KEY, whole),
        usage=_usage(event),
    )
    return message, auto_title(text) if role == "user" else None
