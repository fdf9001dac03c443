"""``DELETE /api/engine/users/{user_id}``: forget a user (admin only).

Everything of the user goes (``Store.forget_user``): sessions with all their rows, ADK user
state, keys scoped to the user alone. Only an admin key may do it (403 otherwise): it spans
every agent's sessions, like the other set-wide maintenance. The answer is the receipt:
counts per kind and the record's id, never content.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from sessionkeeper.api.deps import AdminDep, StoreDep
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.api.routing import StrictJsonRoute
from sessionkeeper.api.schemas import ForgetPublic, Label, UserIdText

router = APIRouter(tags=["maintenance"], route_class=StrictJsonRoute)


@router.delete(
    # ``path``: a user id may hold '/' (a label may, an ADK id may hold anything).
    "/users/{user_id:path}",
    responses=error_responses(
        401, 403, 422, s403="Needs an admin key (a user's sessions may be any agent's)."
    ),
)
async def forget_user(
    store: StoreDep,
    _admin: AdminDep,
    user_id: Annotated[UserIdText, Path()],
    agent_id: Annotated[
        Label | None, Query(description="Only the user's sessions of this agent.")
    ] = None,
    dry_run: Annotated[bool, Query(description="Count what would go; delete nothing.")] = False,
) -> ForgetPublic:
    """Delete everything of a user: sessions (with messages, checkpoints, ADK state), ADK
    user state, API keys scoped to the user alone (shared keys lose the user). A record
    keeps the SHA-256 of the user id, the counts and the time. SQLite: no byte of the
    user's text is left in the file, its WAL or the search index; PostgreSQL: no row, and
    `sessionkeeper db vacuum --full` removes the deleted rows' bytes from the files."""
    receipt = await store.forget_user(user_id, agent_id=agent_id, dry_run=dry_run)
    return ForgetPublic.of(receipt)
