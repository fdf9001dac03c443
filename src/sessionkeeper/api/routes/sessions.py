"""Sessions and their messages: ``/api/engine/sessions``.

Every route that names a session reaches it through ``VisibleSession`` / ``VisibleSessionId``
(see ``api/deps.py``), and every set-wide read passes ``principal.scope`` to the Store, so the
coming API-key layer only has to change ``get_principal``. The fixed paths (``/stats``,
``/search``) are declared before ``/{session_id}`` so they are not taken for session ids.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, status
from pydantic import AwareDatetime

from sessionkeeper.api.deps import (
    PrincipalDep,
    SettingsDep,
    StoreDep,
    VisibleSession,
    VisibleSessionId,
)
from sessionkeeper.api.observability import MetricsDep
from sessionkeeper.api.schemas import (
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
    WindowPublic,
)
from sessionkeeper.models import (
    DEFAULT_PAGE_SIZE,
    MAX_MESSAGES_PAGE,
    MAX_PAGE_SIZE,
    NewMessage,
)

router = APIRouter(tags=["sessions"])

Since = Annotated[
    AwareDatetime | None,
    Query(description="ISO 8601 with a timezone, e.g. 2025-01-31T12:00:00+00:00."),
]


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_session(
    body: SessionCreate, store: StoreDep, principal: PrincipalDep, metrics: MetricsDep
) -> SessionPublic:
    principal.require_agent(body.agent_id)
    session = await store.create_session(
        session_id=body.session_id,
        agent_id=body.agent_id,
        title=body.title,
        session_type=body.session_type,
        metadata=body.metadata,
    )
    metrics.sessions_created.inc()
    return SessionPublic.of(session)


@router.get("")
async def list_sessions(
    store: StoreDep,
    principal: PrincipalDep,
    agent_id: str | None = None,
    session_type: str | None = None,
    status: Status | None = None,
    search: Annotated[str | None, Query(description="Title or message text.")] = None,
    created_after: Since = None,
    created_before: Since = None,
    updated_after: Since = None,
    updated_before: Since = None,
    sort: SortField = "updated_at",
    order: SortOrder = "desc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0)] = 0,
    cursor: Annotated[
        str | None, Query(description="next_cursor of the previous page (keyset paging).")
    ] = None,
) -> SessionList:
    page = await store.list_sessions(
        agent_id=agent_id,
        agent_ids=principal.scope,
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
    return SessionList(
        sessions=[SessionPublic.of(s) for s in page.items],
        total=page.total,
        limit=page.limit,
        offset=page.offset,
        has_more=page.has_more,
        next_cursor=page.next_cursor,
    )


@router.get("/stats")
async def get_stats(
    store: StoreDep,
    principal: PrincipalDep,
    ghost_minutes: Annotated[float, Query(ge=0)] = 15,
    stale_days: Annotated[float, Query(ge=0)] = 30,
) -> StatsPublic:
    stats = await store.get_stats(
        agent_ids=principal.scope, ghost_minutes=ghost_minutes, stale_days=stale_days
    )
    return StatsPublic.of(stats)


@router.get("/search")
async def search_messages(
    store: StoreDep,
    principal: PrincipalDep,
    q: Annotated[str, Query(description='Words and "quoted phrases".')],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 20,
    agent_id: str | None = None,
    session_id: str | None = None,
) -> SearchResult:
    hits = await store.search_messages(
        q, limit=limit, agent_id=agent_id, agent_ids=principal.scope, session_id=session_id
    )
    return SearchResult(hits=[SearchHitPublic.of(h) for h in hits], query=q)


@router.get("/{session_id}")
async def get_session(session: VisibleSession) -> SessionPublic:
    return SessionPublic.of(session)


@router.patch("/{session_id}")
async def update_session(
    session_id: VisibleSessionId, body: SessionUpdate, store: StoreDep
) -> SessionPublic:
    # Only the fields the client sent: absent means "leave alone", null means "clear".
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    return SessionPublic.of(await store.update_session(session_id, **changes))


@router.delete("/{session_id}")
async def delete_session(session_id: VisibleSessionId, store: StoreDep) -> Deleted:
    await store.delete_session(session_id)
    return Deleted(deleted=session_id)


@router.post("/{session_id}/end")
async def end_session(session_id: VisibleSessionId, store: StoreDep) -> SessionPublic:
    return SessionPublic.of(await store.end_session(session_id))


@router.get("/{session_id}/messages")
async def get_messages(
    session_id: VisibleSessionId,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=MAX_MESSAGES_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    since: Since = None,
    after_seq: Annotated[int | None, Query(ge=0)] = None,
    last: Annotated[
        int | None, Query(ge=1, le=MAX_MESSAGES_PAGE, description="The newest N, oldest first.")
    ] = None,
) -> MessageList:
    found = await store.get_messages(
        session_id, limit=limit, offset=offset, since=since, after_seq=after_seq, last=last
    )
    return MessageList(session_id=session_id, messages=[MessagePublic.of(m) for m in found])


@router.post("/{session_id}/messages", status_code=status.HTTP_201_CREATED)
async def add_messages(
    session_id: VisibleSessionId, body: MessageBody, store: StoreDep, metrics: MetricsDep
) -> MessagePublic | MessageBatch:
    """One message, or ``{"messages": [...]}`` appended in one transaction (all or none)."""
    if isinstance(body, MessageBatchCreate):
        added = await store.add_messages(
            session_id, [NewMessage(**m.model_dump()) for m in body.messages]
        )
        metrics.messages_stored.inc(len(added))
        return MessageBatch(messages=[MessagePublic.of(m) for m in added])
    message = await store.add_message(session_id, **body.model_dump())
    metrics.messages_stored.inc()
    return MessagePublic.of(message)


@router.delete("/{session_id}/messages/{seq}")
async def delete_message(
    session_id: VisibleSessionId,
    seq: Annotated[int, Path(ge=1)],
    store: StoreDep,
) -> MessagePublic:
    return MessagePublic.of(await store.delete_message(session_id, seq))


@router.get("/{session_id}/context")
async def context_window(
    session_id: VisibleSessionId,
    store: StoreDep,
    settings: SettingsDep,
    max_tokens: Annotated[
        int | None, Query(ge=1, description="Default: the server's max_context_tokens.")
    ] = None,
    reserve: Annotated[int, Query(ge=0, description="Tokens kept free for the reply.")] = 0,
) -> WindowPublic:
    budget = max_tokens if max_tokens is not None else settings.max_context_tokens
    return WindowPublic.of(await store.context_window(session_id, budget, reserve=reserve))
