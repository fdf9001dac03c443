"""Keyset cursors for session listings.

A cursor carries the sort, the order, and the (sort key, session_id) of the last row seen;
the next page starts strictly after that pair. Nullable sort columns go through a total
expression (COALESCE) so the order is exact and no row is skipped or repeated.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func

from sessionkeeper.store import cursor
from sessionkeeper.store.schema import sessions

SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "created_at": sessions.c.created_at,
    "updated_at": sessions.c.updated_at,
    "last_message_at": func.coalesce(sessions.c.last_message_at, sessions.c.created_at),
    "title": func.coalesce(sessions.c.title, ""),
}


def after_cursor(key: ColumnElement[Any], sort: str, order: str, token: str) -> ColumnElement[bool]:
    """Rows strictly past the cursor: (key, id) beyond the last row seen, written so the
    leading key can use its index."""
    value, last_id = cursor.decode(token, sort, order)
    if order == "desc":
        return (key <= value) & ((key < value) | (sessions.c.session_id < last_id))  # type: ignore[no-any-return]
    return (key >= value) & ((key > value) | (sessions.c.session_id > last_id))  # type: ignore[no-any-return]
