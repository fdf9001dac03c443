"""Who is calling: a ``Principal`` (an admin, a key scoped to some agents, or open mode).

``api/auth.py`` makes one per request from its API key; ``api/deps.py`` hands it to the routes.
"""

from __future__ import annotations

from dataclasses import dataclass

from sessionkeeper.errors import Forbidden


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling. ``agent_ids=None`` means every agent (an admin)."""

    name: str
    agent_ids: frozenset[str] | None = None
    key_id: str | None = None  # None: no key (open mode on loopback)

    @property
    def is_admin(self) -> bool:
        return self.agent_ids is None

    def can_see(self, agent_id: str) -> bool:
        return self.agent_ids is None or agent_id in self.agent_ids

    def require_agent(self, agent_id: str) -> None:
        """Creating a session for an agent outside the caller's scope is refused (403)."""
        if not self.can_see(agent_id):
            raise Forbidden(f"this key may not act for agent {agent_id!r}", agent_id=agent_id)

    @property
    def scope(self) -> list[str] | None:
        """The Store's ``agent_ids`` argument: None for all agents, else the allowed ones."""
        return None if self.agent_ids is None else sorted(self.agent_ids)


OPEN = Principal(name="open (no API keys, loopback)")
