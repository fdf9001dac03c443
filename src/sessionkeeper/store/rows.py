"""Database rows → the value types of ``sessionkeeper.models``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Row

from sessionkeeper.models import Message, Session
from sessionkeeper.store.schema import messages


def session_from_row(row: Row[Any] | Mapping[str, Any]) -> Session:
    m = row._mapping if isinstance(row, Row) else row
    return Session(
        session_id=m["session_id"],
        agent_id=m["agent_id"],
        title=m["title"],
        session_type=m["session_type"],
        status=m["status"],
        metadata=dict(m["metadata"] or {}),
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        ended_at=m["ended_at"],
        last_message_at=m["last_message_at"],
        message_count=m["message_count"],
        token_count=m["token_count"],
    )


def message_from_row(row: Row[Any]) -> Message:
    m = row._mapping
    return Message(
        session_id=m["session_id"],
        seq=m["seq"],
        role=m["role"],
        content=m["content"],
        agent_id=m["agent_id"],
        model=m["model"],
        token_count=m["token_count"],
        metadata=dict(m["metadata"] or {}),
        created_at=m["created_at"],
    )


MESSAGE_COLUMNS = [c for c in messages.c if c.name != "tsv"]
