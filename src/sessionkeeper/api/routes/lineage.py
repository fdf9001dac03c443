"""Forks, rewinds and branches of a session: ``/api/engine/sessions/{id}/fork`` …

What the chat page's edit-and-resend needs: ``POST …/rewind`` answers with the session and
the branch that keeps the earlier attempt, and ``GET …/branches`` lists the attempts (every
session body carries its lineage: ``parent_session_id``, ``fork_seq``). The source is reached
through ``VisibleSessionId`` like every route of a session (404 outside the key's scope); a
fork or branch takes the source's agent and user, so it stays in the same scope.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from sessionkeeper.api.deps import PrincipalDep, StoreDep, VisibleSessionId
from sessionkeeper.api.observability import MetricsDep
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.api.routing import StrictJsonRoute
from sessionkeeper.api.schemas import (
    BranchList,
    ForkCreate,
    RewindCreate,
    RewindPublic,
    SessionPublic,
)

router = APIRouter(tags=["sessions"], route_class=StrictJsonRoute)
SESSION = "/{session_id:session_id}"


@router.post(
    SESSION + "/fork",
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        401,
        404,
        409,
        413,
        422,
        s409="The new session id is taken.",
        s413="Metadata over 1,000,000 bytes; nothing was stored.",
        s422="A field is invalid, or at_seq is past the session's last message.",
    ),
)
async def fork_session(
    session_id: VisibleSessionId, body: ForkCreate, store: StoreDep, metrics: MetricsDep
) -> SessionPublic:
    """A new session holding this one's messages 1..``at_seq`` (all by default), copied
    exactly, with ``parent_session_id`` and ``fork_seq``. The source is not changed."""
    fork = await store.fork_session(
        session_id,
        at_seq=body.at_seq,
        new_session_id=body.session_id,
        title=body.title,
        metadata=body.metadata,
    )
    metrics.sessions_created.inc()
    return SessionPublic.of(fork)


@router.post(
    SESSION + "/rewind",
    responses=error_responses(
        401, 404, 422, s422="to_seq is invalid or past the session's last message."
    ),
)
async def rewind_session(
    session_id: VisibleSessionId, body: RewindCreate, store: StoreDep
) -> RewindPublic:
    """The session continues from ``to_seq``; what came after is not deleted: ``branch`` is
    a new child session holding the conversation as it was (null when nothing came after).
    Undo: continue in the branch."""
    return RewindPublic.of(await store.rewind_session(session_id, body.to_seq))


@router.get(SESSION + "/branches", responses=error_responses(401, 404, 422))
async def list_branches(
    session_id: VisibleSessionId, store: StoreDep, principal: PrincipalDep
) -> BranchList:
    """The sessions forked from this one (forks and rewind branches), oldest first; those
    the key may see."""
    found = await store.list_branches(session_id)
    return BranchList(
        session_id=session_id,
        branches=[SessionPublic.of(s) for s in found if principal.can_see_session(s)],
    )
