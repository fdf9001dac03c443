"""Request and response bodies of the REST API (separate Create / Update / Public models).

Format rules (id characters, title length, content size, metadata size) are checked by the
Store, not repeated here: one rule, one place, one error message. In particular ``content``
has no ``max_length``, so an oversized message reaches the Store and gets its 413 with the
"nothing was stored" explanation instead of a generic validation error.

Public models are built from the Store's dataclasses (``Model.of(obj)``) and serialise
timestamps with ``isoformat()``, exactly like ``to_dict()`` and the CLI's ``--json``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Discriminator, Field, PlainSerializer, Tag

from sessionkeeper.models import MAX_MESSAGE_LENGTH, MAX_TITLE_LENGTH, Role

Timestamp = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")
]
Status = Literal["active", "ended"]
SortField = Literal["created_at", "updated_at", "last_message_at", "title"]
SortOrder = Literal["asc", "desc"]


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, obj: object) -> Self:
        return cls.model_validate(obj, from_attributes=True)


# ── sessions ────────────────────────────────────────────────────────────────


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    session_id: str | None = Field(
        None, description="Bring your own id (1-128 of A-Z a-z 0-9 . _ : -); default: 16 hex."
    )
    agent_id: str = "main"
    title: str | None = Field(None, description=f"At most {MAX_TITLE_LENGTH} characters.")
    session_type: str = "chat"
    metadata: dict[str, Any] | None = None


class SessionUpdate(BaseModel):
    """Only the fields present in the JSON change; an explicit null clears title or metadata."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    metadata: dict[str, Any] | None = None
    session_type: str | None = None
    status: Status | None = None


class SessionPublic(_Public):
    session_id: str
    agent_id: str
    title: str | None
    session_type: str
    status: str
    metadata: dict[str, Any]
    created_at: Timestamp
    updated_at: Timestamp
    ended_at: Timestamp | None
    last_message_at: Timestamp | None
    message_count: int
    token_count: int


class SessionList(BaseModel):
    sessions: list[SessionPublic]
    total: int | None
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None


class Deleted(BaseModel):
    deleted: str
    status: Literal["ok"] = "ok"


# ── messages ────────────────────────────────────────────────────────────────


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str = Field(
        description=f"At most {MAX_MESSAGE_LENGTH:,} characters; longer is refused with 413."
    )
    agent_id: str | None = None
    model: str | None = None
    metadata: dict[str, Any] | None = None
    token_count: int | None = Field(None, description="Default: counted by the server.")


class MessageBatchCreate(BaseModel):
    """Several messages appended in one transaction: all stored, or none."""

    model_config = ConfigDict(extra="forbid")

    messages: list[MessageCreate]


def _message_body_kind(value: Any) -> str:
    return "batch" if isinstance(value, dict) and "messages" in value else "single"


# The tags appear in validation error locations; api/errors.py leaves them out of the
# field path it reports ("role", not "single.role").
UNION_TAGS = frozenset({"single", "batch"})

MessageBody = Annotated[
    Annotated[MessageCreate, Tag("single")] | Annotated[MessageBatchCreate, Tag("batch")],
    Discriminator(_message_body_kind),
]


class MessagePublic(_Public):
    session_id: str
    seq: int
    role: str
    content: str
    agent_id: str | None
    model: str | None
    token_count: int
    metadata: dict[str, Any]
    created_at: Timestamp


class MessageList(BaseModel):
    session_id: str
    messages: list[MessagePublic]


class MessageBatch(BaseModel):
    messages: list[MessagePublic]


class WindowPublic(_Public):
    session_id: str
    messages: list[MessagePublic]
    max_tokens: int
    total_tokens: int
    dropped_messages: int
    dropped_tokens: int
    pinned: int
    estimated: bool
    encoding: str


# ── search, stats, maintenance ──────────────────────────────────────────────


class SearchHitPublic(_Public):
    session_id: str
    seq: int
    role: str
    agent_id: str | None
    snippet: str = Field(description="Matches marked <mark>…</mark>; the rest is not escaped.")
    rank: float
    created_at: Timestamp
    session_title: str | None


class SearchResult(BaseModel):
    hits: list[SearchHitPublic]
    query: str


class StatsPublic(_Public):
    total_sessions: int
    total_messages: int
    total_tokens: int
    active_sessions: int
    ended_sessions: int
    ghost_sessions: int
    stale_sessions: int
    active_agents: int
    by_agent: dict[str, int]
    by_type: dict[str, int]
    oldest_session: Timestamp | None
    newest_activity: Timestamp | None
    ghost_threshold_minutes: float
    stale_threshold_days: float


class GhostPurge(BaseModel):
    deleted: int
    status: Literal["ok"] = "ok"
    older_than_minutes: int | float


class PrunePublic(_Public):
    pruned_count: int
    message_count: int
    dry_run: bool
    days: float
    cutoff: Timestamp
    session_ids: list[str]
    status: Literal["ok"] = "ok"


class ErrorBody(BaseModel):
    """Every error response: a stable code, a sentence for humans, and details."""

    model_config = ConfigDict(extra="allow")

    error: str
    detail: str
