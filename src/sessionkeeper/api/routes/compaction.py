"""``POST /api/engine/sessions/{id}/compact``: summarise a session's older messages now.

``Store.compact_session`` with the chat's own model as the summarizer
(``chat/compacting.py``): the summary then stands in for those messages in the session's
context window (``/context``, the chat); the messages stay (``/messages``, export, search).
With no model configured (the offline echo model) there is nothing to write a summary:
409, nothing changes.
"""

from __future__ import annotations

from fastapi import APIRouter

from sessionkeeper.api.deps import SettingsDep, StoreDep, VisibleSessionId
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.api.routes.chat import LLMDep
from sessionkeeper.api.routing import StrictJsonRoute
from sessionkeeper.api.schemas import CompactionPublic, CompactRequest, CompactResult
from sessionkeeper.chat.compacting import summarizer
from sessionkeeper.errors import Conflict

router = APIRouter(tags=["sessions"], route_class=StrictJsonRoute)


@router.post(
    "/{session_id}/compact",
    responses=error_responses(
        401,
        404,
        409,
        422,
        503,
        s409="No model is configured to write the summary, or the session changed during "
        "the compaction (another compaction, a deleted message): nothing was compacted.",
    ),
)
async def compact_session(
    session_id: VisibleSessionId,
    store: StoreDep,
    settings: SettingsDep,
    llm: LLMDep,
    body: CompactRequest | None = None,
) -> CompactResult:
    """Summarise the messages before the newest ``keep_last_tokens`` into one summary that
    the context window shows in their place (a tool call and its results are never split).
    The originals are kept."""
    keep = body.keep_last_tokens if body is not None else None
    if keep is None:
        keep = settings.max_context_tokens // 2
    if llm.is_echo:
        await store.get_session(session_id)  # 404 first, for a session that is not there
        raise Conflict(
            "no model is configured to write the summary (set SESSIONKEEPER_LLM_BASE_URL "
            "and SESSIONKEEPER_LLM_MODEL); nothing was compacted"
        )
    made = await store.compact_session(
        session_id, keep_last_tokens=keep, summarize=summarizer(llm), model=llm.model
    )
    current = made if made is not None else await store.get_compaction(session_id)
    return CompactResult(
        compacted=made is not None,
        compaction=None if current is None else CompactionPublic.of(current),
    )
