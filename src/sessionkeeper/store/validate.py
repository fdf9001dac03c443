"""Argument checks shared by every Store operation: refuse bad input before any write."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sessionkeeper.errors import InvalidInput, TooLarge
from sessionkeeper.models import (
    LABEL_RE,
    MAX_MESSAGE_LENGTH,
    MAX_METADATA_BYTES,
    MAX_TITLE_LENGTH,
    ROLES,
    SESSION_ID_RE,
    SORT_FIELDS,
    STATUSES,
    NewMessage,
)


def session_id(value: Any) -> str:
    if not isinstance(value, str) or not SESSION_ID_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid session id {value!r}: use 1-128 characters of A-Z a-z 0-9 . _ : -",
            field="session_id",
        )
    return value


def label(value: Any, field: str) -> str:
    if not isinstance(value, str) or not LABEL_RE.fullmatch(value):
        raise InvalidInput(
            f"invalid {field} {value!r}: use 1-64 characters of A-Z a-z 0-9 . _ : @ / + -",
            field=field,
        )
    return value


def optional_label(value: Any, field: str) -> str | None:
    return None if value is None else label(value, field)


def role(value: Any) -> str:
    if value not in ROLES:
        raise InvalidInput(
            f"invalid role {value!r}: expected one of {', '.join(ROLES)}", field="role"
        )
    return str(value)


def content(value: Any) -> str:
    if not isinstance(value, str):
        raise InvalidInput("message content must be a string", field="content")
    if len(value) > MAX_MESSAGE_LENGTH:
        raise TooLarge(
            f"message content is {len(value):,} characters; the limit is {MAX_MESSAGE_LENGTH:,}. "
            "Nothing was stored: split the message or store the payload elsewhere.",
            field="content",
            length=len(value),
            limit=MAX_MESSAGE_LENGTH,
        )
    return value


def title(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput("title must be a string", field="title")
    if len(value) > MAX_TITLE_LENGTH:
        raise InvalidInput(
            f"title is {len(value)} characters; the limit is {MAX_TITLE_LENGTH}",
            field="title",
        )
    return value


def metadata(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise InvalidInput("metadata must be a JSON object", field="metadata")
    try:
        size = len(json.dumps(value, ensure_ascii=False).encode())
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"metadata is not JSON-serialisable: {exc}", field="metadata") from exc
    if size > MAX_METADATA_BYTES:
        raise TooLarge(
            f"metadata is {size:,} bytes of JSON; the limit is {MAX_METADATA_BYTES:,}",
            field="metadata",
        )
    return value or None


def status(value: Any) -> str:
    if value not in STATUSES:
        raise InvalidInput(f"invalid status {value!r}: expected one of {', '.join(STATUSES)}")
    return str(value)


def sort(value: Any, order: Any) -> tuple[str, str]:
    if value not in SORT_FIELDS:
        raise InvalidInput(f"invalid sort {value!r}: expected one of {', '.join(SORT_FIELDS)}")
    if order not in ("asc", "desc"):
        raise InvalidInput(f"invalid order {order!r}: expected asc or desc")
    return str(value), str(order)


def limit(value: Any, maximum: int, field: str = "limit") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise InvalidInput(f"{field} must be an integer from 1 to {maximum}, got {value!r}")
    return value


def non_negative(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidInput(f"{field} must be a non-negative integer, got {value!r}")
    return value


def positive_number(value: Any, field: str, *, allow_zero: bool = True) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or value < 0 or (value == 0 and not allow_zero) or value != value:
        raise InvalidInput(
            f"{field} must be a {'non-negative' if allow_zero else 'positive'} number"
        )
    return float(value)


def aware(value: Any, field: str = "datetime") -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{field} must be a timezone-aware datetime, got {value!r}")
    return value


def model(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= 128:
        raise InvalidInput("model must be a string of 1-128 characters", field="model")
    return value


def agent_scope(agent_id: str | None, agent_ids: Sequence[str] | None) -> list[str] | None:
    """One agent and/or a scope of agents → the agents to look in (None: all)."""
    if agent_id is None and agent_ids is None:
        return None
    if agent_id is not None:
        label(agent_id, "agent_id")
        return [agent_id] if agent_ids is None or agent_id in agent_ids else []
    return list(agent_ids or [])


def message_row(
    message: NewMessage | Mapping[str, Any], count_tokens: Callable[[str], int]
) -> dict[str, Any]:
    """A message to append, checked whole, as the column values to write (token count filled)."""
    if isinstance(message, Mapping):
        unknown = set(message) - set(NewMessage.__dataclass_fields__)
        if unknown:
            raise InvalidInput(f"unknown message fields: {', '.join(sorted(unknown))}")
        try:
            message = NewMessage(**message)
        except TypeError as exc:
            raise InvalidInput(f"invalid message: {exc}") from exc
    text = content(message.content)
    tokens = message.token_count
    if tokens is None:
        tokens = count_tokens(text)
    else:
        non_negative(tokens, "token_count")
    if message.created_at is not None:
        aware(message.created_at, "created_at")
    return {
        "role": role(message.role),
        "content": text,
        "agent_id": optional_label(message.agent_id, "agent_id"),
        "model": model(message.model),
        "token_count": tokens,
        "metadata": metadata(message.metadata),
        "created_at": message.created_at,
    }
