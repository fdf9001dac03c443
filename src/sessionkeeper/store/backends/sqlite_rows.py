"""How a message row is written on SQLite, shared by the backend and its framework parts.

Timestamps are naive UTC ISO text (``statements.sqlite_time``); metadata is JSON text, sent
as the validation made it (``validate.json_text``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sessionkeeper.models import Message
from sessionkeeper.store.backends.statements import MESSAGE_COLUMNS, sqlite_time
from sessionkeeper.store.validate import json_text

INSERT_MESSAGE = f"INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"


def message_params(
    session_id: str, seq: int, m: dict[str, Any] | Message, default_time: str | None = None
) -> tuple[Any, ...]:
    """INSERT_MESSAGE's values for a validated message row (or a Message); a row without a
    time takes ``default_time`` (already SQLite text)."""
    v = m if isinstance(m, dict) else m.to_dict() | {"created_at": m.created_at}
    created = v["created_at"]
    return (
        session_id,
        seq,
        v["role"],
        v["content"],
        v["agent_id"],
        v["model"],
        v["token_count"],
        json_text(v["metadata"]) if v["metadata"] else None,
        sqlite_time(created) if created is not None else default_time,
    )


def utc(value: str) -> datetime:
    """A stored timestamp, aware. Stored as naive UTC text: appending the offset and parsing
    once costs 0.13 µs; parsing then .replace(tzinfo=UTC) costs 0.7 µs, which showed in
    reading 50 messages."""
    return datetime.fromisoformat(value + "+00:00")


def message(r: Sequence[Any]) -> Message:
    """A Message from a row of ``MESSAGE_COLUMNS``."""
    return Message(
        r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]) if r[7] else {}, utc(r[8])
    )
