"""Keyset cursors as opaque strings: encoding and decoding only (no SQLAlchemy here).

A cursor carries the sort, the order, and the (sort key, session_id) of the last row seen.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sessionkeeper.errors import InvalidInput


def encode(sort: str, order: str, key: Any, session_id: str) -> str:
    value = key.isoformat() if isinstance(key, datetime) else key
    raw = json.dumps([sort, order, value, session_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str, sort: str, order: str) -> tuple[Any, str]:
    """(sort key value, last session id) of a cursor made for this sort and order."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        c_sort, c_order, value, last_id = json.loads(raw)
        if (c_sort, c_order) != (sort, order):
            raise InvalidInput("cursor was made for another sort order; start again without it")
        if sort != "title":
            value = datetime.fromisoformat(value)
    except (ValueError, TypeError) as exc:
        raise InvalidInput("invalid cursor") from exc
    return value, str(last_id)
