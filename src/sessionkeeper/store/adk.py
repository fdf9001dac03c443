"""Google ADK session storage: the API ``store.adk`` gives the ADK integration.

The integration (``integrations/adk.py``) speaks ADK: ``Event`` objects, state prefixes.
This module stores, with the Store's rules (text and JSON checked, one error hierarchy,
events validated as any append), on the Store's own backend (its ``adk`` part, in
``backends/frameworks/``). It knows nothing of ADK's classes: events arrive as JSON-ready
dicts and leave as JSON text.

An ADK session is an ordinary store session (type ``adk``; its agent is the app name, with
``_`` for characters an agent id cannot hold): listed, searched, windowed, shown in the
dashboard, purged and pruned like any other, and deleting it deletes its ADK state (the
backend deletes a session's rows in every table). Its store id is the ADK id when that is
a valid, unused session id, else ``adk-`` and a digest of the ADK key: ADK ids are unique
per app and user only, and may hold any text.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from hashlib import sha256
from typing import Any

from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import (
    LABEL_RE,
    RESERVED_SESSION_IDS,
    SESSION_ID_RE,
    NewMessage,
)
from sessionkeeper.store import idempotency, validate
from sessionkeeper.store.backends.frameworks.adk_base import (
    EVENT_KEY,
    LIST_PAGE,
    SESSION_TYPE,
    AdkAppend,
    AdkKey,
    AdkPart,
    AdkRow,
    NewAdkSession,
)

__all__ = ["EVENT_KEY", "SESSION_TYPE", "AdkKey", "AdkSessions", "AdkView", "Scopes"]

MAX_NAME_LENGTH = 256
_NOT_LABEL = re.compile(r"[^A-Za-z0-9._:@/+-]")


@dataclass(frozen=True, slots=True)
class Scopes:
    """State split by scope, keys without their prefix: the session's, the app's, the user's."""

    session: Mapping[str, Any]
    app: Mapping[str, Any]
    user: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class AdkView:
    """An ADK session as stored: its key, store session id, state by scope, ADK's
    ``last_update_time`` and (from ``get``) its events as JSON text, oldest first."""

    key: AdkKey
    session_id: str
    state: dict[str, Any]
    app_state: dict[str, Any]
    user_state: dict[str, Any]
    update_time: float
    events: list[str]


class AdkSessions:
    """Create, read, list, delete ADK sessions and append their events."""

    def __init__(self, part: AdkPart, count_tokens: Callable[[str], int]) -> None:
        self._part = part
        self._count = count_tokens

    async def create(
        self, key: AdkKey, scopes: Scopes, *, update_time: float, title: str | None = None
    ) -> AdkView | None:
        """A new ADK session with its initial state (app and user scopes merged into the
        shared state). None when the key exists already."""
        _check_key(key)
        session_state = _state(scopes.session, "state")
        app, user = _state(scopes.app, "app state"), _state(scopes.user, "user state")
        meta = {"adk": {"app_name": key.app_name, "user_id": key.user_id, "id": key.adk_id}}
        new = NewAdkSession(
            key=key,
            session_ids=_store_ids(key),
            agent_id=_agent(key.app_name),
            title=validate.title(title),
            metadata=validate.metadata(meta) or {},
            state=session_state.json if session_state else None,
            app_delta=app,
            user_delta=user,
            update_time=_time(update_time),
            now=datetime.now(UTC),
        )
        row = await self._part.create(new)
        return None if row is None else _view(row, [])

    async def get(
        self, key: AdkKey, *, last: int | None = None, after: float | None = None
    ) -> AdkView | None:
        """The session with its newest ``last`` events (all when None; by append order)
        whose time is at least ``after`` (seconds since the epoch)."""
        _check_key(key)
        if last is not None:
            last = validate.bounded_int(last, "num_recent_events", 0)
        since = None if after is None else _moment(after, "after_timestamp")
        loaded = await self._part.get(key, last=last, after=since)
        return None if loaded is None else _view(loaded.row, loaded.events)

    async def pages(
        self, app_name: str, user_id: str | None = None
    ) -> AsyncIterator[list[AdkView]]:
        """The app's sessions (of one user, or all), oldest update first, a page at a time.
        Views of one page share their app and user state dicts (read once per page)."""
        _name(app_name, "app_name")
        if user_id is not None:
            _name(user_id, "user_id")
        after: tuple[float, str, str] | None = None
        while True:
            page = await self._part.page(app_name, user_id, after, LIST_PAGE)
            app = _load(page.app_state)
            users = {user: _load(text) for user, text in page.user_states.items()}
            none: dict[str, Any] = {}
            yield [
                AdkView(
                    row.key,
                    row.session_id,
                    _load(row.state),
                    app,
                    users.get(row.key.user_id, none),
                    row.update_time,
                    [],
                )
                for row in page.rows
            ]
            if len(page.rows) < LIST_PAGE:
                return
            last = page.rows[-1]
            after = (last.update_time, last.key.user_id, last.key.adk_id)

    async def delete(self, key: AdkKey) -> bool:
        """Delete the session (its store session, messages and state). False if missing."""
        _check_key(key)
        return await self._part.delete(key)

    async def user_state(self, app_name: str, user_id: str) -> dict[str, Any]:
        _name(app_name, "app_name")
        _name(user_id, "user_id")
        return _load(await self._part.user_state(app_name, user_id))

    async def append(
        self,
        key: AdkKey,
        message: NewMessage,
        delta: Scopes,
        *,
        update_time: float,
        title: str | None = None,
        idempotency_key: str | None = None,
    ) -> bool:
        """Append an event (a message holding it, dated ``update_time``: the event's time)
        and apply its state delta, atomically. False when the session does not exist.
        ``idempotency_key`` (the integration passes one derived from the event's id): an
        event sent again with it stores nothing and applies no delta again (True); the same
        key with another event raises ``IdempotencyKeyReused``."""
        _check_key(key)
        seconds = _time(update_time)
        at = _moment(seconds, "timestamp")
        row = validate.message_row(replace(message, created_at=at), self._count)
        claim = None
        if idempotency_key is not None:
            claim = idempotency.Claim(
                idempotency.key(idempotency_key), idempotency.append_fingerprint([row])
            )
        append = AdkAppend(
            key=key,
            message=row,
            title=validate.title(title),
            session_delta=_state(delta.session, "state_delta"),
            app_delta=_state(delta.app, "state_delta"),
            user_delta=_state(delta.user, "state_delta"),
            update_time=seconds,
            now=datetime.now(UTC),
            claim=claim,
        )
        stored = await self._part.append(append)
        if isinstance(stored, bool):
            return stored
        assert claim is not None
        idempotency.check(stored, claim, "event")
        return True


# ── checks ──────────────────────────────────────────────────────────────────


def _name(value: Any, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{field} must be a non-empty string", field=field)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidInput(
            f"{field} is {len(value)} characters; the limit is {MAX_NAME_LENGTH}", field=field
        )
    return validate.text(value, field)


def _check_key(key: AdkKey) -> None:
    _name(key.app_name, "app_name")
    _name(key.user_id, "user_id")
    _name(key.adk_id, "session_id")


def _state(value: Mapping[str, Any], field: str) -> validate.Checked:
    """State as stored: by the rules of metadata (standard JSON, at most MAX_METADATA_BYTES),
    with its JSON text made by that check."""
    return validate.checked_metadata(dict(value), field)


def _time(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidInput("a timestamp must be a number of seconds", field="timestamp")
    _moment(value, "timestamp")
    return float(value)


def _moment(value: float, field: str) -> datetime:
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidInput(
            f"{field} {value!r} is not a time in years 1-9999", field=field
        ) from None


def _agent(app_name: str) -> str:
    """The store agent of an app: its name, or where that is not a valid agent id, the name
    with other characters as ``_`` (the name itself is kept in the session's metadata)."""
    if LABEL_RE.fullmatch(app_name):
        return app_name
    label = _NOT_LABEL.sub("_", app_name)[:64]
    return label if LABEL_RE.fullmatch(label) else "adk"


def _store_ids(key: AdkKey) -> tuple[str, ...]:
    digest = sha256("\0".join((key.app_name, key.user_id, key.adk_id)).encode()).hexdigest()
    fallback = f"adk-{digest[:40]}"
    usable = SESSION_ID_RE.fullmatch(key.adk_id) and key.adk_id not in RESERVED_SESSION_IDS
    if usable and key.adk_id != fallback:
        return (key.adk_id, fallback)
    return (fallback,)


def _load(text: str | None) -> dict[str, Any]:
    value = json.loads(text) if text else {}
    return value if isinstance(value, dict) else {}


def _view(row: AdkRow, events: list[str]) -> AdkView:
    return AdkView(
        row.key,
        row.session_id,
        _load(row.state),
        _load(row.app_state),
        _load(row.user_state),
        row.update_time,
        events,
    )


def agent_of_app(app_name: str) -> str:
    """The agent an app's ADK sessions are stored under (what ``forget_user(agent_id=…)``
    matches an app's user state by)."""
    return _agent(app_name)
