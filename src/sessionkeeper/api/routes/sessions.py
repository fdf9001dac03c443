"""Sessions and their messages: ``/api/engine/sessions``.

Every route that names a session reaches it through ``VisibleSession`` / ``VisibleSessionId``
(see ``api/deps.py``), and every set-wide read passes ``principal.scope`` and
``principal.user_scope`` to the Store, so the API-key layer only has to change
``get_principal``. Listings and searches take a ``metadata`` filter (``api/filters.py``).
The fixed paths (``/stats``, ``/search``) are declared before ``/{session_id}``, and the
``session_id`` path convertor (``api/routing.py``) does not take them for session ids either.

Parameters carry the Store's rules in their schema: numbers are range-checked here (FastAPI),
text parameters by the Store (one message per rule); every refusal is 422 naming the field.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, status
from fastapi.responses import StreamingResponse
from pydantic import BeforeValidator, WithJsonSchema

from sessionkeeper.api.deps import (
    IdempotencyKeyDep,
    PrincipalDep,
    SettingsDep,
    StoreDep,
    VisibleSession,
    VisibleSessionId,
)
from sessionkeeper.api.filters import DOCUMENTED as METADATA_PARAMETER
from sessionkeeper.api.filters import MetadataFilter
from sessionkeeper.api.observability import MetricsDep
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.api.routing import StrictJsonRoute
from sessionkeeper.api.schemas import (
    LABEL_SCHEMA,
    MAX_QUERY_LENGTH,
    NO_NUL,
    SEARCH_PATTERN,
    SESSION_ID_SCHEMA,
    Deleted,
    MessageBatch,
    MessageBatchCreate,
    MessageBody,
    MessageList,
    MessagePublic,
    SearchHitPublic,
    SearchResult,
    SessionCreate,
    SessionList,
    SessionPublic,
    SessionUpdate,
    SortField,
    SortOrder,
    StatsPublic,
    Status,
    UsageTotalsPublic,
    WindowPublic,
    documented,
    usage_public,
)
from sessionkeeper.errors import InvalidInput
from sessionkeeper.models import (
    DEFAULT_PAGE_SIZE,
    MAX_MESSAGES_PAGE,
    MAX_PAGE_SIZE,
    NewMessage,
)
from sessionkeeper.store.validate import MAX_DAYS, MAX_INT, MAX_MINUTES
from sessionkeeper.transfer.export import session_chunks

router = APIRouter(tags=["sessions"], route_class=StrictJsonRoute)
SESSION = "/{session_id:session_id}"

# RFC 3339 date-time, as the schema's "date-time" format says: seconds and an offset required.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})")


def _rfc3339(value: Any) -> Any:
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(
            "expected an RFC 3339 date-time with a timezone offset, e.g. 2025-01-31T12:00:00+00:00"
        )
    head, _, fraction = value.upper().partition(".")
    if fraction:  # Python keeps microseconds: cut (never round) longer fractions
        digits = len(fraction) - len(fraction.lstrip("0123456789"))
        fraction = fraction[: min(digits, 6)] + fraction[digits:]
        head = f"{head}.{fraction}"
    return datetime.fromisoformat(head)


DateTime = Annotated[
    datetime,
    BeforeValidator(_rfc3339),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Since = Annotated[
    DateTime | None,
    Query(description="RFC 3339 with an offset, e.g. 2025-01-31T12:00:00+00:00."),
]


# Text parameters whose rules the Store checks: documented here, enforced there.
LabelQuery = Annotated[str, documented(LABEL_SCHEMA)]
SessionIdQuery = Annotated[str, documented(SESSION_ID_SCHEMA)]
SearchQuery = Annotated[
    str,
    documented(
        {"type": "string", "minLength": 1, "maxLength": MAX_QUERY_LENGTH, "pattern": SEARCH_PATTERN}
    ),
]
CursorQuery = Annotated[str, documented({"type": "string", "pattern": NO_NUL})]


def _with_field(exc: InvalidInput, field: str) -> InvalidInput:
    exc.details.setdefault("field", field)
    return exc


# OpenAPI links: what a client (or a stateful tester) can do next with a new session.
SESSION_LINKS = {
    operation: {
        "operationId": operation,
        "parameters": {"session_id": "$response.body#/session_id"},
    }
    for operation in (
        "get_session",
        "update_session",
        "delete_session",
        "end_session",
        "get_messages",
        "add_messages",
        "context_window",
    )
}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"links": SESSION_LINKS},
        **error_responses(
            401,
            403,
            409,
            413,
            422,
            s403="The key may not act for this agent, or for this user.",
            s409="The session id is taken (by any agent: the same answer for every key).",
            s413="Metadata over 1,000,000 bytes; nothing was stored.",
            s422="A field is invalid, agent_id is left out under a key of several agents "
            '(none of them "main"), or user_id under a key of several users; or the '
            "Idempotency-Key was used for another body (idempotency_key_reused).",
        ),
    },
)
async def create_session(
    body: SessionCreate,
    store: StoreDep,
    principal: PrincipalDep,
    metrics: MetricsDep,
    idempotency_key: IdempotencyKeyDep,
) -> SessionPublic:
    """Create a session (``session_id`` optional: 16 hex characters by default).

    Without ``agent_id`` the session is the caller's default agent's: "main", or the one
    agent of a key scoped to one. Without ``user_id`` it has no user, except under a key
    scoped to users: then it is the key's one user's."""
    agent_id = principal.agent_for(body.agent_id)
    user_id = principal.user_for(body.user_id)
    session = await store.create_session(
        session_id=body.session_id,
        agent_id=agent_id,
        title=body.title,
        session_type=body.session_type,
        metadata=body.metadata,
        user_id=user_id,
        idempotency_key=idempotency_key,
    )
    metrics.sessions_created.inc()
    return SessionPublic.of(session)


UserQuery = Annotated[
    LabelQuery | None,
    Query(description="Only this user's sessions (within the key's users, if it has any)."),
]


@router.get(
    "",
    responses=error_responses(
        401, 422, s422="A parameter is invalid, or the cursor is not one this listing made."
    ),
    openapi_extra=METADATA_PARAMETER,
)
async def list_sessions(
    store: StoreDep,
    principal: PrincipalDep,
    metadata: MetadataFilter,
    agent_id: LabelQuery | None = None,
    user_id: UserQuery = None,
    session_type: LabelQuery | None = None,
    status: Status | None = None,
    search: Annotated[
        SearchQuery | None, Query(description='Title or message text: words and "phrases".')
    ] = None,
    created_after: Since = None,
    created_before: Since = None,
    updated_after: Since = None,
    updated_before: Since = None,
    sort: SortField = "updated_at",
    order: SortOrder = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, le=MAX_INT, description="Not with cursor.")] = 0,
    cursor: Annotated[
        CursorQuery | None,
        Query(
            description="next_cursor of the previous page (keyset paging), "
            "with the same sort and order; empty: the first page."
        ),
    ] = None,
) -> SessionList:
    """A page of sessions: offset paging, or keyset paging with ``cursor``."""
    try:
        page = await store.list_sessions(
            agent_id=agent_id,
            agent_ids=principal.scope,
            user_id=user_id,
            user_ids=principal.user_scope,
            metadata=metadata,
            session_type=session_type,
            status=status,
            search=search,
            created_after=created_after,
            created_before=created_before,
            updated_after=updated_after,
            updated_before=updated_before,
            sort=sort,
            order=order,
            limit=limit,
            offset=offset,
            cursor=cursor,
        )
    except InvalidInput as exc:
        # The Store's words for this route's parameters: its ``q`` is our ``search``; a
        # cursor it cannot read is the cursor's fault.
        if exc.details.get("field") == "q":
            exc.details["field"] = "search"
        raise _with_field(exc, "cursor") from None
    return SessionList(
        sessions=[SessionPublic.of(s) for s in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get("/stats", responses=error_responses(401, 422))
async def get_stats(
    store: StoreDep,
    principal: PrincipalDep,
    user_id: UserQuery = None,
    ghost_minutes: Annotated[
        float,
        Query(ge=0, le=MAX_MINUTES, allow_inf_nan=False, description="Ghost: empty and older."),
    ] = 15,
    stale_days: Annotated[
        float,
        Query(ge=0, le=MAX_DAYS, allow_inf_nan=False, description="Stale: idle this long."),
    ] = 30,
    usage: Annotated[
        bool, Query(description="Add usage and cost totals over the same sessions.")
    ] = False,
) -> StatsPublic:
    """Counts over the sessions the caller may see."""
    stats = await store.get_stats(
        agent_ids=principal.scope,
        user_id=user_id,
        user_ids=principal.user_scope,
        ghost_minutes=ghost_minutes,
        stale_days=stale_days,
    )
    body = StatsPublic.of(stats)
    if usage:
        totals = await store.usage_totals(
            agent_ids=principal.scope, user_id=user_id, user_ids=principal.user_scope
        )
        body.usage = usage_public(totals)  # type: ignore[attr-defined]
    return body


@router.get("/search", responses=error_responses(401, 422), openapi_extra=METADATA_PARAMETER)
async def search_messages(
    store: StoreDep,
    principal: PrincipalDep,
    q: Annotated[SearchQuery, Query(description='Words and "quoted phrases", all required.')],
    metadata: MetadataFilter,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    agent_id: LabelQuery | None = None,
    user_id: UserQuery = None,
    session_id: SessionIdQuery | None = None,
) -> SearchResult:
    """Ranked full-text hits with ``<mark>``ed snippets, in the sessions the filters keep."""
    hits = await store.search_messages(
        q,
        limit=limit,
        agent_id=agent_id,
        agent_ids=principal.scope,
        user_id=user_id,
        user_ids=principal.user_scope,
        metadata=metadata,
        session_id=session_id,
    )
    return SearchResult(hits=[SearchHitPublic.of(h) for h in hits], query=q)


@router.get(SESSION, responses=error_responses(401, 404, 422))
async def get_session(session: VisibleSession) -> SessionPublic:
    """One session (its counters included)."""
    return SessionPublic.of(session)


@router.patch(
    SESSION,
    responses=error_responses(
        401,
        403,
        404,
        409,
        413,
        422,
        s403="A user_id the key may not act for (a key scoped to users keeps its sessions "
        "among them).",
        s409="expected_metadata is not the session's metadata any more: read it again.",
        s413="Metadata over 1,000,000 bytes.",
    ),
)
async def update_session(
    session_id: VisibleSessionId, body: SessionUpdate, store: StoreDep, principal: PrincipalDep
) -> SessionPublic:
    """Change title, metadata (replaced whole), session_type, status or user_id; with
    expected_metadata, only if the metadata is still that."""
    # Only the fields the client sent: absent means "leave alone", null means "clear".
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    if "user_id" in changes:
        principal.require_user(changes["user_id"])
    for name in ("session_type", "status"):
        if name in changes and changes[name] is None:
            del changes[name]  # null cannot clear these: leave them as they are
    return SessionPublic.of(await store.update_session(session_id, **changes))


@router.delete(SESSION, responses=error_responses(401, 404, 422))
async def delete_session(session_id: VisibleSessionId, store: StoreDep) -> Deleted:
    """Delete a session and all its messages."""
    await store.delete_session(session_id)
    return Deleted(deleted=session_id)


@router.post(SESSION + "/end", responses=error_responses(401, 404, 422))
async def end_session(session_id: VisibleSessionId, store: StoreDep) -> SessionPublic:
    """Mark the session ended (kept; ending twice keeps the first ended_at)."""
    return SessionPublic.of(await store.end_session(session_id))


@router.get(SESSION + "/messages", responses=error_responses(401, 404, 422))
async def get_messages(
    session_id: VisibleSessionId,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_MESSAGES_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_INT)] = 0,
    since: Since = None,
    after_seq: Annotated[
        int | None, Query(ge=0, le=MAX_INT, description="Resume after this seq.")
    ] = None,
    last: Annotated[
        int | None, Query(ge=1, le=MAX_MESSAGES_PAGE, description="The newest N, oldest first.")
    ] = None,
) -> MessageList:
    """Messages in seq order."""
    found = await store.get_messages(
        session_id, limit=limit, offset=offset, since=since, after_seq=after_seq, last=last
    )
    return MessageList(session_id=session_id, messages=[MessagePublic.of(m) for m in found])


@router.post(
    SESSION + "/messages",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        401,
        404,
        413,
        422,
        s413="Content over 100,000 characters or metadata over 1,000,000 bytes; "
        "nothing was stored.",
        s422="A field is invalid, or the Idempotency-Key was used for another body "
        "(idempotency_key_reused); nothing was stored.",
    ),
)
async def add_messages(
    session_id: VisibleSessionId,
    body: MessageBody,
    store: StoreDep,
    metrics: MetricsDep,
    idempotency_key: IdempotencyKeyDep,
) -> MessagePublic | MessageBatch:
    """One message, or ``{"messages": [...]}`` appended in one transaction (all or none).
    With ``Idempotency-Key``, a retry answers the first request's messages (same seqs)."""
    if isinstance(body, MessageBatchCreate):
        added = await store.add_messages(
            session_id,
            [NewMessage(**m.model_dump()) for m in body.messages],
            idempotency_key=idempotency_key,
        )
        metrics.messages_stored.inc(len(added))
        return MessageBatch(messages=[MessagePublic.of(m) for m in added])
    message = await store.add_message(
        session_id, **body.model_dump(), idempotency_key=idempotency_key
    )
    metrics.messages_stored.inc()
    return MessagePublic.of(message)


@router.delete(
    SESSION + "/messages/{seq}",
    responses=error_responses(401, 404, 422, s404="No such session, or no such message in it."),
)
async def delete_message(
    session_id: VisibleSessionId,
    seq: Annotated[int, Path(ge=1, le=MAX_INT)],
    store: StoreDep,
) -> MessagePublic:
    """Delete one message (its seq is never reused); the session's counters follow."""
    return MessagePublic.of(await store.delete_message(session_id, seq))


@router.get(SESSION + "/usage", responses=error_responses(401, 404, 422))
async def get_usage(session_id: VisibleSessionId, store: StoreDep) -> UsageTotalsPublic:
    """Usage recorded on the session's messages, by model, and what it cost (prices from
    genai-prices; "unknown" for a model it does not know, "partial" for a mix)."""
    return usage_public(await store.get_usage(session_id))


EXPORT_TYPES = {"jsonl": "application/x-ndjson", "markdown": "text/markdown"}  # + charset


@router.get(
    SESSION + "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {
                "application/x-ndjson": {"schema": {"type": "string"}},
                "text/markdown": {"schema": {"type": "string"}},
            },
            "description": "The session as a download (Content-Disposition: attachment): "
            "JSONL, the format `sessionkeeper import` reads back, or a Markdown transcript.",
        },
        **error_responses(401, 404, 422),
    },
)
async def export_session(
    session: VisibleSession,
    store: StoreDep,
    fmt: Annotated[
        Literal["jsonl", "markdown"],
        Query(alias="format", description="jsonl (default) or markdown."),
    ] = "jsonl",
) -> StreamingResponse:
    """One session as `sessionkeeper export` writes it, streamed a message at a time.

    If a message is deleted while the session is being exported, the download is cut off
    (the transfer ends incomplete, never as a well-formed shorter file): export again."""
    # Ids are A-Z a-z 0-9 . _ : - ; a colon is not allowed in file names everywhere.
    name = session.session_id.replace(":", "_") + (".jsonl" if fmt == "jsonl" else ".md")
    return StreamingResponse(
        session_chunks(store, session, fmt),
        media_type=EXPORT_TYPES[fmt],
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get(
    SESSION + "/context",
    responses=error_responses(
        401,
        404,
        422,
        s422="A parameter is invalid, reserve leaves no room in max_tokens, or the system "
        "prompt alone needs more than the budget.",
    ),
)
async def context_window(
    session_id: VisibleSessionId,
    store: StoreDep,
    settings: SettingsDep,
    max_tokens: Annotated[
        int | None,
        Query(ge=1, le=MAX_INT, description="Default: the server's max_context_tokens."),
    ] = None,
    reserve: Annotated[
        int, Query(ge=0, le=MAX_INT, description="Tokens kept free for the reply.")
    ] = 0,
) -> WindowPublic:
    """The newest messages that fit ``max_tokens - reserve``, system prompt pinned."""
    budget = max_tokens if max_tokens is not None else settings.max_context_tokens
    return WindowPublic.of(await store.context_window(session_id, budget, reserve=reserve))
