"""Session listings: filters, sort keys and keyset cursors.

A cursor carries the sort, the order, and the (sort key, session_id) of the last row seen;
the next page starts strictly after that pair. Nullable sort columns go through a total
expression (COALESCE) so the order is exact and no row is skipped or repeated.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select

from sessionkeeper.store import cursor, validate
from sessionkeeper.store import search as fts
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


def filters(
    dialect: str,
    *,
    agent_id: str | None,
    agent_ids: Sequence[str] | None,
    session_type: str | None,
    status: str | None,
    search: str | None,
    created_after: datetime | None,
    created_before: datetime | None,
    updated_after: datetime | None,
    updated_before: datetime | None,
) -> list[ColumnElement[bool]]:
    """The WHERE terms of a listing, each argument validated."""
    where: list[ColumnElement[bool]] = []
    if agent_id is not None:
        where.append(sessions.c.agent_id == validate.label(agent_id, "agent_id"))
    if agent_ids is not None:
        where.append(sessions.c.agent_id.in_(list(agent_ids)))
    if session_type is not None:
        where.append(sessions.c.session_type == validate.label(session_type, "session_type"))
    if status is not None:
        where.append(sessions.c.status == validate.status(status))
    if search is not None:
        # Title substring (LIKE metacharacters escaped) or full-text match in a message.
        query = fts.check_query(search)
        escaped = query.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(
            or_(
                sessions.c.title.ilike(f"%{escaped}%", escape="\\"),
                fts.session_match(dialect, query),
            )
        )
    if created_after is not None:
        where.append(sessions.c.created_at > validate.aware(created_after, "created_after"))
    if created_before is not None:
        where.append(sessions.c.created_at < validate.aware(created_before, "created_before"))
    if updated_after is not None:
        where.append(sessions.c.updated_at > validate.aware(updated_after, "updated_after"))
    if updated_before is not None:
        where.append(sessions.c.updated_at < validate.aware(updated_before, "updated_before"))
    return where


def page_statement(
    where: list[ColumnElement[bool]],
    sort: str,
    order: str,
    limit: int,
    offset: int,
    token: str | None,
) -> Select[Any]:
    """One row more than the page (to tell has_more), with the sort key as ``sk_sort_key``."""
    key = SORT_COLUMNS[sort]
    page_where = list(where)
    if token is not None:
        page_where.append(after_cursor(key, sort, order, token))
    ordering = (
        [key.desc(), sessions.c.session_id.desc()]
        if order == "desc"
        else [key.asc(), sessions.c.session_id.asc()]
    )
    return (
        select(sessions, key.label("sk_sort_key"))
        .where(*page_where)
        .order_by(*ordering)
        .limit(limit + 1)
        .offset(offset)
    )
