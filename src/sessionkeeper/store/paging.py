"""Keyset cursors for session listings.

A cursor carries the sort, the order, and the (sort key, session_id) of the last row seen;
the next page starts strictly after that pair. Nullable sort columns go through a total
expression (COALESCE) so the order is exact and no row is skipped or repeated.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func

from sessionkeeper.errors import InvalidInput
from sessionkeeper.store.schema import sessions

SORT_COLUMNS: dict[str, ColumnElement[Any]] = {
    "created_at": sessions.c.created_at,
    "updated_at": sessions.c.updated_at,
    "last_message_at": func.coalesce(sessions.c.last_message_at, sessions.c.created_at),
    "title": func.coalesce(sessions.c.title, ""),
}


def encode_cursor(sort: str, order: str, key: Any, session_id: str) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps([sort, order, value, session_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def after_cursor(
    key: ColumnElement[Any], sort: str, order: str, cursor: str
) -> ColumnElement[bool]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        c_sort, c_order, value, last_id = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("invalid cursor") from exc
    if (c_sort, c_order) != (sort, order):
        raise InvalidInput("cursor was made for another sort order; start again without it")
    if sort != "title":
        value = datetime.fromisoformat(value)
    # (key, id) past the cursor, written so the leading key can use its index.
    if order == "desc":
        return (key <= value) & ((key < value) | (sessions.c.session_id < last_id))  # type: ignore[no-any-return]
    return (key >= value) & ((key > value) | (sessions.c.session_id > last_id))  # type: ignore[no-any-return]
