"""Read Google ADK ``DatabaseSessionService`` tables (``--from adk URL``).

ADK's current schema (v1, ``adk_internal_metadata``): ``sessions(app_name, user_id, id,
state JSON, create_time, update_time)``, ``events(id, app_name, user_id, session_id,
invocation_id, timestamp, event_data JSON)`` where ``event_data`` is the event's
``model_dump(exclude_none=True, mode="json")``, ``app_states(app_name, state)`` and
``user_states(app_name, user_id, state)``. (The older v0 schema, events with pickled
actions, is refused: ADK's own migration upgrades it.)

Each ADK session becomes an ADK session of ``store.adk`` (the one
``SessionkeeperSessionService`` reads; store id as that service gives it), created with the
source's session state and its app's and user's state, then its events appended in the
order ADK reads them (timestamp, then id), each as the service stores one: the event whole
in metadata, its text as content. Events are appended without re-applying their state
deltas (the state given at creation is already what they made), so the state read back is
the source's. Nothing here imports google-adk: events stay JSON dicts.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from sessionkeeper.errors import InvalidInput, SessionkeeperError
from sessionkeeper.integrations._common import auto_title, excerpt, keep_whole
from sessionkeeper.models import LABEL_RE, NewMessage
from sessionkeeper.store.adk import EVENT_KEY, AdkKey, Scopes
from sessionkeeper.transfer.foreign_reader import Count, Counts
from sessionkeeper.transfer.records import Failed, Item, Replayed
from sessionkeeper.transfer.sources import Source, require_table, to_time

KIND = "adk"
WHAT = "a Google ADK DatabaseSessionService database"


class AdkImport:
    """The sessions of one ADK DatabaseSessionService database."""

    kind = KIND

    def __init__(self, source: Source) -> None:
        self.source = source
        self.label = source.label

    @classmethod
    async def open(cls, source: Source) -> AdkImport:
        try:
            await require_table(
                source, "sessions", {"app_name", "user_id", "id", "state", "update_time"}, WHAT
            )
            await require_table(source, "events", {"id", "app_name", "user_id", "session_id"}, WHAT)
            columns = await source.columns("events")
            if "event_data" not in columns:
                if "actions" in columns:
                    raise InvalidInput(
                        f"{source.label} has ADK's old v0 schema (events with pickled actions): "
                        "upgrade it with ADK's migration (google.adk.sessions.migration) first"
                    )
                raise InvalidInput(f"{source.label}: table 'events' has no event_data: not {WHAT}")
            await require_table(source, "events", {"invocation_id", "timestamp"}, WHAT)
            await require_table(source, "app_states", {"app_name", "state"}, WHAT)
            await require_table(source, "user_states", {"app_name", "user_id", "state"}, WHAT)
        except BaseException:
            await source.close()
            raise
        return cls(source)

    async def close(self) -> None:
        await self.source.close()

    async def count(self) -> Counts:
        (sessions,) = (await self.source.fetch("SELECT count(*) FROM sessions"))[0]
        (events,) = (await self.source.fetch("SELECT count(*) FROM events"))[0]
        (apps,) = (await self.source.fetch("SELECT count(*) FROM app_states"))[0]
        (users,) = (await self.source.fetch("SELECT count(*) FROM user_states"))[0]
        return Counts(
            sessions=int(sessions),
            messages=int(events),
            other={"app_states": int(apps), "user_states": int(users)},
        )

    async def items(self, count: Count) -> AsyncIterator[Item]:
        apps = {
            a: _json(s)
            for a, s in await self.source.fetch("SELECT app_name, state FROM app_states")
        }
        users = {
            (a, u): _json(s)
            for a, u, s in await self.source.fetch(
                "SELECT app_name, user_id, state FROM user_states"
            )
        }
        rows = await self.source.fetch(
            "SELECT app_name, user_id, id, state, update_time FROM sessions"
            " ORDER BY app_name, user_id, id"
        )
        for app_name, user_id, adk_id, state, update_time in rows:
            key = AdkKey(app_name, user_id, adk_id)
            where = f"{self.label} app {app_name} user {user_id} session {adk_id}"
            try:
                events = await self._events(key, where)
                scopes = Scopes(
                    _object(_json(state), f"{where} state"),
                    _object(apps.get(app_name) or {}, f"{where} app state"),
                    _object(users.get((app_name, user_id)) or {}, f"{where} user state"),
                )
                updated = to_time(update_time, f"{where} update_time").timestamp()
            except SessionkeeperError as exc:
                yield Failed(where, exc.message, adk_id)
                continue
            yield Replayed(
                adk_id,
                _writer(key, scopes, updated, events),
                where,
                exists=_exists(key),
                remove=_remove(key),
            )

    async def _events(self, key: AdkKey, where: str) -> list[dict[str, Any]]:
        rows = await self.source.fetch(
            "SELECT id, invocation_id, timestamp, event_data FROM events"
            " WHERE app_name = :a AND user_id = :u AND session_id = :s ORDER BY timestamp, id",
            {"a": key.app_name, "u": key.user_id, "s": key.adk_id},
        )
        events = []
        for event_id, invocation_id, stamp, data in rows:
            event = _object(_json(data) or {}, f"{where} event {event_id}")
            timestamp = event.get("timestamp")
            if timestamp is None:
                timestamp = to_time(stamp, f"{where} event {event_id} timestamp").timestamp()
            # As ADK's to_event: the columns' id and invocation id, the payload's exact time.
            events.append(
                {**event, "id": event_id, "invocation_id": invocation_id, "timestamp": timestamp}
            )
        return events


def _writer(key: AdkKey, scopes: Scopes, updated: float, events: list[dict[str, Any]]) -> Any:
    async def write(store: Any) -> int:
        first = events[0]["timestamp"] if events else updated
        view = await store.adk.create(key, scopes, update_time=first)
        if view is None:
            raise InvalidInput(f"ADK session {key.adk_id} exists already")
        none = Scopes({}, {}, {})
        for event in events:
            message, title = event_message(event)
            await store.adk.append(key, message, none, update_time=event["timestamp"], title=title)
        return len(events)

    return write


def _exists(key: AdkKey) -> Any:
    async def exists(store: Any) -> bool:
        return await store.adk.get(key, last=0) is not None

    return exists


def _remove(key: AdkKey) -> Any:
    async def remove(store: Any) -> object:
        return await store.adk.delete(key)

    return remove


def event_message(event: dict[str, Any]) -> tuple[NewMessage, str | None]:
    """The message ``SessionkeeperSessionService.append_event`` stores for an event, from the
    event's JSON (its ``_message``, on dicts): the text, or the calls and results written out;
    the role by author and function responses; the event whole in metadata."""
    content = event.get("content") or {}
    parts = [p for p in (content.get("parts") or []) if isinstance(p, dict)]
    texts = [p["text"] for p in parts if p.get("text") and not p.get("thought")]
    answers = [p["function_response"] for p in parts if p.get("function_response")]
    if texts:
        text = "\n".join(texts)
    else:
        calls = [
            f"{p['function_call'].get('name')}({json.dumps(p['function_call'].get('args') or {})})"
            for p in parts
            if p.get("function_call")
        ]
        results = [f"{a.get('name')} → {json.dumps(a.get('response') or {})}" for a in answers]
        text = "\n".join(calls + results)
    author = event.get("author")
    if answers:
        role = "tool"
    elif author == "user":
        role = "user"
    else:
        role = "assistant"
    agent = (
        author
        if role != "user" and isinstance(author, str) and LABEL_RE.fullmatch(author)
        else None
    )
    message = NewMessage(
        role=role,
        content=excerpt(text)[0],
        agent_id=agent,
        metadata=keep_whole(EVENT_KEY, event),
    )
    return message, auto_title(text) if role == "user" else None


def _json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode()
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError as exc:
            raise InvalidInput(f"not JSON: {exc}") from exc
    return value


def _object(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} is not a JSON object")
    return value
