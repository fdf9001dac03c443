"""What the ADK session storage of each backend takes and gives (see ``store/adk.py``).

Rows carry state as JSON *text*, exactly as stored: the store layer parses and checks it,
the backends only move it. Events are messages whose metadata holds the ADK event whole
(``adk_event``, or ``adk_event_json`` as text where jsonb would alter a number): a read
gives back the event's JSON text and never builds ``Message`` objects.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sessionkeeper.store.idempotency import Claim, Recorded

EVENT_KEY = "adk_event"
SESSION_TYPE = "adk"
TABLES = ("adk_sessions", "adk_app_state", "adk_user_state")
SESSION_TABLES = ("adk_sessions",)  # keyed by session: their rows go with the session
# This part's bit in ``sessions.held_by``: set once an ADK session holds session state (an
# ADK session without state and events is a ghost, as any unused session).
HOLDER_BIT = 2
LIST_PAGE = 500


@dataclass(frozen=True, slots=True)
class AdkKey:
    """How ADK names a session: unique per app and user, not globally."""

    app_name: str
    user_id: str
    adk_id: str


@dataclass(frozen=True, slots=True)
class NewAdkSession:
    key: AdkKey
    session_ids: tuple[str, ...]  # store session ids to try, in order (the first free one)
    agent_id: str | None
    title: str | None
    metadata: dict[str, Any]
    state: str | None  # session-scoped state, JSON text (None: empty)
    app_delta: dict[str, Any]
    user_delta: dict[str, Any]
    update_time: float
    now: datetime


@dataclass(frozen=True, slots=True)
class AdkAppend:
    key: AdkKey
    message: dict[str, Any]  # a validated message row (validate.message_row)
    title: str | None  # the session's title if it has none yet
    session_delta: dict[str, Any]
    app_delta: dict[str, Any]
    user_delta: dict[str, Any]
    update_time: float
    now: datetime
    claim: Claim | None = None  # the event's idempotency key (from its ADK id), written with it


@dataclass(frozen=True, slots=True)
class AdkRow:
    """One ADK session as stored, its shared state alongside (JSON text, None when none)."""

    key: AdkKey
    session_id: str
    state: str | None
    update_time: float
    app_state: str | None
    user_state: str | None


@dataclass(frozen=True, slots=True)
class AdkLoaded:
    row: AdkRow
    events: list[str]  # event JSON texts, oldest first


@dataclass(frozen=True, slots=True)
class AdkPage:
    rows: list[AdkRow]
    user_states: dict[str, str]  # user id -> JSON text, for the users of ``rows``
    app_state: str | None


def page_of(app_name: str, found: Sequence[Sequence[Any]]) -> AdkPage:
    """A page from listing rows: (session_id, state, update_time, user_id, adk_id, user
    state, app state)."""
    rows = [AdkRow(AdkKey(app_name, r[3], r[4]), r[0], r[1], r[2], None, None) for r in found]
    users = {r[3]: r[5] for r in found if r[5] is not None}
    return AdkPage(rows, users, found[0][6] if found else None)


class AdkPart(Protocol):
    """ADK session storage on one database, built by its backend (``Backend.adk``)."""

    session_tables: tuple[str, ...]  # keyed by session: their rows go with the session
    ghost_tables: tuple[str, ...]  # of those, the ones that may hold rows of an unmarked one

    async def create(self, new: NewAdkSession) -> AdkRow | None: ...

    async def get(
        self, key: AdkKey, *, last: int | None, after: datetime | None
    ) -> AdkLoaded | None: ...

    async def page(
        self, app_name: str, user_id: str | None, after: tuple[float, str, str] | None, limit: int
    ) -> AdkPage: ...

    async def delete(self, key: AdkKey) -> bool: ...

    async def user_state(self, app_name: str, user_id: str) -> str | None: ...

    async def append(self, append: AdkAppend) -> bool | Recorded:
        """Append the event and apply its deltas; False when the session does not exist.
        With a ``claim``: if the session's key exists, what it recorded (nothing written)."""


def merged(old: str | None, delta: dict[str, Any]) -> str | None:
    """``old`` (JSON text of an object) updated with ``delta`` as ``dict.update`` does;
    None for an empty result."""
    state: dict[str, Any] = json.loads(old) if old else {}
    state.update(delta)
    return dump(state)


def dump(state: dict[str, Any]) -> str | None:
    return json.dumps(state, ensure_ascii=False, allow_nan=False) if state else None


# State key prefixes that are not the session's own (``app:``, ``user:``, ``temp:``).
_SHARED_PREFIXES = ("app:", "user:", "temp:")


def delta_of(delta: str | None, event: str | None) -> dict[str, Any]:
    """An event's state delta from what a read of it gives: the delta's JSON text (read out
    of an event kept as JSON), else the whole event's text (one kept as text); {} for none."""
    if delta is not None:
        found = json.loads(delta)
    elif event:
        whole = json.loads(event)
        actions = whole.get("actions") if isinstance(whole, dict) else None
        found = actions.get("state_delta") if isinstance(actions, dict) else None
    else:
        found = None
    return found if isinstance(found, dict) else {}


def state_at(
    current: str | None, deltas: Sequence[tuple[int, dict[str, Any]]], cut: int
) -> str | None:
    """The session state (JSON text) of an ADK session whose events after seq ``cut`` are
    undone, by ADK's own rewind rule (``google.adk.sessions._rewind_utils.
    compute_state_delta_for_rewind``): the kept events' session-scoped deltas replayed from
    empty (a None value removes the key) give the state at the cut; every key of it takes
    that value, every key an undone event wrote that the cut state lacks is removed (ADK
    sets it to None: it can only speak in deltas), and every other key of ``current`` (a
    create-time key no undone event touched) stays. ``app:`` and ``user:`` state are shared
    and not the session's; ``temp:`` is never stored. ``deltas``: (seq, state delta) of the
    session's events in seq order (events without a delta may be left out)."""
    at_cut: dict[str, Any] = {}
    undone: set[str] = set()
    for seq, delta in deltas:
        for key, value in delta.items():
            if key.startswith(_SHARED_PREFIXES):
                continue
            if seq > cut:
                undone.add(key)
            elif value is None:
                at_cut.pop(key, None)
            else:
                at_cut[key] = value
    state: dict[str, Any] = json.loads(current) if current else {}
    state.update(at_cut)
    for key in undone - at_cut.keys():
        state.pop(key, None)
    return dump(state)


def event_texts(values: Sequence[str | None]) -> list[str]:
    """Newest-first event texts as read → oldest first, messages that are not events left
    out (text appended to the session by other means)."""
    return [v for v in reversed(values) if v is not None]
