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

Public models are made from the Store's dataclasses (``public_model``: the same fields, so the
API cannot drift from the Store), filled with ``Model.of(obj)``, and serialise timestamps with
``isoformat()``, exactly like ``to_dict()`` and the CLI's ``--json``.
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from datetime import datetime
from types import UnionType
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Literal,
    Self,
    Union,
    get_args,
    get_origin,
    get_type_hints,
)

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    create_model,
)

from sessionkeeper.models import (
    DEFAULT_POLICY,
    MAX_MESSAGE_LENGTH,
    MAX_METADATA_BYTES,
    MAX_TITLE_LENGTH,
    RESERVED_SESSION_IDS,
    Compaction,
    ForgetReceipt,
    Message,
    Policy,
    PolicyRun,
    PruneResult,
    Rewind,
    Role,
    RuleRun,
    SearchHit,
    Session,
    Stats,
    Usage,
    UsageTotals,
    Window,
)
from sessionkeeper.models import ModelUsage as ModelUsageRow
from sessionkeeper.store.validate import MAX_DAYS, MAX_INT, MAX_MINUTES, MAX_USER_ID

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


def _not_null(value: Any) -> Any:
    if value is None:
        raise ValueError("may be left out, but not null")
    return value


NEW_AGENT_DESCRIPTION = (
    'The agent of the new session. Left out: "main" if the key may act for it, else the '
    'key\'s only agent; a key of several agents, none of them "main", must name one (422).'
)
# Optional, never null: left out means "the caller's default agent" (Principal.agent_for).
NewSessionAgent = Annotated[
    str | None,
    BeforeValidator(_not_null),
    documented(LABEL_SCHEMA, NEW_AGENT_DESCRIPTION),
]


def _no_default(schema: dict[str, Any]) -> None:
    schema.pop("default", None)  # null is the "left out" marker, not a value to send


def agent_field(description: str | None = None) -> Any:
    """The field of a ``NewSessionAgent``: defaults to None, which the schema does not show."""
    return Field(None, description=description, json_schema_extra=_no_default)


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
# A positive integer within 32 bits, as JSON has it. The bounds come before the validator: a
# bound placed after one (``Field(ge=…)`` on a ``JsonInt`` field) is enforced, but pydantic
# publishes it under its own keywords ("ge", "le") instead of JSON Schema's "minimum" and
# "maximum" (pydantic/pydantic#11576); tests/test_openapi.py scans the document for any.
PositiveJsonInt = Annotated[int, Field(ge=1, le=MAX_INT), BeforeValidator(_integral)]
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


# The public model of each value type already made (a field of that type gets its model).
_PUBLIC: dict[type, type[_Public]] = {}


def _public_type(hint: Any) -> Any:
    """A value type's field type as the API shows it: timestamps as ``Timestamp``, value
    types as their public models, inside ``X | None`` and ``list[X]`` too."""
    if hint is datetime:
        return Timestamp
    if isinstance(hint, type) and hint in _PUBLIC:
        return _PUBLIC[hint]
    args = get_args(hint)
    if not args:
        return hint
    mapped = tuple(_public_type(arg) for arg in args)
    if mapped == args:
        return hint
    if get_origin(hint) in (Union, UnionType):
        return functools.reduce(operator.or_, mapped)
    return get_origin(hint)[mapped]


def public_model(row: type, name: str | None = None, /, **changed: Any) -> type[_Public]:
    """The response model of a Store value type (``Session`` → ``SessionPublic``): one field
    per dataclass field, same names and order, so the API cannot drift from the Store.
    ``changed`` adds fields or describes one: ``field=(type, Field(...))``."""
    hints = get_type_hints(row)
    defined: dict[str, Any] = {
        f.name: (_public_type(hints[f.name]), ...) for f in dataclasses.fields(row)
    }
    fields = {**defined, **changed}
    model = create_model(
        name or f"{row.__name__}Public", __base__=_Public, __module__=__name__, **fields
    )
    _PUBLIC[row] = model
    return model


# ── sessions ────────────────────────────────────────────────────────────────


NEW_USER_DESCRIPTION = (
    "Who the session is for (a label, like agent_id). Left out or null: no user; under a key "
    "scoped to users, the key's only user (a key of several users must name one: 422; a user "
    "outside the key's scope: 403)."
)


class SessionCreate(BaseModel):
    model_config = _STRICT

    session_id: NewSessionId | None = None
    agent_id: NewSessionAgent = agent_field()
    title: Title | None = None
    session_type: Label = "chat"
    metadata: Metadata | None = Field(None, description=METADATA_DESCRIPTION)
    user_id: Label | None = Field(None, description=NEW_USER_DESCRIPTION)


class SessionUpdate(BaseModel):
    """Only the fields present in the JSON change; an explicit null clears title, metadata or
    user_id."""

    model_config = _STRICT

    title: Title | None = None
    metadata: Metadata | None = Field(None, description=METADATA_DESCRIPTION)
    session_type: Label | None = Field(
        None, description="A new session type (null: leave it unchanged)."
    )
    status: Status | None = Field(None, description="null: leave it unchanged.")
    user_id: Label | None = Field(
        None,
        description="A new user (null: no user). Under a key scoped to users, one of its "
        "users (403 otherwise).",
    )
    expected_metadata: Metadata | None = Field(
        None,
        description="Change the session only if its metadata is still this (compared as "
        "JSON, keys in any order; null and {} alike): else 409 and nothing changes. Send "
        "the metadata you read with the metadata you made from it, and two clients "
        "editing at once never lose each other's change.",
    )


if TYPE_CHECKING:  # the fields are made at run time (public_model); checkers see the base
    SessionPublic = _Public
else:
    SessionPublic = public_model(Session)


# ── lineage: forks, rewinds, branches ───────────────────────────────────────


class ForkCreate(BaseModel):
    model_config = _STRICT

    at_seq: int | None = Field(
        None,
        ge=0,
        le=MAX_INT,
        description="The fork holds the source's messages 1..at_seq (default: all of them).",
    )
    session_id: NewSessionId | None = None
    title: Title | None = Field(None, description="Default: the source's title.")
    metadata: Metadata | None = Field(
        None, description="Default: the source's metadata. " + METADATA_DESCRIPTION
    )


class RewindCreate(BaseModel):
    model_config = _STRICT

    to_seq: int = Field(ge=0, le=MAX_INT, description="The session keeps its messages 1..to_seq.")


if TYPE_CHECKING:
    RewindPublic = _Public
else:
    RewindPublic = public_model(Rewind)


class BranchList(BaseModel):
    session_id: str
    branches: list[SessionPublic]


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


UsageCount = Annotated[JsonInt, documented({"type": "integer", "minimum": 0, "maximum": MAX_INT})]


class UsageCreate(BaseModel):
    """What producing the message cost, as the model reported it: ``input_tokens`` include
    ``cached_tokens``, ``output_tokens`` include ``reasoning_tokens``."""

    model_config = _STRICT

    input_tokens: UsageCount = 0
    output_tokens: UsageCount = 0
    cached_tokens: UsageCount = 0
    reasoning_tokens: UsageCount = 0
    requests: UsageCount = 1
    model: ModelName | None = Field(
        None, description="The priced model (default: the message's model)."
    )


class MessageCreate(BaseModel):
    model_config = _STRICT

    role: Role
    content: Content
    agent_id: Label | None = None
    model: ModelName | None = None
    metadata: Metadata | None = Field(None, description=METADATA_DESCRIPTION)
    token_count: TokenCount | None = None
    usage: UsageCreate | None = None


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


if TYPE_CHECKING:
    UsagePublic = _Public
    MessagePublic = _Public
else:
    UsagePublic = public_model(Usage)  # before Message: its ``usage`` field takes this model
    MessagePublic = public_model(Message)


class MessageList(BaseModel):
    session_id: str
    messages: list[MessagePublic]


class MessageBatch(BaseModel):
    messages: list[MessagePublic]


if TYPE_CHECKING:
    WindowPublic = _Public
else:
    WindowPublic = public_model(Window)


if TYPE_CHECKING:
    CompactionPublic = _Public
else:
    CompactionPublic = public_model(Compaction)


class CompactRequest(BaseModel):
    model_config = _STRICT

    keep_last_tokens: Annotated[int, Field(ge=0, le=MAX_INT), BeforeValidator(_integral)] | None = (
        Field(
            default=None,
            description="Tokens of the newest messages kept as they are (whole tool-call units). "
            "Default: half the server's max_context_tokens.",
        )
    )


class CompactResult(BaseModel):
    compacted: bool = Field(description="False: nothing was old enough to summarise.")
    compaction: CompactionPublic | None = Field(
        description="The compaction now in force (the one made, or the one already there)."
    )


# ── search, stats, maintenance ──────────────────────────────────────────────


if TYPE_CHECKING:
    SearchHitPublic = _Public
else:
    SearchHitPublic = public_model(
        SearchHit,
        snippet=(str, Field(description="Matches marked <mark>…</mark>; the rest is not escaped.")),
    )


class SearchResult(BaseModel):
    hits: list[SearchHitPublic]
    query: str


COST_DESCRIPTION = (
    'US dollars as exact decimal text, or "unknown" when the price table does not know the '
    "model (never 0 for an unknown model)."
)

if TYPE_CHECKING:
    ModelUsagePublic = _Public
    UsageTotalsPublic = _Public
    StatsPublic = _Public
else:
    ModelUsagePublic = public_model(
        ModelUsageRow,
        "ModelUsagePublic",
        cost_usd=(str, Field(description=COST_DESCRIPTION)),
        total_tokens=(int, Field(description="input_tokens + output_tokens")),
    )
    UsageTotalsPublic = public_model(
        UsageTotals,
        cost_usd=(
            str,
            Field(
                description=COST_DESCRIPTION + " With cost_status partial: the sum of the "
                "models priced (unknown_models lists the others)."
            ),
        ),
        total_tokens=(int, Field(description="input_tokens + output_tokens")),
        price_source=(str, Field(description="The price table and its version.")),
        priced_at=(Timestamp, Field(description="The time whose prices were used.")),
    )
    StatsPublic = public_model(
        Stats,
        usage=(
            UsageTotalsPublic | None,
            Field(None, description="Usage and cost over the same sessions (usage=true)."),
        ),
    )


def usage_public(totals: UsageTotals) -> UsageTotalsPublic:
    """The response body of usage totals (cost as exact decimal text or "unknown")."""
    return UsageTotalsPublic.model_validate(totals.to_dict())


class GhostPurge(BaseModel):
    deleted: int
    status: Literal["ok"] = "ok"
    older_than_minutes: int | float


if TYPE_CHECKING:
    PrunePublic = _Public
else:
    PrunePublic = public_model(PruneResult, "PrunePublic", status=(Literal["ok"], "ok"))


# ── retention policies ──────────────────────────────────────────────────────

# The path of the run, under /policies: not an agent's policy (see routes/policies.py). Like
# the reserved session ids, it is not excluded in the parameter's schema: a concrete path
# wins over a template (OpenAPI), and GET /policies/run is a method that path does not have.
POLICY_RUN = "run"
PolicyAgentText = Annotated[
    str,
    documented(
        {"anyOf": [LABEL_SCHEMA, {"const": DEFAULT_POLICY}]},
        'An agent id, or "*" for the default policy (every agent without one of its own). '
        f'"{POLICY_RUN}" is the path of the run: an agent called so has its policy set '
        "through the CLI or the library.",
    ),
]

if TYPE_CHECKING:
    PolicyPublic = _Public
    RuleRunPublic = _Public
    PolicyRunPublic = _Public
else:
    PolicyPublic = public_model(Policy)
    RuleRunPublic = public_model(RuleRun)
    PolicyRunPublic = public_model(PolicyRun)


# Checked here (not by the Store, which takes durations); the schema says exactly what.
PolicyMinutes = Annotated[
    JsonInt,
    Field(ge=1, le=MAX_MINUTES),
    documented({"type": "integer", "minimum": 1, "maximum": MAX_MINUTES}),
]
PolicyDays = Annotated[
    JsonInt,
    Field(ge=1, le=MAX_DAYS),
    documented({"type": "integer", "minimum": 1, "maximum": MAX_DAYS}),
]


def _policy_rule(unit: str, top: int, what: str) -> Any:
    return Field(
        None,
        description=f"{what}, in whole {unit} (1 to {top:,}: a century); null: the rule is off.",
    )


class PolicyRules(BaseModel):
    """An agent's policy: it replaces the one the agent had (rules left out are off)."""

    model_config = _STRICT

    end_idle_minutes: PolicyMinutes | None = _policy_rule(
        "minutes", MAX_MINUTES, "End (keep) an active session idle this long"
    )
    delete_ended_days: PolicyDays | None = _policy_rule(
        "days", MAX_DAYS, "Delete an ended session once its end and last activity are this old"
    )
    delete_after_days: PolicyDays | None = _policy_rule(
        "days", MAX_DAYS, "Delete any session with no activity for this long"
    )


class PolicyList(BaseModel):
    policies: list[PolicyPublic] = Field(description='By agent id; the default ("*") first.')


# A user id to forget: as sessions may carry it (store/validate.any_user_id).
USER_ID_SCHEMA: dict[str, Any] = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_USER_ID,
    "pattern": NO_NUL,
}
UserIdText = Annotated[
    str,
    documented(
        USER_ID_SCHEMA,
        f"The user id as sessions carry it: 1-{MAX_USER_ID} characters, no NUL (an ADK "
        "user id may be any text; escape '/' and others as in any URL).",
    ),
]

if TYPE_CHECKING:
    ForgetPublic = _Public
else:
    ForgetPublic = public_model(
        ForgetReceipt,
        "ForgetPublic",
        checkpoints=(int, Field(description="LangGraph rows: checkpoints, values, writes.")),
        adk_state=(int, Field(description="ADK rows: the sessions' state, the user state.")),
        keys=(int, Field(description="API keys scoped to this user alone: deleted.")),
        keys_narrowed=(int, Field(description="Keys of several users: this one taken off.")),
        forget_id=(str | None, Field(description="The record's id; null in a dry run.")),
        user_hash=(str, Field(description="SHA-256 of the user id, hex (what is recorded).")),
        wal_truncated=(
            bool | None,
            Field(
                description="SQLite file: the WAL was emptied (false: a reader held it; "
                "it is truncated later). null: no WAL (PostgreSQL, memory, dry run)."
            ),
        ),
    )


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
