"""Set-wide maintenance: ``DELETE /ghosts`` and ``POST /prune`` (admin only).

This router is mounted before the sessions router: ``DELETE /ghosts`` must not be read as
``DELETE /{session_id}`` with the id "ghosts".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sessionkeeper.api.deps import AdminDep, StoreDep
from sessionkeeper.api.observability import MetricsDep
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.api.routing import StrictJsonRoute
from sessionkeeper.api.schemas import GhostPurge, PrunePublic
from sessionkeeper.store.validate import MAX_DAYS, MAX_MINUTES

router = APIRouter(tags=["maintenance"], route_class=StrictJsonRoute)
ADMIN_ONLY = "Needs an admin key (this spans every agent)."


@router.delete("/ghosts", responses=error_responses(401, 403, 422, s403=ADMIN_ONLY))
async def purge_ghosts(
    store: StoreDep,
    metrics: MetricsDep,
    _admin: AdminDep,
    older_than_minutes: Annotated[
        float,
        Query(
            ge=0,
            le=MAX_MINUTES,
            allow_inf_nan=False,
            description="Only sessions created longer ago than this (a century at most).",
        ),
    ] = 15,
) -> GhostPurge:
    """Delete sessions that never received a message (created more than N minutes ago)."""
    deleted = await store.delete_ghost_sessions(older_than_minutes)
    metrics.count_ghosts(deleted, trigger="api")
    # Whole minutes stay whole in the answer ({"older_than_minutes": 15}, not 15.0).
    minutes = (
        int(older_than_minutes) if float(older_than_minutes).is_integer() else older_than_minutes
    )
    return GhostPurge(deleted=deleted, older_than_minutes=minutes)


@router.post("/prune", responses=error_responses(401, 403, 422, s403=ADMIN_ONLY))
async def prune_sessions(
    store: StoreDep,
    metrics: MetricsDep,
    _admin: AdminDep,
    days: Annotated[
        int,
        Query(
            ge=1,
            le=MAX_DAYS,
            description="Idle (no update) for longer than this many whole days (1 to a century).",
        ),
    ] = 30,
    dry_run: Annotated[bool, Query(description="Report what would go; delete nothing.")] = False,
) -> PrunePublic:
    """Delete sessions idle for more than ``days`` (in bounded batches), or just count them."""
    result = await store.prune_old_sessions(days, dry_run=dry_run)
    metrics.count_prune(result, trigger="api")
    return PrunePublic.of(result)
