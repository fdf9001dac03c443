"""Set-wide maintenance: ``DELETE /ghosts`` and ``POST /prune`` (admin only).

This router is mounted before the sessions router: ``DELETE /ghosts`` must not be read as
``DELETE /{session_id}`` with the id "ghosts".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from sessionkeeper.api.deps import AdminDep, StoreDep
from sessionkeeper.api.observability import MetricsDep
from sessionkeeper.api.schemas import GhostPurge, PrunePublic

router = APIRouter(tags=["maintenance"])


@router.delete("/ghosts")
async def purge_ghosts(
    store: StoreDep,
    metrics: MetricsDep,
    _admin: AdminDep,
    older_than_minutes: Annotated[
        int | float, Query(ge=0, description="Only sessions created longer ago than this.")
    ] = 15,
) -> GhostPurge:
    """Delete sessions that never received a message (created more than N minutes ago)."""
    deleted = await store.delete_ghost_sessions(older_than_minutes)
    metrics.count_ghosts(deleted, trigger="api")
    return GhostPurge(deleted=deleted, older_than_minutes=older_than_minutes)


@router.post("/prune")
async def prune_sessions(
    store: StoreDep,
    metrics: MetricsDep,
    _admin: AdminDep,
    days: Annotated[float, Query(gt=0, description="Idle (no update) for longer than this.")] = 30,
    dry_run: Annotated[bool, Query(description="Report what would go; delete nothing.")] = False,
) -> PrunePublic:
    """Delete sessions idle for more than ``days`` (in bounded batches), or just count them."""
    result = await store.prune_old_sessions(days, dry_run=dry_run)
    metrics.count_prune(result, trigger="api")
    return PrunePublic.of(result)
