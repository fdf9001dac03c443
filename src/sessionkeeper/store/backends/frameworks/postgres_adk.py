"""ADK session storage on PostgreSQL, run by the PostgreSQL backend (see ``adk_base.py``).

An append is one transaction whose first statement bumps the session row (as every append
does: its lock serialises writers to the session), inserts the event as a message and
touches the ADK row, returning the session's state as it is under that lock; a state delta
is then merged and written, and the app's and user's state rows are merged under their own
row locks (``ON CONFLICT DO UPDATE`` locks the row it returns). Locks are always taken in
the order session, ADK row, app, user, so concurrent appends and creates cannot deadlock.
Nothing is ever refused as stale: the caller never retries.

``get`` is one statement: the ADK row, the app's and user's state and the newest events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sessionkeeper.store.backends.frameworks.adk_base import (
    EVENT_KEY,
    HOLDER_BIT,
    SESSION_TABLES,
    SESSION_TYPE,
    AdkAppend,
    AdkKey,
    AdkLoaded,
    AdkPage,
    AdkRow,
    NewAdkSession,
    delta_of,
    event_texts,
    merged,
    page_of,
    state_at,
)
from sessionkeeper.store.backends.postgres_conn import Connections, DeleteRows
from sessionkeeper.store.backends.statements import (
    MESSAGE_COLUMNS,
    SESSION_COLUMNS,
    USAGE_COLUMNS,
    usage_values,
)
from sessionkeeper.store.idempotency import Recorded
from sessionkeeper.store.terms import tsvector

_KEY = "app_name = $1 AND user_id = $2 AND adk_id = $3"
_SHARED = """
    (SELECT state::text FROM adk_app_state WHERE app_name = a.app_name),
    (SELECT state::text FROM adk_user_state
      WHERE app_name = a.app_name AND user_id = a.user_id)
"""
_ROW = (
    f"SELECT a.session_id, a.state::text, a.update_time, {_SHARED} FROM adk_sessions a WHERE {_KEY}"
)
_EVENT = f"COALESCE((m.metadata -> '{EVENT_KEY}')::text, m.metadata ->> '{EVENT_KEY}_json')"
_INSERT_SESSION = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}, last_seq, held_by) "
    f"VALUES ($1, $2, $3, '{SESSION_TYPE}', 'active', $4::jsonb, $5, $5, NULL, NULL, 0, 0, $7, "
    "NULL, NULL, 0, $6) "
    "ON CONFLICT (session_id) DO NOTHING RETURNING session_id"
)
_INSERT_ADK = (
    "INSERT INTO adk_sessions (session_id, app_name, user_id, adk_id, state, update_time) "
    "VALUES ($1, $2, $3, $4, $5::json, $6) "
    "ON CONFLICT (app_name, user_id, adk_id) DO NOTHING RETURNING session_id"
)
_APPEND = f"""
WITH a AS (SELECT session_id FROM adk_sessions WHERE {_KEY}),
bump AS (
    UPDATE sessions s
    SET last_seq = last_seq + 1, message_count = message_count + 1,
        token_count = token_count + $4, updated_at = $5, last_message_at = $5,
        title = COALESCE(title, $6), held_by = held_by | $15
    FROM a WHERE s.session_id = a.session_id
    RETURNING s.session_id, s.last_seq
), msg AS (
    INSERT INTO messages ({MESSAGE_COLUMNS}, tsv, {USAGE_COLUMNS})
    SELECT bump.session_id, bump.last_seq, $7, $8, $9, $10, $11, $12::jsonb, $13,
           $16::tsvector, $17, $18, $19, $20, $21, $22
    FROM bump
), touched AS (
    UPDATE adk_sessions x SET update_time = $14
    FROM bump WHERE x.session_id = bump.session_id
    RETURNING x.state::text AS state
)
SELECT bump.session_id, (SELECT state FROM touched) FROM bump
"""
_UPSERT_APP = (
    "INSERT INTO adk_app_state (app_name, state, update_time) VALUES ($1, '{}', $2) "
    "ON CONFLICT (app_name) DO UPDATE SET update_time = EXCLUDED.update_time "
    "RETURNING state::text"
)
_UPSERT_USER = (
    "INSERT INTO adk_user_state (app_name, user_id, state, update_time) "
    "VALUES ($1, $2, '{}', $3) "
    "ON CONFLICT (app_name, user_id) DO UPDATE SET update_time = EXCLUDED.update_time "
    "RETURNING state::text"
)


# Forks and rewinds (run inside the PostgreSQL backend's fork and rewind transactions).
_OWN = "SELECT app_name, user_id, state::text FROM adk_sessions WHERE session_id = $1"
# The events' state deltas only (an event kept as text comes whole), those with one.
_DELTAS = (
    "SELECT seq, d, j FROM ("
    f"SELECT seq, (metadata -> '{EVENT_KEY}' -> 'actions' -> 'state_delta')::text AS d, "
    f"metadata ->> '{EVENT_KEY}_json' AS j "
    "FROM messages WHERE session_id = $1) x "
    "WHERE (d IS NOT NULL AND d <> '{}') OR j IS NOT NULL ORDER BY seq"
)
_COPY_KEY = (
    "INSERT INTO adk_sessions (session_id, app_name, user_id, adk_id, state, update_time) "
    "VALUES ($1, $2, $3, $6, $4::json, $5)"
)
_HOLD = "UPDATE sessions SET held_by = held_by | $2 WHERE session_id = $1"
_RELEASE = "UPDATE sessions SET held_by = held_by & ~($2::smallint) WHERE session_id = $1"
# A copy's metadata names its own ADK id (create writes {"adk": {app_name, user_id, id}}).
_RENAME = (
    "UPDATE sessions SET metadata = jsonb_set(metadata, '{adk,id}', to_jsonb($2::text)) "
    "WHERE session_id = $1 AND jsonb_typeof(metadata -> 'adk') = 'object'"
)


async def _copy_key(
    conn: Any, own: Any, target: str, state: str | None, update_time: float, rename: bool
) -> None:
    """``target`` (a fork or branch just written) becomes an ADK session of the same app and
    user, its ADK id its session id, holding ``state``."""
    await conn.execute(_COPY_KEY, target, own[0], own[1], state, update_time, target)
    if state:
        await conn.execute(_HOLD, target, HOLDER_BIT)
    if rename:
        await conn.execute(_RENAME, target, target)


async def _deltas(conn: Any, session_id: str) -> list[tuple[int, dict[str, Any]]]:
    return [(r[0], delta_of(r[1], r[2])) for r in await conn.fetch(_DELTAS, session_id)]


async def fork_rows(
    conn: Any, source: str, target: str, cut: int, update_time: float, *, rename: bool
) -> None:
    """When ``source`` is an ADK session, its fork ``target`` at ``cut`` is one too, with
    the state the events it keeps give (``state_at``); nothing when it is not."""
    own = await conn.fetchrow(_OWN, source)
    if own is None:
        return
    state = state_at(own[2], await _deltas(conn, source), cut)
    await _copy_key(conn, own, target, state, update_time, rename)


async def rewind_rows(
    conn: Any, session_id: str, branch: str, cut: int, update_time: float
) -> None:
    """When ``session_id`` is an ADK session rewound to ``cut`` (before its tail moves to
    ``branch``; the caller holds the session row's lock, as every ADK append takes it
    first): the branch is an ADK session with the state as it was, and the session's state
    is what its kept events give (``state_at``)."""
    own = await conn.fetchrow(_OWN, session_id)
    if own is None:
        return
    await _copy_key(conn, own, branch, own[2], update_time, True)
    state = state_at(own[2], await _deltas(conn, session_id), cut)
    await conn.execute(
        "UPDATE adk_sessions SET state = $2::json, update_time = $3 WHERE session_id = $1",
        session_id,
        state,
        update_time,
    )
    if not state:  # no state left: with no events either, a ghost like any unused session
        await conn.execute(_RELEASE, session_id, HOLDER_BIT)


class _Taken(Exception):
    """The ADK key was created meanwhile: undo the transaction."""


class _Replayed(Exception):
    """The event's idempotency key was written before: undo the transaction."""

    def __init__(self, recorded: Recorded) -> None:
        self.recorded = recorded


# After the bump (which holds the session row's lock, so a send of the same key in flight
# has committed): the event's key row, unless the key exists.
_CLAIM = """
INSERT INTO idempotency_keys (session_id, kind, idem_key, fingerprint, first_seq, seq_count,
                              created_at)
SELECT session_id, 'append', $2, $3, last_seq, 1, $4 FROM sessions WHERE session_id = $1
ON CONFLICT (session_id, kind, idem_key) DO NOTHING
RETURNING 1
"""
_RECORDED = (
    "SELECT session_id, fingerprint, first_seq, seq_count FROM idempotency_keys "
    "WHERE session_id = $1 AND kind = 'append' AND idem_key = $2"
)


async def _shared(conn: Any, key: AdkKey, new: AdkAppend | NewAdkSession) -> None:
    """Merge the app's and the user's state deltas, each under its row lock."""
    t = new.update_time
    if new.app_delta:
        old = await conn.fetchval(_UPSERT_APP, key.app_name, t)
        await conn.execute(
            "UPDATE adk_app_state SET state = $2::json WHERE app_name = $1",
            key.app_name,
            merged(old, new.app_delta) or "{}",
        )
    if new.user_delta:
        old = await conn.fetchval(_UPSERT_USER, key.app_name, key.user_id, t)
        await conn.execute(
            "UPDATE adk_user_state SET state = $3::json WHERE app_name = $1 AND user_id = $2",
            key.app_name,
            key.user_id,
            merged(old, new.user_delta) or "{}",
        )


def _row(key: AdkKey, r: Any) -> AdkRow:
    return AdkRow(key, r[0], r[1], r[2], r[3], r[4])


def _held(state: object) -> int:
    """The session's ``held_by`` bit for ADK: set once it holds session state."""
    return HOLDER_BIT if state else 0


class PostgresAdk:
    session_tables: tuple[str, ...] = SESSION_TABLES
    ghost_tables: tuple[str, ...] = SESSION_TABLES  # a key row, no state yet

    def __init__(self, connections: Connections, delete_rows: DeleteRows) -> None:
        self.b = connections
        self._delete_rows = delete_rows  # a session's rows in every table (the backend's)

    async def create(self, new: NewAdkSession) -> AdkRow | None:
        key = new.key
        k = (key.app_name, key.user_id, key.adk_id)
        try:
            async with self.b._transaction() as conn:
                if await conn.fetchval(f"SELECT 1 FROM adk_sessions WHERE {_KEY}", *k):
                    return None
                for session_id in new.session_ids:
                    got = await conn.fetchval(
                        _INSERT_SESSION,
                        session_id,
                        new.agent_id,
                        new.title,
                        new.metadata,
                        new.now,
                        _held(new.state),
                        key.user_id,  # the session is for its ADK user
                    )
                    if got is not None:
                        break
                else:
                    return None
                if not await conn.fetchval(_INSERT_ADK, session_id, *k, new.state, new.update_time):
                    raise _Taken
                await _shared(conn, key, new)
                return _row(key, await conn.fetchrow(_ROW, *k))
        except _Taken:
            return None

    async def get(
        self, key: AdkKey, *, last: int | None, after: datetime | None
    ) -> AdkLoaded | None:
        events = "m.session_id = a.session_id"
        args: list[Any] = [key.app_name, key.user_id, key.adk_id]
        if after is not None:
            args.append(after)
            events += f" AND m.created_at >= ${len(args)}"
        limit = ""
        if last is not None:
            limit = f"LIMIT {int(last):d}"
        sql = (
            f"SELECT a.session_id, a.state::text, a.update_time, {_SHARED}, "
            f"ARRAY(SELECT {_EVENT} FROM messages m WHERE {events} ORDER BY m.seq DESC {limit}) "
            f"FROM adk_sessions a WHERE {_KEY}"
        )
        async with self.b._conn() as conn:
            found = await conn.fetchrow(sql, *args)
        if found is None:
            return None
        return AdkLoaded(_row(key, found), event_texts(found[5]))

    async def page(
        self, app_name: str, user_id: str | None, after: tuple[float, str, str] | None, limit: int
    ) -> AdkPage:
        args: list[Any] = [app_name]
        where = "a.app_name = $1"
        if user_id is not None:
            args.append(user_id)
            where += " AND a.user_id = $2"
        if after is not None:
            n = len(args)
            args.extend(after)
            where += f" AND (a.update_time, a.user_id, a.adk_id) > (${n + 1}, ${n + 2}, ${n + 3})"
        # One statement, one snapshot: each row brings its user's state, the app's comes once.
        sql = (
            "SELECT a.session_id, a.state::text, a.update_time, a.user_id, a.adk_id, "
            "u.state::text, (SELECT state::text FROM adk_app_state WHERE app_name = $1) "
            "FROM adk_sessions a LEFT JOIN adk_user_state u "
            "ON u.app_name = a.app_name AND u.user_id = a.user_id "
            f"WHERE {where} ORDER BY a.update_time, a.user_id, a.adk_id LIMIT {int(limit):d}"
        )
        async with self.b._conn() as conn:
            found = await conn.fetch(sql, *args)
        return page_of(app_name, found)

    async def delete(self, key: AdkKey) -> bool:
        async with self.b._transaction() as conn:
            gone = await conn.fetchval(
                "DELETE FROM sessions WHERE session_id = "
                f"(SELECT session_id FROM adk_sessions WHERE {_KEY}) RETURNING session_id",
                key.app_name,
                key.user_id,
                key.adk_id,
            )
            if gone is not None:
                await self._delete_rows(conn, [gone])
        return gone is not None

    async def user_state(self, app_name: str, user_id: str) -> str | None:
        async with self.b._conn() as conn:
            found: str | None = await conn.fetchval(
                "SELECT state::text FROM adk_user_state WHERE app_name = $1 AND user_id = $2",
                app_name,
                user_id,
            )
        return found

    async def append(self, append: AdkAppend) -> bool | Recorded:
        try:
            return await self._append(append)
        except _Replayed as replayed:
            return replayed.recorded

    async def _append(self, append: AdkAppend) -> bool:
        key = append.key
        m = append.message
        claim = append.claim
        async with self.b._transaction() as conn:
            bumped = await conn.fetchrow(
                _APPEND,
                key.app_name,
                key.user_id,
                key.adk_id,
                m["token_count"],
                append.now,
                append.title,
                m["role"],
                m["content"],
                m["agent_id"],
                m["model"],
                m["token_count"],
                m["metadata"],
                m["created_at"],
                append.update_time,
                _held(append.session_delta),
                tsvector(m["content"]),
                *usage_values(m.get("usage")),
            )
            if bumped is None:
                return False
            if claim is not None:
                args = (bumped[0], claim.key)
                if await conn.fetchval(_CLAIM, *args, claim.fingerprint, append.now) is None:
                    raise _Replayed(Recorded(*await conn.fetchrow(_RECORDED, *args)))
            if append.session_delta:
                await conn.execute(
                    "UPDATE adk_sessions SET state = $2::json WHERE session_id = $1",
                    bumped[0],
                    merged(bumped[1], append.session_delta),
                )
            await _shared(conn, key, append)
        return True
