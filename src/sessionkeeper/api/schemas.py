"""Request and response bodies of the REST API (separate Create / Update / Public models).

Format rules (id characters, title length, content size, text without NUL, metadata as
standard JSON) are enforced by the Store, not repeated here: one rule, one place, one error
message. They are *documented* here, in the JSON schema of each field (``WithJsonSchema``),
so the OpenAPI document states the rules the Store enforces; ``tests/test_openapi.py`` checks
that the patterns below accept exactly what ``sessionkeeper.models`` accepts. In particular
``content`` is not length-checked by pydantic, so an oversized message reaches the Store and
gets its 413 with the "nothing was stored" explanation instead of a generic validation error.

Request bodies are strict: a JSON string is not taken for a number (``"5"`` for
``token_count`` is refused), and unknown fields are refused.

Public models are built from the Store's dataclasses (``Model.of(obj)``) and serialise
timestamps with ``isoformat()``, exactly like ``to_dict()`` and the CLI's ``--json``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
)

from sessionkeeper.models import (
    MAX_MESSAGE_LENGTH,
    MAX_METADATA_BYTES,
    MAX_TITLE_LENGTH,
    RESERVED_SESSION_IDS,
    Role,
)
from sessionkeeper.store.validate import MAX_INT

Timestamp = Annotated[
    datetime, PlainSerializer(lambda value: value.isoformat(), return_type=str, when_used="json")
]
Status = Literal["active", "ended"]
SortField = Literal["created_at", "updated_at", "last_message_at", "title"]
SortOrder = Literal["asc", "desc"]

# ── the Store's rules, as JSON schema (ECMA-262 patterns, valid in Python's re too) ──

# models.SESSION_ID_RE: 1-128 of A-Z a-z 0-9 . _ : -, not dots alone.
SESSION_ID_PATTERN = "^[A-Za-z0-9._:-]*[A-Za-z0-9_:-][A-Za-z0-9._:-]*$"
# models.LABEL_RE (agent ids, session types): 1-64 of A-Z a-z 0-9 . _ : @ / + -, not dots alone.
LABEL_PATTERN = "^[A-Za-z0-9._:@/+-]*[A-Za-z0-9_:@/+-][A-Za-z0-9._:@/+-]*$"
# Text: valid Unicode without NUL (lone surrogates cannot be written in UTF-8 and are refused
# too when sent as JSON escapes).
NO_NUL = "^[^\\x00]*$"
# Chat content: not empty or only whitespace (as Python's str.strip() sees it), no NUL. The
# whitespace is spelled out: \s means different things to ECMA-262, Python and Rust.
PY_WHITESPACE = (
    "\\t\\n\\x0b\\x0c\\r\\x1c-\\x20\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029"
    "\\u202f\\u205f\\u3000"
)
CHAT_CONTENT_PATTERN = f"^[^\\x00]*[^\\x00{PY_WHITESPACE}][^\\x00]*$"
# Search queries: at least one letter or digit (a word, as store/search.py reads one; written
# with Unicode classes, since ECMA-262 reads \w as ASCII only), no NUL.
SEARCH_PATTERN = "^[^\\x00]*[\\p{L}\\p{N}][^\\x00]*$"
MAX_QUERY_LENGTH = 1000

SESSION_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 128,
    "pattern": SESSION_ID_PATTERN,
}
LABEL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": 64,
    "pattern": LABEL_PATTERN,
}


def documented(schema: dict[str, Any], description: str | None = None) -> WithJsonSchema:
    """The JSON schema of a field whose rule the Store enforces (see the module docstring)."""
    return WithJsonSchema(schema if description is None else {**schema, "description": description})


SessionIdText = Annotated[str, documented(SESSION_ID_SCHEMA)]
NewSessionId = Annotated[
    str,
    documented(
        {**SESSION_ID_SCHEMA, "not": {"enum": list(RESERVED_SESSION_IDS)}},
        "Bring your own id: 1-128 of A-Z a-z 0-9 . _ : - (not dots alone, not "
        + ", ".join(RESERVED_SESSION_IDS)
        + "). Default: 16 hex characters. An id already taken (by any agent) is 409.",
    ),
]
Label = Annotated[str, documented(LABEL_SCHEMA)]
Title = Annotated[
    str,
    documented(
        {"type": "string", "maxLength": MAX_TITLE_LENGTH, "pattern": NO_NUL},
        f"At most {MAX_TITLE_LENGTH} characters, no NUL.",
    ),
]
Content = Annotated[
    str,
    documented(
        {"type": "string", "maxLength": MAX_MESSAGE_LENGTH, "pattern": NO_NUL},
        f"At most {MAX_MESSAGE_LENGTH:,} characters, no NUL; longer is refused with 413 "
        "(never truncated).",
    ),
]
ModelName = Annotated[
    str,
    documented(
        {"type": "string", "minLength": 1, "maxLength": 128, "pattern": NO_NUL},
        "The model that wrote the message: 1-128 characters.",
    ),
]


def _integral(value: Any) -> Any:
    # JSON has one number type: 431.0 is the integer 431 (as JSON Schema says); 431.5 and
    # "431" are not integers.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


JsonInt = Annotated[int, BeforeValidator(_integral)]
TokenCount = Annotated[
    JsonInt,
    documented(
        {"type": "integer", "minimum": 0, "maximum": MAX_INT},
        "Default: counted by the server.",
    ),
]
# The OpenAPI document puts its JsonObject schema (api/openapi.py) where this marker is.
JSON_OBJECT_MARKER = "x-sessionkeeper-json-object"
Metadata = Annotated[
    dict[str, Any],
    WithJsonSchema({"type": "object", JSON_OBJECT_MARKER: True}),
]
METADATA_DESCRIPTION = (
    f"Standard JSON object (no NaN/Infinity), at most 64 levels deep and "
    f"{MAX_METADATA_BYTES:,} bytes (413 beyond)."
)

_STRICT = ConfigDict(extra="forbid", strict=True)


class _Public(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    @classmethod
    def of(cls, obj: object) -> Self:
        return cls.model_validate(obj, from_attributes=True)


# ── sessions ────────────────────────────────────────────────────────────────


class SessionCreate(BaseModel):
    model_config = _STRICT

    session_id: NewSessionId | None = None
    agent_id: Label = "main"
    title: Title | None = None
    session_type: Label = "chat"
    metadata: Metadata | None = Field(None, description=METADATA_DESCRIPTION)


class SessionUpdate(BaseModel):
    """Only the fields present in the JSON change; an explicit null clears title or metadata."""

    model_config = _STRICT

    title: Title | None = None
    metadata: Metadata | None = Field(None, description=METADATA_DESCRIPTION)
    session_type: Label | None = Field(
        None, description="A new session type (null: leave it unchanged)."
    )
    status: Status | None = Field(None, description="null: leave it unchanged.")


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
    model_config = _STRICT

    role: Role
    content: Content
    agent_id: Label | None = None
    model: ModelName | None = None
    metadata: Metadata | None = Field(None, description=METADATA_DESCRIPTION)
    token_count: TokenCount | None = None


class MessageBatchCreate(BaseModel):
    """Several messages appended in one transaction: all stored, or none."""

    model_config = _STRICT

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


class Problem(BaseModel):
    """One invalid input of a request refused before it reached the Store."""

    field: str = Field(description="The field path (messages[1].role) or parameter name.")
    in_: Literal["body", "query", "path", "header", "cookie", "request"] = Field(alias="in")
    message: str


class ErrorBody(BaseModel):
    """Every error response: a stable code, a sentence for humans, and details."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "error": "invalid_input",
                    "detail": "title contains a NUL character at position 3; text must be "
                    "valid Unicode without NUL",
                    "field": "title",
                    "position": 3,
                }
            ]
        },
    )

    error: str = Field(
        description="Stable code: invalid_input, too_large, not_found, conflict, unauthorized, "
        "forbidden, unavailable, schema_mismatch, method_not_allowed, internal_error…"
    )
    detail: str = Field(description="What went wrong and, where there is one, what to do.")
    field: str | None = Field(
        None,
        description="The input at fault (422 and 413): a body field path such as "
        "messages[1].role, or a query or path parameter name.",
    )
    errors: list[Problem] | None = Field(
        None, description="Every problem found when a request is refused before the Store."
    )
