"""Routers of the REST API, assembled under ``/api/engine``."""

from __future__ import annotations

from fastapi import APIRouter

from sessionkeeper.api.routes import (
    compaction,
    forget,
    lineage,
    maintenance,
    policies,
    sessions,
    whoami,
)

ENGINE_PREFIX = "/api/engine"
SESSIONS_PREFIX = f"{ENGINE_PREFIX}/sessions"


def engine_router() -> APIRouter:
    router = APIRouter()
    # Maintenance first: its fixed paths (/ghosts, /prune) must win over /{session_id}.
    router.include_router(maintenance.router, prefix=SESSIONS_PREFIX)
    router.include_router(sessions.router, prefix=SESSIONS_PREFIX)
    router.include_router(lineage.router, prefix=SESSIONS_PREFIX)
    router.include_router(compaction.router, prefix=SESSIONS_PREFIX)
    router.include_router(whoami.router, prefix=ENGINE_PREFIX)
    router.include_router(policies.router, prefix=f"{ENGINE_PREFIX}/policies")
    router.include_router(forget.router, prefix=ENGINE_PREFIX)
    return router
