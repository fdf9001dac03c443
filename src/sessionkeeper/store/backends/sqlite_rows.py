"""How a message row is written on SQLite, shared by the backend and its framework parts.

Timestamps are naive UTC ISO text (``statements.sqlite_time``); metadata is JSON text, sent
as the validation made it (``validate.json_text``).
"""

from __future__ import annotations

from typing import Any

from sessionkeeper.models import Message
from sessionkeeper.store.backends.statements import (
    MESSAGE_READ,
    sqlite_time,
    usage_values,
)
from sessionkeeper.store.validate import json_text

# Every column, usage too (NULLs when the message has none: binding them costs nothing).
INSERT_MESSAGE = f"INSERT INTO messages ({MESSAGE_READ}) VALUES ({', '.join(['?'] * 15)})"


def message_params(
    session_id: str, seq: int, m: dict[str, Any] | Message, default_time: str | None = None
) -> tuple[Any, ...]:
    """INSERT_MESSAGE's values for a validated message row (or a Message); a row without a
    time takes ``default_time`` (already SQLite text)."""
    if isinstance(m, Message):  # read as it is: asdict would copy (and drop a Checked's JSON)
        return (
            session_id,
            seq,
            m.role,
            m.content,
            m.agent_id,
            m.model,
            m.token_count,
            json_text(m.metadata) if m.metadata else None,
            sqlite_time(m.created_at) if m.created_at is not None else default_time,
            *usage_values(m.usage),
        )
    v, usage = m, m.get("usage")
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
        *usage_values(usage),
    )
