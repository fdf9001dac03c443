"""Retention policies: ``GET /policies``, ``GET · PUT · DELETE /policies/{agent_id}`` and
``POST /policies/run`` (admin keys only: a policy spans every session of its agents, the
default every agent's).

A policy is written with the units the store keeps (``end_idle_minutes``,
``delete_ended_days``, ``delete_after_days``: whole numbers from 1, null for a rule that is
off); PUT replaces the agent's policy whole. The default policy is ``/policies/*``. Agent ids
may contain ``/`` (``/policies/team/bot``); ``run`` is the run, so an agent named "run" has
its policy set through the CLI or the library.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query
from starlette.convertors import Convertor, register_url_convertor

from sessionkeeper.api.deps import AdminDep, StoreDep
from sessionkeeper.api.observability import MetricsDep
from sessionkeeper.api.openapi import error_responses
from sessionkeeper.api.routing import StrictJsonRoute
from sessionkeeper.api.schemas import (
    POLICY_RUN,
    PolicyAgentText,
    PolicyList,
    PolicyPublic,
    PolicyRules,
    PolicyRunPublic,
)
from sessionkeeper.errors import NotFound
from sessionkeeper.store.retention import policy_agent

ADMIN_ONLY = "Needs an admin key (a policy spans every session of its agents)."


class PolicyAgentConvertor(Convertor[str]):
    """The rest of the path: an agent id (``/`` allowed) or ``*``; not ``run`` alone, the
    path of the run (a concrete path wins over a template, as OpenAPI says). The Store checks
    the id (422 naming ``agent_id``)."""

    regex = f"(?!{POLICY_RUN}$)[^/]+(?:/[^/]+)*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("policy_agent", PolicyAgentConvertor())

AGENT = "/{agent_id:policy_agent}"
PolicyAgentPath = Annotated[PolicyAgentText, Path()]

router = APIRouter(tags=["policies"], route_class=StrictJsonRoute)


@router.get("", responses=error_responses(401, 403, s403=ADMIN_ONLY))
async def list_policies(store: StoreDep, _admin: AdminDep) -> PolicyList:
    """Every retention policy: each agent's, and the default (``*``)."""
    return PolicyList(policies=[PolicyPublic.of(p) for p in await store.get_policies()])


@router.post("/run", responses=error_responses(401, 403, 422, s403=ADMIN_ONLY))
async def run_policies(
    store: StoreDep,
    metrics: MetricsDep,
    _admin: AdminDep,
    dry_run: Annotated[
        bool, Query(description="List what each rule would do (with ids); change nothing.")
    ] = False,
) -> PolicyRunPublic:
    """Apply every retention policy now, in bounded batches (never a pinned session, nor one
    written during the run), or list what each rule would do."""
    result = await store.run_policies(dry_run=dry_run)
    metrics.count_policies(result, trigger="api")
    return PolicyRunPublic.of(result)


@router.get(AGENT, responses=error_responses(401, 403, 404, 422, s403=ADMIN_ONLY))
async def get_policy(agent_id: PolicyAgentPath, store: StoreDep, _admin: AdminDep) -> PolicyPublic:
    """The policy of an agent (404 when it has none of its own: the default applies)."""
    agent = policy_agent(agent_id)
    for p in await store.get_policies():
        if p.agent_id == agent:
            return PolicyPublic.of(p)
    raise NotFound(f"no retention policy for agent {agent!r}", agent_id=agent)


@router.put(AGENT, responses=error_responses(401, 403, 422, s403=ADMIN_ONLY))
async def set_policy(
    agent_id: PolicyAgentPath, body: PolicyRules, store: StoreDep, _admin: AdminDep
) -> PolicyPublic:
    """Set the policy of an agent (``*``: the default), replacing the one it had."""

    def days(n: int | None) -> timedelta | None:
        return None if n is None else timedelta(days=n)

    p = await store.set_policy(
        agent_id,
        end_idle_after=None
        if body.end_idle_minutes is None
        else timedelta(minutes=body.end_idle_minutes),
        delete_ended_after=days(body.delete_ended_days),
        delete_after=days(body.delete_after_days),
    )
    return PolicyPublic.of(p)


@router.delete(AGENT, responses=error_responses(401, 403, 404, 422, s403=ADMIN_ONLY))
async def delete_policy(
    agent_id: PolicyAgentPath, store: StoreDep, _admin: AdminDep
) -> PolicyPublic:
    """Delete the policy of an agent (the default applies to it again); the policy deleted."""
    return PolicyPublic.of(await store.delete_policy(agent_id))
