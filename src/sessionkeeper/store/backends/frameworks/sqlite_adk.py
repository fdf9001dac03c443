"""ADK session storage on SQLite, run by the SQLite backend (see ``adk_base.py``).

A create or an append is one ``BEGIN IMMEDIATE … COMMIT`` on the writer thread: the event
(a message, counters bumped as by any append), the session's state and the app's and
user's state change together, and writers are serialised, so a state merge never loses an
update and no caller ever needs to retry. ``get`` is a hot read on the calling thread: the
session row, its shared state and its newest events on one snapshot.
"""

from __future__ import annotations

import json
import sqlite3
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
from sessionkeeper.store.backends.sqlite_rows import INSERT_MESSAGE, message_params
from sessionkeeper.store.backends.sqlite_threads import Runner, read_txn
from sessionkeeper.store.backends.statements import SESSION_COLUMNS, sqlite_time
from sessionkeeper.store.idempotency import Recorded

_KEY = "app_name = ? AND user_id = ? AND adk_id = ?"
# An event's idempotency key (its ADK id): looked up and written in the append's transaction.
_RECORDED = (
    "SELECT k.session_id, k.fingerprint, k.first_seq, k.seq_count FROM idempotency_keys k "
    "JOIN adk_sessions a ON a.session_id = k.session_id "
    "WHERE a.app_name = ? AND a.user_id = ? AND a.adk_id = ? "
    "AND k.kind = 'append' AND k.idem_key = ?"
)
_CLAIM = (
    "INSERT INTO idempotency_keys (session_id, kind, idem_key, fingerprint, first_seq, "
    "seq_count, created_at) VALUES (?, 'append', ?, ?, ?, 1, ?)"
)
_INSERT_SESSION = (
    f"INSERT INTO sessions ({SESSION_COLUMNS}, last_seq, held_by) "
    f"VALUES (?, ?, ?, '{SESSION_TYPE}', 'active', ?, ?, ?, NULL, NULL, 0, 0, ?, NULL, NULL, 0, ?) "
    "ON CONFLICT (session_id) DO NOTHING"
)
_INSERT_ADK = (
    "INSERT INTO adk_sessions (session_id, app_name, user_id, adk_id, state, update_time) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)
_ROW = (
    "SELECT a.session_id, a.state, a.update_time, "
    "(SELECT state FROM adk_app_state WHERE app_name = a.app_name), "
    "(SELECT state FROM adk_user_state WHERE app_name = a.app_name AND user_id = a.user_id) "
    f"FROM adk_sessions a WHERE {_KEY}"
)
_EVENT = (
    f"COALESCE(json_extract(metadata, '$.{EVENT_KEY}'), "
    f"json_extract(metadata, '$.{EVENT_KEY}_json'))"
)
_BUMP = (
    "UPDATE sessions SET last_seq = last_seq + 1, message_count = message_count + 1, "
    "token_count = token_count + ?, updated_at = ?, last_message_at = ?, "
    "title = COALESCE(title, ?), held_by = held_by | ? "
    f"WHERE session_id = (SELECT session_id FROM adk_sessions WHERE {_KEY}) "
    "RETURNING session_id, last_seq"
)


# Forks and rewinds (run inside the SQLite backend's fork and rewind transactions).
_OWN = "SELECT app_name, user_id, state FROM adk_sessions WHERE session_id = ?"
# The events' state deltas only (an event kept as text comes whole), those with one.
_DELTAS = (
    "SELECT seq, d, j FROM ("
    f"SELECT seq, json_extract(metadata, '$.{EVENT_KEY}.actions.state_delta') AS d, "
    f"json_extract(metadata, '$.{EVENT_KEY}_json') AS j "
    "FROM messages WHERE session_id = ?) "
    "WHERE (d IS NOT NULL AND d <> '{}') OR j IS NOT NULL ORDER BY seq"
)
_HOLD = "UPDATE sessions SET held_by = held_by | ? WHERE session_id = ?"
_RELEASE = "UPDATE sessions SET held_by = held_by & ~? WHERE session_id = ?"
# A copy's metadata names its own ADK id (create writes {"adk": {app_name, user_id, id}}).
_RENAME = (
    "UPDATE sessions SET metadata = json_set(metadata, '$.adk.id', ?2) "
    "WHERE session_id = ?1 AND json_type(metadata, '$.adk') = 'object'"
)


def _deltas(conn: sqlite3.Connection, session_id: str) -> list[tuple[int, dict[str, Any]]]:
    return [(r[0], delta_of(r[1], r[2])) for r in conn.execute(_DELTAS, (session_id,))]


def _copy_key(
    conn: sqlite3.Connection,
    own: Any,
    target: str,
    state: str | None,
    update_time: float,
    rename: bool,
) -> None:
    """``target`` (a fork or branch just written) becomes an ADK session of the same app and
    user, its ADK id its session id, holding ``state``."""
    conn.execute(_INSERT_ADK, (target, own[0], own[1], target, state, update_time))
    if state:
        conn.execute(_HOLD, (HOLDER_BIT, target))
    if rename:
        conn.execute(_RENAME, (target, target))


def fork_rows(
    conn: sqlite3.Connection,
    source: str,
    target: str,
    cut: int,
    update_time: float,
    *,
    rename: bool,
) -> None:
    """When ``source`` is an ADK session, its fork ``target`` at ``cut`` is one too, with
    the state the events it keeps give (``state_at``); nothing when it is not."""
    own = conn.execute(_OWN, (source,)).fetchone()
    if own is None:
        return
    state = state_at(own[2], _deltas(conn, source), cut)
    _copy_key(conn, own, target, state, update_time, rename)


def rewind_rows(
    conn: sqlite3.Connection, session_id: str, branch: str, cut: int, update_time: float
) -> None:
    """When ``session_id`` is an ADK session rewound to ``cut`` (before its tail moves to
    ``branch``): the branch is an ADK session with the state as it was, and the session's
    state is what its kept events give (``state_at``)."""
    own = conn.execute(_OWN, (session_id,)).fetchone()
    if own is None:
        return
    _copy_key(conn, own, branch, own[2], update_time, True)
    state = state_at(own[2], _deltas(conn, session_id), cut)
    conn.execute(
        "UPDATE adk_sessions SET state = ?, update_time = ? WHERE session_id = ?",
        (state, update_time, session_id),
    )
    if not state:  # no state left: with no events either, a ghost like any unused session
        conn.execute(_RELEASE, (HOLDER_BIT, session_id))


def _merge_shared(
    conn: sqlite3.Connection,
    table: str,
    keys: dict[str, str],
    delta: dict[str, Any],
    stamp: float,
) -> None:
    """Merge ``delta`` into the state row of ``table`` named by ``keys`` (created when
    missing)."""
    if not delta:
        return
    where = " AND ".join(f"{column} = ?" for column in keys)
    params = tuple(keys.values())
    found = conn.execute(f"SELECT state FROM {table} WHERE {where}", params).fetchone()
    state = merged(found[0] if found else None, delta) or "{}"
    if found is None:
        columns = ", ".join([*keys, "state", "update_time"])
        marks = ", ".join("?" * (len(keys) + 2))
        conn.execute(f"INSERT INTO {table} ({columns}) VALUES ({marks})", (*params, state, stamp))
    else:
        conn.execute(
            f"UPDATE {table} SET state = ?, update_time = ? WHERE {where}", (state, stamp, *params)
        )


def _shared(conn: sqlite3.Connection, key: AdkKey, new: AdkAppend | NewAdkSession) -> None:
    app = {"app_name": key.app_name}
    _merge_shared(conn, "adk_app_state", app, new.app_delta, new.update_time)
    user = {"app_name": key.app_name, "user_id": key.user_id}
    _merge_shared(conn, "adk_user_state", user, new.user_delta, new.update_time)


def _row(key: AdkKey, r: Any) -> AdkRow:
    return AdkRow(key, r[0], r[1], r[2], r[3], r[4])


def _key(key: AdkKey) -> tuple[str, str, str]:
    return (key.app_name, key.user_id, key.adk_id)


def _held(state: object) -> int:
    """The session's ``held_by`` bit for ADK: set once it holds session state."""
    return HOLDER_BIT if state else 0


class SqliteAdk:
    session_tables: tuple[str, ...] = SESSION_TABLES
    ghost_tables: tuple[str, ...] = SESSION_TABLES  # a key row, no state yet

    def __init__(self, runner: Runner) -> None:
        self.b = runner

    async def create(self, new: NewAdkSession) -> AdkRow | None:
        key = new.key
        stamp = sqlite_time(new.now)
        meta = json.dumps(new.metadata)

        def write(conn: sqlite3.Connection) -> AdkRow | None:
            if conn.execute(f"SELECT 1 FROM adk_sessions WHERE {_KEY}", _key(key)).fetchone():
                return None
            for session_id in new.session_ids:
                held = _held(new.state)
                user = key.user_id  # the session is for its ADK user
                params = (session_id, new.agent_id, new.title, meta, stamp, stamp, user, held)
                if conn.execute(_INSERT_SESSION, params).rowcount:
                    break
            else:
                return None
            conn.execute(_INSERT_ADK, (session_id, *_key(key), new.state, new.update_time))
            _shared(conn, key, new)
            return _row(key, conn.execute(_ROW, _key(key)).fetchone())

        return await self.b._write(write)

    async def get(
        self, key: AdkKey, *, last: int | None, after: datetime | None
    ) -> AdkLoaded | None:
        sql = f"SELECT {_EVENT} FROM messages WHERE session_id = ?"
        if after is not None:
            sql += " AND created_at >= ?"
        sql += " ORDER BY seq DESC"
        if last is not None:
            sql += f" LIMIT {int(last):d}"

        def read(conn: sqlite3.Connection) -> AdkLoaded | None:
            found = conn.execute(_ROW, _key(key)).fetchone()
            if found is None:
                return None
            row = _row(key, found)
            params: tuple[Any, ...] = (row.session_id,)
            if after is not None:
                params += (sqlite_time(after),)
            values = [r[0] for r in conn.execute(sql, params)]
            return AdkLoaded(row, event_texts(values))

        return await self.b._read(read_txn(read), inline=True)

    async def page(
        self, app_name: str, user_id: str | None, after: tuple[float, str, str] | None, limit: int
    ) -> AdkPage:
        where = "a.app_name = ?1"
        params: list[Any] = [app_name]
        if user_id is not None:
            where += " AND a.user_id = ?2"
            params.append(user_id)
        if after is not None:
            n = len(params)
            where += f" AND (a.update_time, a.user_id, a.adk_id) > (?{n + 1}, ?{n + 2}, ?{n + 3})"
            params.extend(after)
        # One statement: each row brings its user's state, the app's state comes alongside.
        sql = (
            "SELECT a.session_id, a.state, a.update_time, a.user_id, a.adk_id, u.state, "
            "(SELECT state FROM adk_app_state WHERE app_name = ?1) "
            "FROM adk_sessions a LEFT JOIN adk_user_state u "
            "ON u.app_name = a.app_name AND u.user_id = a.user_id "
            f"WHERE {where} ORDER BY a.update_time, a.user_id, a.adk_id LIMIT {int(limit):d}"
        )
        found = await self.b._read(lambda c: c.execute(sql, params).fetchall(), budget=True)
        return page_of(app_name, found)

    async def delete(self, key: AdkKey) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            gone = conn.execute(
                "DELETE FROM sessions WHERE session_id = "
                f"(SELECT session_id FROM adk_sessions WHERE {_KEY})",
                _key(key),
            )
            return gone.rowcount > 0

        return await self.b._write(write)

    async def user_state(self, app_name: str, user_id: str) -> str | None:
        def read(conn: sqlite3.Connection) -> str | None:
            found = conn.execute(
                "SELECT state FROM adk_user_state WHERE app_name = ? AND user_id = ?",
                (app_name, user_id),
            ).fetchone()
            return found[0] if found else None

        return await self.b._read(read, inline=True)

    async def append(self, append: AdkAppend) -> bool | Recorded:
        key = append.key
        m = append.message
        stamp = sqlite_time(append.now)
        claim = append.claim

        def write(conn: sqlite3.Connection) -> bool | Recorded:
            if claim is not None:  # under the write lock: a send of the same key has committed
                found = conn.execute(_RECORDED, (*_key(key), claim.key)).fetchone()
                if found is not None:
                    return Recorded(*found)
            bumped = conn.execute(
                _BUMP,
                (
                    m["token_count"],
                    stamp,
                    stamp,
                    append.title,
                    _held(append.session_delta),
                    *_key(key),
                ),
            ).fetchone()
            if bumped is None:
                return False
            session_id, seq = bumped
            conn.execute(INSERT_MESSAGE, message_params(session_id, seq, m))
            if claim is not None:
                conn.execute(_CLAIM, (session_id, claim.key, claim.fingerprint, seq, stamp))
            if append.session_delta:
                old = conn.execute(
                    "SELECT state FROM adk_sessions WHERE session_id = ?", (session_id,)
                ).fetchone()[0]
                conn.execute(
                    "UPDATE adk_sessions SET state = ?, update_time = ? WHERE session_id = ?",
                    (merged(old, append.session_delta), append.update_time, session_id),
                )
            else:
                conn.execute(
                    "UPDATE adk_sessions SET update_time = ? WHERE session_id = ?",
                    (append.update_time, session_id),
                )
            _shared(conn, key, append)
            return True

        return await self.b._write(write)
