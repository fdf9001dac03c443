"""``GET /api/engine/whoami``: who the caller is and what its key may do.

The pages ask it once on load, to show only what the key may use: the agent picker when a
new chat could belong to several agents, the maintenance buttons only to an admin (anyone
else gets 403 for them). It says nothing the caller's key does not already grant.
"""

from __future__ import annotations

import contextlib

from fastapi import APIRouter
from pydantic import BaseModel, Field

from sessionkeeper.api.deps import PrincipalDep
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.errors import InvalidInput

router = APIRouter(tags=["keys"])


class Whoami(BaseModel):
    name: str = Field(description="The key's name, or the open mode's.")
    key_id: str | None = Field(description="null: no key (the server runs open on loopback).")
    admin: bool = Field(description="Every agent (an admin key, or open mode).")
    agent_ids: list[str] | None = Field(
        description="The agents the key may act for; null: every agent."
    )
    default_agent_id: str | None = Field(
        description="The agent of a new session that names none; null: the key must name one."
    )
    user_ids: list[str] | None = Field(
        description="The users whose sessions (of its agents) the key may see; null: every user."
    )
    default_user_id: str | None = Field(
        description="The user of a new session that names none; null: no user, or (under a "
        "key of several users) the key must name one."
    )
    maintenance: bool = Field(description="May purge ghosts, prune and read /metrics.")


@router.get("/whoami", responses=error_responses(401))
async def whoami(principal: PrincipalDep) -> Whoami:
    """The caller (from its API key) and what it may do."""
    default: str | None = None
    with contextlib.suppress(InvalidInput):
        default = principal.default_agent()
    default_user: str | None = None
    with contextlib.suppress(InvalidInput):
        default_user = principal.default_user()
    return Whoami(
        name=principal.name,
        key_id=principal.key_id,
        admin=principal.is_admin,
        agent_ids=principal.scope,
        default_agent_id=default,
        user_ids=principal.user_scope,
        default_user_id=default_user,
        maintenance=principal.is_admin,
    )
