"""Listing sessions from a SQLite file without SQLAlchemy: the CLI's fast start.

``sessionkeeper list`` is typed by hand and must answer in well under a second; importing
SQLAlchemy alone costs more than the whole budget on a slow machine. For the common case (a
SQLite file at the current schema, filters on agent/type/status, offset paging) this module
reads the rows with the standard library and returns exactly what ``Store.list_sessions``
returns (a test compares the two). Anything else — PostgreSQL, search, cursors, a missing or
older database — returns None and the caller uses the Store, which also produces the proper
error messages.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from sessionkeeper.models import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, Session
from sessionkeeper.store import cursor, validate
from sessionkeeper.store.lanes import SESSION_COLUMNS
from sessionkeeper.store.revision import SCHEMA_REVISION

_SORT_SQL = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "last_message_at": "COALESCE(last_message_at, created_at)",
    "title": "COALESCE(title, '')",
}


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` (or ``sqlite+aiosqlite:///path``) URL, else None."""
    scheme, sep, rest = url.partition(":///")
    if not sep or scheme not in ("sqlite", "sqlite+aiosqlite") or "?" in rest or not rest:
        return None
    return Path(unquote(rest))


def _when(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value).replace(tzinfo=UTC)


def _session(row: sqlite3.Row) -> Session:
    return Session(
        session_id=row["session_id"],
        agent_id=row["agent_id"],
        title=row["title"],
        session_type=row["session_type"],
        status=row["status"],
        metadata=json.loads(row["metadata"]) if row["metadata"] else {},
        created_at=datetime.fromisoformat(row["created_at"]).replace(tzinfo=UTC),
        updated_at=datetime.fromisoformat(row["updated_at"]).replace(tzinfo=UTC),
        ended_at=_when(row["ended_at"]),
        last_message_at=_when(row["last_message_at"]),
        message_count=row["message_count"],
        token_count=row["token_count"],
    )


def list_sessions(
    url: str,
    *,
    agent_id: str | None = None,
    session_type: str | None = None,
    status: str | None = None,
    sort: str = "updated_at",
    order: str = "desc",
    limit: int = DEFAULT_PAGE_SIZE,
    offset: int = 0,
) -> Page[Session] | None:
    """A page like ``Store.list_sessions``, or None when this fast path does not apply."""
    path = sqlite_path(url)
    if path is None or not path.is_file():
        return None
    sort, order = validate.sort(sort, order)
    validate.limit(limit, MAX_PAGE_SIZE)
    validate.non_negative(offset, "offset")
    where: list[str] = []
    params: list[Any] = []
    if agent_id is not None:
        where.append("agent_id = ?")
        params.append(validate.label(agent_id, "agent_id"))
    if session_type is not None:
        where.append("session_type = ?")
        params.append(validate.label(session_type, "session_type"))
    if status is not None:
        where.append("status = ?")
        params.append(validate.status(status))
    clause = f"WHERE {' AND '.join(where)}" if where else ""
    key = _SORT_SQL[sort]
    direction = "DESC" if order == "desc" else "ASC"
    try:
        conn = sqlite3.connect(path, timeout=30)  # only SELECTs run on it
    except sqlite3.Error:
        return None
    try:
        conn.row_factory = sqlite3.Row
        revision = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        if revision is None or revision[0] != SCHEMA_REVISION:
            return None
        rows = conn.execute(
            f"SELECT {SESSION_COLUMNS}, {key} AS sort_key FROM sessions {clause} "
            f"ORDER BY {key} {direction}, session_id {direction} LIMIT ? OFFSET ?",
            [*params, limit + 1, offset],
        ).fetchall()
        total = conn.execute(f"SELECT count(*) FROM sessions {clause}", params).fetchone()[0]
    except sqlite3.Error:
        return None  # e.g. no schema yet: the Store creates it and answers
    finally:
        conn.close()
    has_more = len(rows) > limit
    rows = rows[:limit]
    next_cursor = None
    if has_more and rows:
        last = rows[-1]
        sort_key = last["sort_key"] if sort == "title" else _when(last["sort_key"])
        next_cursor = cursor.encode(sort, order, sort_key, last["session_id"])
    return Page(
        items=[_session(r) for r in rows],
        total=int(total),
        limit=limit,
        offset=offset,
        has_more=has_more,
        next_cursor=next_cursor,
    )
