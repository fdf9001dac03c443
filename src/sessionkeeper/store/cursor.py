"""Keyset cursors as opaque strings: encoding and decoding only (no SQLAlchemy here).

A cursor carries the sort, the order, and the (sort key, session_id) of the last row seen.
"""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any

from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import SESSION_ID_RE
from sessionkeeper.store import validate


def encode(sort: str, order: str, key: Any, session_id: str) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps([sort, order, value, session_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, sort: str, order: str) -> tuple[Any, str]:
    """(sort key value, last session id) of a cursor made for this sort and order. A cursor
    is opaque but travels through clients: every part of it is checked as input would be."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        c_sort, c_order, value, last_id = json.loads(raw)
    except (ValueError, TypeError, RecursionError) as exc:  # nested too deeply: not ours
        raise _invalid() from exc
    if (c_sort, c_order) != (sort, order):
        raise InvalidInput(
            "cursor was made for another sort order; start again without it", field="cursor"
        )
    if not isinstance(last_id, str) or not SESSION_ID_RE.fullmatch(last_id):
        raise _invalid()
    if sort == "title":
        if not isinstance(value, str):
            raise _invalid()
        return validate.text(value, "cursor"), last_id
    if not isinstance(value, str):
        raise _invalid()
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            raise ValueError("naive")
        moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise _invalid() from exc
    return moment, last_id


def _invalid() -> InvalidInput:
    return InvalidInput("invalid cursor: pass next_cursor exactly as it was given", field="cursor")
